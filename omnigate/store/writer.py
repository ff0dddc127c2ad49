"""Group commit: one writer task turns many concurrent writes into one transaction.

Durability costs one fsync per transaction, not per message: while a commit is
in flight, new writes gather in the next batch. A submitter awaits the commit
of the batch holding its rows (`commit`); status changes are written without
waiting (`write`), in order, in the next batch.

A batch that fails is retried one group at a time, so one bad submission (a
duplicate client_ref racing another) fails alone and the others still commit.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from omnigate.store import schema

log = logging.getLogger("omnigate.store")

# Statements in the order a batch applies them: rows are inserted before any
# update can refer to them.
_STATEMENTS: dict[str, Any] = {
    "messages": insert(schema.messages),
    "parts": insert(schema.parts),
    "events": insert(schema.events),
    "inbound": insert(schema.inbound),
    "message_state": update(schema.messages)
    .where(schema.messages.c.id == bindparam("b_id"))
    .values(status=bindparam("status"), attempts=bindparam("attempts"),
            link=bindparam("link"), error=bindparam("error"),
            not_before=bindparam("not_before"), updated_at=bindparam("updated_at")),
    "message_status": update(schema.messages)
    .where(schema.messages.c.id == bindparam("b_id"))
    .values(status=bindparam("status"), error=bindparam("error"),
            updated_at=bindparam("updated_at")),
    "part_status": update(schema.parts)
    .where(schema.parts.c.message_id == bindparam("b_message_id"))
    .where(schema.parts.c.seq == bindparam("b_seq"))
    .values(status=bindparam("status"), error=bindparam("error"),
            updated_at=bindparam("updated_at")),
}
KINDS = tuple(_STATEMENTS)


@dataclass(slots=True)
class _Group:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    future: asyncio.Future[None] | None = None

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(row)


class GroupCommitter:
    """The only writer of the store; see the module docstring."""

    def __init__(self, engine: AsyncEngine, *, interval: float, max_batch: int) -> None:
        self._engine = engine
        self._interval = interval
        self._max_batch = max_batch
        self._background = _Group()
        self._groups: list[_Group] = []
        self._size = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    def write(self, kind: str, row: dict[str, Any]) -> None:
        """Queue a row without waiting; it lands in the next commit."""
        self._background.add(kind, row)
        self._size += 1
        self._wake.set()

    def commit(self, rows: dict[str, list[dict[str, Any]]]) -> asyncio.Future[None]:
        """Queue rows as one group; the future resolves when they are durable."""
        if self._closing:
            raise RuntimeError("store is closing")
        fut = asyncio.get_running_loop().create_future()
        self._groups.append(_Group(rows, fut))
        self._size += sum(len(r) for r in rows.values())
        self._wake.set()
        return fut

    @property
    def pending(self) -> int:
        return self._size

    async def stop(self) -> None:
        """Flush everything queued, then end the writer task."""
        self._closing = True
        self._wake.set()
        if self._task:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._closing:
                await self._wake.wait()
                if self._interval and self._size < self._max_batch:
                    await asyncio.sleep(self._interval)
            self._wake.clear()
            groups, self._groups = self._groups, []
            if self._background.rows:
                groups.append(self._background)
                self._background = _Group()
            self._size = 0
            if groups:
                await self._commit(groups)
            elif self._closing:
                return

    async def _commit(self, groups: list[_Group]) -> None:
        try:
            await self._execute(groups)
        except Exception as exc:
            if len(groups) == 1:
                self._fail(groups[0], exc)
                return
            log.warning("group commit of %d groups failed (%s); retrying one by one",
                        len(groups), exc)
            for group in groups:
                try:
                    await self._execute([group])
                except Exception as one_exc:
                    self._fail(group, one_exc)
                else:
                    self._done(group)
            return
        for group in groups:
            self._done(group)
        self.commits += 1

    async def _execute(self, groups: list[_Group]) -> None:
        async with self._engine.begin() as conn:
            for kind, stmt in _STATEMENTS.items():
                rows = [row for g in groups for row in g.rows.get(kind, ())]
                if rows:
                    await conn.execute(stmt, rows)

    @staticmethod
    def _done(group: _Group) -> None:
        if group.future and not group.future.done():
            group.future.set_result(None)

    @staticmethod
    def _fail(group: _Group, exc: Exception) -> None:
        if group.future:
            if not group.future.done():
                group.future.set_exception(exc)
        else:
            counts = {k: len(v) for k, v in group.rows.items()}
            log.error("store write lost after commit failure: %s (%s)", counts, exc)
