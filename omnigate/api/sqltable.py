"""SQL table ingress: a row inserted into an outbox table becomes an SMS, and the row
follows the message: `new` -> `claimed` -> `queued` (with the message id) -> `sent`
-> `delivered` | `undelivered` | `failed` | `expired`, or `rejected` with the reason
in the error column.

Claiming is one UPDATE ... WHERE status = 'new' ... RETURNING statement, so two
omnigate nodes never take the same row: on PostgreSQL its subquery locks with
FOR UPDATE SKIP LOCKED (a second node skips the rows, it does not wait); on
SQLite one statement holds the database's write lock. Each row is submitted
with a client_ref made of table, id and created_at: a node that dies after the
commit but before writing the row back leaves it `claimed`, and whoever takes
it again after `claim_timeout` gets the message stored the first time, not a
second one (given the nodes share one store, as a cluster does).

Write-back goes through one ordered queue per source, so a row is never set to
`queued` after its `sent`; status changes come from the dispatcher as a
`StatusListener`, batched into one transaction per flush. A database that goes
away is retried with backoff and logged; claims stop, write-backs wait.

With `listen` on PostgreSQL, a NOTIFY on the channel (the trigger that `create`
installs) wakes the poller at once; polling every `poll_interval` stays the
fallback. Inbound SMS can be written to the `inbox` table (`deliver_inbound`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    event,
    func,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

from omnigate.config import SqlColumns, SqlSourceConfig
from omnigate.model import Inbound, Origin, StatusChange, Submit, SubmitError, SubmitRequest
from omnigate.store.db import make_engine

T = TypeVar("T")

log = logging.getLogger("omnigate.sql")

NEW, CLAIMED, REJECTED = "new", "claimed", "rejected"
_FLUSH_MAX = 1000  # write-backs in one transaction
_BACKOFF_MAX = 30.0  # seconds between tries while the database is away
_DB_ERRORS = (SQLAlchemyError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_BUSY_MS = 2000  # SQLite: how long a claim waits for another writer's lock
_ID = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


def outbox_table(name: str, columns: SqlColumns, metadata: MetaData) -> Table:
    """The outbox as omnigate creates it (and as it reads one that exists: by these names)."""
    schema, table = _split(name)
    cols = [
        Column(columns.id, _ID, primary_key=True, autoincrement=True),
        Column(columns.recipient, String(64)),
        Column(columns.text, Text),
        *([Column(columns.sender, String(32))] if columns.sender else []),
        Column(columns.status, String(16), nullable=False, server_default=NEW),
        Column(columns.message_id, BigInteger),
        Column(columns.error, Text),
        *([Column(columns.created_at, DateTime(timezone=True),
                  server_default=func.current_timestamp())] if columns.created_at else []),
        Column(columns.updated_at, DateTime(timezone=True)),
    ]
    out = Table(table, metadata, *cols, schema=schema, sqlite_autoincrement=True)
    Index(f"ix_{table}_status", out.c[columns.status], out.c[columns.id])
    Index(f"ix_{table}_message_id", out.c[columns.message_id])
    return out


def inbox_table(name: str, metadata: MetaData) -> Table:
    schema, table = _split(name)
    out = Table(
        table, metadata,
        Column("id", _ID, primary_key=True, autoincrement=True),
        Column("sender", String(32), nullable=False),
        Column("recipient", String(32), nullable=False),
        Column("text", Text, nullable=False),
        Column("link", String(64)),
        Column("ref", String(64)),
        Column("received_at", DateTime(timezone=True), nullable=False),
        schema=schema, sqlite_autoincrement=True)
    Index(f"ix_{table}_received", out.c.received_at)
    return out


def notify_ddl(table: str, channel: str) -> list[str]:
    """PostgreSQL: a trigger that NOTIFYs `channel` after each INSERT statement."""
    fn = f"{table.replace('.', '_')}_notify"
    return [
        f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$",
        f"DROP TRIGGER IF EXISTS {fn} ON {table}",
        f"CREATE TRIGGER {fn} AFTER INSERT ON {table} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {fn}()",
    ]


class SqlSource:
    """Polls one outbox table, submits its new rows, writes their status back."""

    def __init__(self, config: SqlSourceConfig, *, store_url: str, submit: Submit) -> None:
        self.config = config
        self.name = config.name
        self.account = f"sql:{config.name}"
        self.url = config.url or store_url
        self.postgres = make_url(self.url).get_backend_name() == "postgresql"
        self._submit = submit
        self._metadata = MetaData()
        cols = config.columns
        self.outbox = outbox_table(config.outbox, cols, self._metadata)
        self.inbox = inbox_table(config.inbox, self._metadata) if config.inbox else None
        c = self.outbox.c
        self._id, self._status = c[cols.id], c[cols.status]
        self._updated = c[cols.updated_at]
        picked = [self._id, c[cols.recipient], c[cols.text]]
        picked.append(c[cols.sender] if cols.sender else None)
        # read as stored: a driver's date parsing must not change a row's client_ref
        picked.append(type_coerce(c[cols.created_at], String) if cols.created_at else None)
        self._picked = picked
        now = func.current_timestamp()
        self._by_id = (update(self.outbox).where(self._id == bindparam("b_id"))
                       .values({cols.status: bindparam("status"),
                                cols.message_id: bindparam("message_id"),
                                cols.error: bindparam("error"), cols.updated_at: now}))
        self._by_message = (update(self.outbox)
                            .where(c[cols.message_id] == bindparam("b_message_id"))
                            .values({cols.status: bindparam("status"),
                                     cols.error: bindparam("error"), cols.updated_at: now}))
        self._sql: dict[str, tuple[str, list[str]]] = {}  # write-back kind -> SQL, parameters
        self.engine: AsyncEngine | None = None  # PostgreSQL
        self._sqlite: Engine | None = None
        self._writes: deque[tuple[str, dict[str, Any]]] = deque()
        self._written = asyncio.Event()
        self._has_writes = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._poller: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._created = False
        self.claimed = 0  # rows taken by this node, for logs and tests

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        if self.postgres:
            self.engine = make_engine(self.url)
        else:
            self._sqlite = _sqlite_engine(self.url)
        self._stopping = False
        try:  # a database that is away does not keep omnigate from starting
            await self._prepare()
        except _DB_ERRORS as exc:
            log.warning("sql[%s]: database unavailable at start (%s: %s); retrying", self.name,
                        type(exc).__name__, str(exc).splitlines()[0])
        self._writer = asyncio.create_task(self._write_loop(), name=f"sql-{self.name}-write")
        self._poller = asyncio.create_task(self._poll_loop(), name=f"sql-{self.name}-poll")
        where = make_url(self.url).render_as_string(hide_password=True)
        log.info("sql[%s]: polling %s in %s every %.1fs%s", self.name, self.config.outbox, where,
                 self.config.poll_interval,
                 f", LISTEN {self.config.listen}" if self._listener else "")

    async def _prepare(self) -> None:
        """Tables (once) and the LISTEN connection (again after it was lost)."""
        if self.config.create and not self._created:
            await self._create()
            self._created = True
        if self.config.listen and self.postgres and (
                self._listener is None or self._listener.is_closed()):
            await self._listen()

    async def _create(self) -> None:
        def create(conn: Connection) -> None:
            if self.postgres:  # two nodes starting at once must not race on CREATE
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('omnigate-sql'))"))
            self._metadata.create_all(conn)
            if self.postgres and self.config.listen:
                for ddl in notify_ddl(self.config.outbox, self.config.listen):
                    conn.execute(text(ddl))

        await self._transaction(create)

    async def _transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction. SQLite: on the loop thread, start to commit,
        like the store's writer: a write lock held across an await would deadlock with
        the store's writer when both use one file (it waits for the lock on this thread)."""
        if self._sqlite is not None:
            with self._sqlite.begin() as conn:
                return work(conn)
        assert self.engine is not None
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def _listen(self) -> None:
        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._listener = None
        conn = await asyncpg.connect(dsn, timeout=10)
        await conn.add_listener(self.config.listen or "", self._notified)
        conn.add_termination_listener(self._notified)  # lost: the poll loop listens again
        self._listener = conn
        self._wake.set()  # rows inserted while nobody listened

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming rows; write-backs go on until `close` (reports still arrive)."""
        self._stopping = True
        self._wake.set()
        if self._poller is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._poller, grace)
            self._poller = None
        if self._listener is not None:
            self._listener.terminate()
            self._listener = None

    async def close(self, grace: float = 5.0) -> None:
        """Write what is queued (within `grace`), then let the database go."""
        await self.stop(grace)
        if self._writer is not None:
            try:
                await asyncio.wait_for(self.flushed(), grace)
            except TimeoutError:
                log.warning("sql[%s]: %d status write-backs not written at stop", self.name,
                            len(self._writes))
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None
        if self._sqlite is not None:
            self._sqlite.dispose()
            self._sqlite = None

    async def flushed(self) -> None:
        """Return once every write-back queued so far is committed."""
        while self._writes:
            self._written.clear()
            await self._written.wait()

    # -- claiming and submitting --------------------------------------------

    async def _poll_loop(self) -> None:
        backoff = 0.0
        while not self._stopping:
            try:
                await self._prepare()
                taken = await self.poll()
                backoff = 0.0
            except _DB_ERRORS as exc:
                backoff = min(_BACKOFF_MAX, max(1.0, backoff * 2))
                log.warning("sql[%s]: database unavailable (%s: %s); next try in %.0fs",
                            self.name, type(exc).__name__, str(exc).splitlines()[0], backoff)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # stop() wakes it early
                    await asyncio.wait_for(self._wake.wait(), backoff)
                continue
            if taken >= self.config.batch:
                continue  # a backlog: take the next batch at once
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)

    async def poll(self) -> int:
        """Claim one batch of rows and submit them; how many rows were claimed."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.config.claim_timeout)
        if not self.postgres:
            cutoff = cutoff.replace(tzinfo=None)  # SQLite's CURRENT_TIMESTAMP is naive UTC
        # Rows a dead node claimed long ago may have been submitted: their client_ref is
        # looked up. New rows never were: the claim is the first time anyone takes them.
        stale = (self._status == CLAIMED) & (self._updated < cutoff)
        fresh = self._status == NEW
        probe = select(self._id).where(or_(fresh, stale)).limit(1)  # a read: no write lock idle
        if await self._transaction(lambda conn: conn.execute(probe).first()) is None:
            return 0

        def claim(conn: Connection) -> list[tuple[Any, bool]]:
            old = self._claim(conn, stale, self.config.batch)
            room = self.config.batch - len(old)
            new = self._claim(conn, fresh, room) if room else []
            return [(r, False) for r in old] + [(r, True) for r in new]

        claimed = await self._transaction(claim)
        if not claimed:
            return 0
        self.claimed += len(claimed)
        outcomes = await asyncio.gather(*(self._submit_row(r, new) for r, new in claimed))
        log.info("sql[%s]: %d rows claimed, %d queued, %d rejected", self.name, len(claimed),
                 outcomes.count("queued"), outcomes.count(REJECTED))
        return len(claimed)

    def _claim(self, conn: Connection, condition: Any, limit: int) -> list[Any]:
        """Set up to `limit` rows matching `condition` to claimed; those rows, by id."""
        ids = select(self._id).where(condition).order_by(self._id).limit(limit)
        if self.postgres:  # a second node skips these rows instead of waiting for them
            ids = ids.with_for_update(skip_locked=True)
        claim = (update(self.outbox)
                 .where(self._id.in_(ids.scalar_subquery()), condition)
                 .values({self._status.key: CLAIMED,
                          self._updated.key: func.current_timestamp()})
                 .returning(*(c for c in self._picked if c is not None)))
        return sorted(conn.execute(claim).all(), key=lambda r: r[0])

    def _row(self, row: Any) -> tuple[Any, Any, Any, Any, Any]:
        """(id, recipient, text, sender, created_at) of a claimed row; None where unmapped."""
        values = iter(row)
        id, recipient, body = next(values), next(values), next(values)
        sender = next(values) if self.config.columns.sender else None
        created = next(values) if self.config.columns.created_at else None
        return id, recipient, body, sender, created

    async def _submit_row(self, row: Any, new: bool) -> str:
        """Submit one claimed row and queue its write-back; the status it gets."""
        id, recipient, body, sender, created = self._row(row)
        cols = self.config.columns
        reason = None
        if recipient is None or not str(recipient).strip():
            reason = f"{cols.recipient}: missing"
        elif "," in str(recipient):
            reason = f"{cols.recipient}: one number per row"
        elif body is None or not str(body).strip():
            reason = f"{cols.text}: missing" if body is None else f"{cols.text}: empty"
        if reason:
            self._write_row(id, REJECTED, None, reason)
            return REJECTED
        request = SubmitRequest(
            to=[str(recipient).strip()], text=str(body), origin=Origin.SQL,
            sender=str(sender) if sender else None, account=self.account,
            client_ref=f"{self.config.outbox}:{id}:{created or '-'}", client_ref_new=new)
        try:
            accepted = await self._submit(request)
        except SubmitError as exc:
            if exc.kind == "unavailable":  # back to new: taken again at the next poll
                self._write_row(id, NEW, None, f"waiting: {exc.reason}")
                return NEW
            column = {"to": cols.recipient, "text": cols.text,
                      "from": cols.sender or "sender"}.get(exc.field, exc.field)
            self._write_row(id, REJECTED, None, f"{column}: {exc.reason}")
            return REJECTED
        first = accepted[0]
        self._write_row(id, first.status.value, first.id, None)
        return first.status.value

    # -- write-back -----------------------------------------------------------

    def _write_row(self, id: Any, status: str, message_id: int | None, error: str | None) -> None:
        self._queue("id", {"b_id": id, "status": status, "message_id": message_id,
                           "error": error})

    def on_status(self, change: StatusChange) -> None:
        """A message from this table changed: its row follows (StatusListener)."""
        msg = change.message
        if msg.origin != Origin.SQL or msg.account != self.account or self._writer is None:
            return
        self._queue("message", {"b_message_id": msg.id, "status": change.status.value,
                                "error": change.reason})

    def _queue(self, kind: str, row: dict[str, Any]) -> None:
        self._writes.append((kind, row))
        self._has_writes.set()

    async def _write_loop(self) -> None:
        backoff = 0.0
        while True:
            if not self._writes:
                self._written.set()
                self._has_writes.clear()
                await self._has_writes.wait()
            batch = [self._writes[i] for i in range(min(len(self._writes), _FLUSH_MAX))]
            try:
                await self._write(batch)
                backoff = 0.0
            except _DB_ERRORS as exc:
                backoff = min(_BACKOFF_MAX, max(1.0, backoff * 2))
                log.warning("sql[%s]: %d row updates wait: %s: %s; next try in %.0fs", self.name,
                            len(self._writes), type(exc).__name__, str(exc).splitlines()[0],
                            backoff)
                await asyncio.sleep(backoff)
                continue
            for _ in batch:
                self._writes.popleft()

    async def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """One transaction: the row updates in order, then each message's last status
        (a row's `queued` is always queued before its message's first change).

        Statements run as compiled SQL through the driver's executemany: SQLAlchemy's
        per-row parameter handling cost more than the database (bench/spool.py)."""
        by_id = [row for kind, row in batch if kind == "id"]
        latest = {row["b_message_id"]: row for kind, row in batch if kind == "message"}

        def write(conn: Connection) -> None:
            for kind, rows in (("id", by_id), ("message", list(latest.values()))):
                if rows:
                    sql, names = self._compiled(kind, conn)
                    conn.exec_driver_sql(sql, [tuple(r[n] for n in names) for r in rows])

        await self._transaction(write)

    def _compiled(self, kind: str, conn: Connection) -> tuple[str, list[str]]:
        found = self._sql.get(kind)
        if found is None:
            stmt = self._by_id if kind == "id" else self._by_message
            compiled = stmt.compile(dialect=conn.dialect)
            found = self._sql[kind] = (compiled.string, list(compiled.positiontup or ()))
        return found

    # -- inbound ---------------------------------------------------------------

    async def deliver_inbound(self, inbound: Inbound, ref: str | None = None) -> None:
        """Insert one MO message into the inbox table; raises when the database cannot
        take it (the caller retries)."""
        if self.inbox is None or (self.engine is None and self._sqlite is None):
            raise RuntimeError(f"sql[{self.name}] has no inbox table or is not started")
        row = insert(self.inbox).values(
            sender=inbound.sender, recipient=inbound.recipient, text=inbound.text,
            link=inbound.link, ref=ref, received_at=inbound.received_at)
        await self._transaction(lambda conn: conn.execute(row))


def _sqlite_engine(url: str) -> Engine:
    """A synchronous SQLite engine for the loop thread (see `_transaction`), WAL like the store.

    synchronous=NORMAL (no fsync per commit): a claim or write-back lost to a power
    cut is redone from the row's state, and the client_ref keeps that idempotent.

    The busy timeout is short: while it waits, the loop waits, so another program's
    long write lock makes a poll fail (and retry) rather than stall the gateway.
    """
    parsed = make_url(url).set(drivername="sqlite")
    engine = create_engine(parsed, poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={_BUSY_MS}"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    return engine
