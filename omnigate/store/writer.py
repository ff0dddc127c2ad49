"""Group commit: one writer task turns many concurrent writes into one transaction.

Durability costs one fsync per transaction, not per message: while a commit is
in flight, new writes gather in the next batch. A submitter awaits the commit
of the batch holding its rows (`commit`); status changes are written without
waiting (`write`), in order, in the next batch.

A batch that fails is retried one group at a time, so one bad submission (a
duplicate client_ref racing another) fails alone and the others still commit.

Statements are built with SQLAlchemy once and run on the driver's own
connection, one `executemany` per kind of row: SQLAlchemy's per-row parameter
handling cost more than the database did (py-spy under bench/throughput.py).
* PostgreSQL: a dedicated asyncpg connection, natively asynchronous.
* SQLite: a plain `sqlite3` connection, on the event loop thread. Running it in
  aiosqlite's thread was 7x slower under load (37 ms against 5 ms per batch of
  ~50 messages, bench/throughput.py): `sqlite3` releases the GIL around every
  row's `sqlite3_step`, so a busy loop thread makes the writer thread wait a
  GIL switch interval per row. A batch is CPU work of ~15 µs per row plus one
  fsync; done on the loop it blocks it for a few milliseconds per commit,
  which the loop would have spent on the same rows anyway.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import asyncpg
from sqlalchemy import URL, bindparam, delete, insert, update
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from omnigate.store import schema

log = logging.getLogger("omnigate.store")

# Statements in the order a batch applies them: rows are inserted before any
# update can refer to them.
_STATEMENTS: dict[str, Any] = {
    "messages": insert(schema.messages),
    "parts": insert(schema.parts),
    "events": insert(schema.events),
    "inbound": insert(schema.inbound),
    "inbound_messages": insert(schema.inbound_messages),
    "charges": insert(schema.charges),
    # accounts (omnigate/accounts/book.py): written here too, so that on SQLite no second
    # connection ever holds the write lock the loop-thread writer would wait for
    "accounts": insert(schema.accounts),
    "account_keys": insert(schema.account_keys),
    "movements": insert(schema.movements),
    "alarms": insert(schema.alarms),  # on-call (omnigate/oncall/)
    "alarm_events": insert(schema.alarm_events),
    "account_settings": update(schema.accounts)
    .where(schema.accounts.c.name == bindparam("b_name"))
    .values(settings=bindparam("settings"), from_config=bindparam("from_config"),
            updated_at=bindparam("updated_at")),
    "key_revoked": update(schema.account_keys)
    .where(schema.account_keys.c.id == bindparam("b_id"))
    .values(revoked_at=bindparam("revoked_at")),
    "charge_refunded": update(schema.charges)
    .where(schema.charges.c.message_id == bindparam("b_message_id"))
    .values(refunded_at=bindparam("refunded_at")),
    "account_removed": delete(schema.accounts).where(schema.accounts.c.name == bindparam("b_name")),
    "account_keys_removed": delete(schema.account_keys)
    .where(schema.account_keys.c.account == bindparam("b_name")),
    "message_state": update(schema.messages)
    .where(schema.messages.c.id == bindparam("b_id"))
    .values(status=bindparam("status"), attempts=bindparam("attempts"),
            link=bindparam("link"), error=bindparam("error"),
            not_before=bindparam("not_before"), updated_at=bindparam("updated_at")),
    "message_status": update(schema.messages)
    .where(schema.messages.c.id == bindparam("b_id"))
    .values(status=bindparam("status"), error=bindparam("error"),
            updated_at=bindparam("updated_at")),
    "inbound_result": update(schema.inbound_messages)
    .where(schema.inbound_messages.c.id == bindparam("b_id"))
    .values(status=bindparam("status"), rule=bindparam("rule"), targets=bindparam("targets"),
            detail=bindparam("detail"), reply_to=bindparam("reply_to"),
            updated_at=bindparam("updated_at")),
    "alarm_state": update(schema.alarms)
    .where(schema.alarms.c.id == bindparam("b_id"))
    .values(schedule=bindparam("schedule"), level=bindparam("level"), status=bindparam("status"),
            recipients=bindparam("recipients"), escalate_at=bindparam("escalate_at"),
            acked_by=bindparam("acked_by"), acked_at=bindparam("acked_at"),
            updated_at=bindparam("updated_at")),
    "part_status": update(schema.parts)
    .where(schema.parts.c.message_id == bindparam("b_message_id"))
    .where(schema.parts.c.seq == bindparam("b_seq"))
    .values(status=bindparam("status"), error=bindparam("error"),
            updated_at=bindparam("updated_at")),
}
KINDS = tuple(_STATEMENTS)


_OUTAGE_PAUSE = 1.0  # seconds between tries while the store is unavailable


class ConstraintError(Exception):
    """A write broke a constraint (a duplicate key): the group is refused, nothing else."""


class StoreUnavailable(Exception):
    """The store could not commit at all; nothing of the submission was stored."""


class _Compiled:
    """SQL text and a row -> parameter tuple getter per statement and key set."""

    def __init__(self, dialect: Any) -> None:
        self._dialect = dialect
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[str, Callable[..., Any]]] = {}

    def batches(self, groups: list[_Group]) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """(sql, parameter tuples) per statement kind, in the order of KINDS."""
        out = []
        for kind in KINDS:
            rows = [row for g in groups for row in g.rows.get(kind, ())]
            if rows:
                sql, getter = self._sql(kind, tuple(rows[0]))
                out.append((sql, [getter(r) for r in rows]))
        return out

    def _sql(self, kind: str, keys: tuple[str, ...]) -> tuple[str, Callable[..., Any]]:
        found = self._cache.get((kind, keys))
        if found is None:
            compiled = _STATEMENTS[kind].compile(dialect=self._dialect, column_keys=list(keys))
            names = compiled.positiontup or []
            getter = itemgetter(*names) if len(names) > 1 else (lambda r: (r[names[0]],))
            found = self._cache[(kind, keys)] = (compiled.string, getter)
        return found


class SqliteBatches:
    """Batches through a plain `sqlite3` connection (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._compiled = _Compiled(sqlite_dialect.dialect(paramstyle="qmark"))

    async def run(self, groups: list[_Group]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in self._compiled.batches(groups):
                conn.executemany(sql, params)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise ConstraintError(str(exc)) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        self._conn.close()


class PostgresBatches:
    """Batches through one asyncpg connection of the writer's own."""

    def __init__(self, dsn: str, conn: asyncpg.Connection) -> None:
        self._dsn = dsn
        self._conn = conn
        self._compiled = _Compiled(asyncpg_dialect.dialect())

    @classmethod
    async def connect(cls, url: URL) -> PostgresBatches:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(dsn, await asyncpg.connect(dsn))

    async def run(self, groups: list[_Group]) -> None:
        if self._conn.is_closed():  # lost in an earlier batch: the server may be back
            self._conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            async with self._conn.transaction():
                for sql, params in self._compiled.batches(groups):
                    await self._conn.executemany(sql, params)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise ConstraintError(str(exc)) from None
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            self._conn.terminate()
            raise

    async def close(self) -> None:
        await self._conn.close()


class Batches(Protocol):
    async def run(self, groups: list[_Group]) -> None: ...
    async def close(self) -> None: ...


@dataclass(slots=True)
class _Group:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    future: asyncio.Future[None] | None = None

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(row)


class GroupCommitter:
    """The only writer of the store; see the module docstring."""

    def __init__(self, batches: Batches, *, interval: float, max_batch: int) -> None:
        self._batches = batches
        self._interval = interval
        self._max_batch = max_batch
        self._background = _Group()
        self._groups: list[_Group] = []
        self._size = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._down_since: float | None = None
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
        await self._batches.close()

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
            await self._batches.run(groups)
        except ConstraintError as exc:
            if len(groups) == 1:
                self._fail(groups[0], exc)
                return
            log.warning("group commit of %d groups failed (%s); retrying one by one",
                        len(groups), exc)
            for group in groups:
                await self._commit([group])
            return
        except Exception as exc:
            await self._outage(groups, exc)
            return
        if self._down_since is not None:
            log.warning("store is back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
        for group in groups:
            self._done(group)
        self.commits += 1

    async def _outage(self, groups: list[_Group], exc: Exception) -> None:
        """The store failed as a whole (unreachable, disk full): nothing of the batch is stored.

        Submitters hear it at once and have not answered "accepted"; status writes
        are kept, in order, ahead of newer ones and tried again after a pause, so a
        carrier's answer is not lost while the store is away.
        """
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.error("store unavailable: %s; status writes are kept and retried", exc)
        unavailable = StoreUnavailable(f"the store is unavailable ({type(exc).__name__})")
        kept = _Group()
        for group in groups:
            if group.future is not None:
                if not group.future.done():
                    group.future.set_exception(unavailable)
            else:
                for kind, rows in group.rows.items():
                    kept.rows.setdefault(kind, []).extend(rows)
        if self._closing:
            self._fail(kept, exc)
            return
        for kind, rows in self._background.rows.items():
            kept.rows.setdefault(kind, []).extend(rows)
        self._background = kept
        self._size += sum(len(r) for r in kept.rows.values())
        self._wake.set()
        await asyncio.sleep(_OUTAGE_PAUSE)

    @staticmethod
    def _done(group: _Group) -> None:
        if group.future and not group.future.done():
            group.future.set_result(None)

    @staticmethod
    def _fail(group: _Group, exc: Exception) -> None:
        if group.future:
            if not group.future.done():
                group.future.set_exception(exc)
        elif group.rows:
            counts = {k: len(v) for k, v in group.rows.items()}
            log.error("store writes dropped: %s (%s); their messages stay queued and are "
                      "sent again after a restart", counts, exc)
