"""The SMPP server's outbox: receipts and MO waiting for a client to take them, durably.

A deliver_sm for an account is stored (its body, ready to send) before it is sent and
deleted once the client answered it, so receipts and MO survive a client that is not
bound, vanishes mid-window, or an omnigate restart. Its table lives in the store's
database beside omnigate's own; inserts and deletes are batched by one task, so a burst
of receipts costs one transaction, not one per receipt (DESIGN "the hot path has a budget").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("omnigate.api.smpp")

metadata = MetaData()

outbox = Table(
    "smpp_outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("account", String(128), nullable=False, index=True),
    Column("body", LargeBinary, nullable=False),  # deliver_sm body, without the header
    Column("created_at", Float, nullable=False),
)

_PAUSE = 1.0  # seconds between tries while the database refuses a batch

Row = tuple[int, str, bytes]  # (id, account, body)


class Outbox:
    """Batched writes to `smpp_outbox`; `ready` is called with the rows once stored."""

    def __init__(self, engine: AsyncEngine, ready: Callable[[list[Row]], None]) -> None:
        self._engine = engine
        self._ready = ready
        self._adds: list[tuple[str, bytes, asyncio.Future[None] | None]] = []
        self._removes: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a batch is being written
        url = engine.url
        self._sqlite = (sqlite3.connect(url.database or ":memory:", isolation_level=None,
                                        timeout=10.0)
                        if url.get_backend_name() == "sqlite" else None)
        if self._sqlite is not None:  # durable when committed, as the store's own writes
            self._sqlite.execute("PRAGMA synchronous=FULL")

    async def open(self) -> list[Row]:
        """Create the table if missing; the rows still waiting, oldest first."""
        async with self._engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            rows = (await conn.execute(select(outbox.c.id, outbox.c.account, outbox.c.body)
                                       .order_by(outbox.c.id))).all()
        self._task = asyncio.create_task(self._run(), name="smpp-outbox")
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    def add(self, account: str, body: bytes, done: asyncio.Future[None] | None = None) -> None:
        self._adds.append((account, body, done))
        self._wake.set()

    def remove(self, id: int) -> None:
        self._removes.add(id)
        self._wake.set()

    async def close(self) -> None:
        """Write what is pending, then stop."""
        if self._task is None:
            return
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                while self._adds or self._removes or self._busy:
                    await asyncio.sleep(0.01)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._sqlite is not None:
            self._sqlite.close()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            adds, self._adds = self._adds, []
            removes, self._removes = self._removes, set()
            self._busy = True
            try:
                ids = await self._write(adds, removes)
            except Exception as exc:  # database away: keep everything for the next try
                log.warning("SMPP outbox: %s; trying again in %.0fs", exc, _PAUSE)
                self._adds[:0] = adds
                self._removes |= removes
                await asyncio.sleep(_PAUSE)
                self._wake.set()
                continue
            finally:
                self._busy = False
            for (_, _, done) in adds:
                if done is not None and not done.done():
                    done.set_result(None)
            if adds:
                self._ready([(id, account, body)
                             for id, (account, body, _) in zip(ids, adds, strict=True)])

    async def _write(self, adds: list[tuple[str, bytes, asyncio.Future[None] | None]],
                     removes: set[int]) -> list[int]:
        rows = [(a, b, time.time()) for a, b, _ in adds]
        if self._sqlite is not None:
            return _sqlite_write(self._sqlite, rows, sorted(removes))
        ids: list[int] = []
        async with self._engine.begin() as conn:
            if rows:
                result = await conn.execute(
                    insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True),
                    [{"account": a, "body": b, "created_at": t} for a, b, t in rows])
                ids = [r[0] for r in result.all()]
            if removes:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(sorted(removes))))
        return ids


def _sqlite_write(db: sqlite3.Connection, rows: list[tuple[str, bytes, float]],
                  removes: list[int]) -> list[int]:
    """One transaction in one synchronous call on the loop thread, as the store's writer
    does (store/writer.py explains the cost: in a thread, sqlite3 waits a GIL switch per
    row under load). Through the async engine the transaction would span loop turns,
    and the store's writer, on the loop thread, would wait on our lock while blocking
    the very loop our COMMIT needs: a deadlock until busy_timeout."""
    db.execute("BEGIN IMMEDIATE")
    try:
        ids = []
        for row in rows:
            ids.append(db.execute("INSERT INTO smpp_outbox (account, body, created_at) "
                                  "VALUES (?, ?, ?)", row).lastrowid)
        for start in range(0, len(removes), 500):
            chunk = removes[start:start + 500]
            db.execute(f"DELETE FROM smpp_outbox WHERE id IN ({','.join('?' * len(chunk))})",
                       chunk)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return [i for i in ids if i is not None]
