"""Opening the store and reading from it; all writes go through `GroupCommitter`.

SQLite runs in WAL mode with `synchronous=FULL`: a commit is on disk when it
returns, and readers never block the writer. PostgreSQL (asyncpg) uses the
same tables and statements.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from omnigate.ids import id_floor
from omnigate.store import schema
from omnigate.store.inbound import InboundReads
from omnigate.store.writer import GroupCommitter, PostgresBatches, SqliteBatches

log = logging.getLogger("omnigate.store")

_MESSAGE_COLUMNS = (
    schema.messages.c.node,
    schema.messages.c.id, schema.messages.c.recipient, schema.messages.c.sender,
    schema.messages.c.text, schema.messages.c.status, schema.messages.c.parts,
    schema.messages.c.origin, schema.messages.c.account, schema.messages.c.link,
    schema.messages.c.error, schema.messages.c.attempts, schema.messages.c.created_at,
    schema.messages.c.updated_at, schema.messages.c.flash, schema.messages.c.priority,
)


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 UTC with milliseconds, as the API shows times."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _set_sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


class Store(InboundReads):
    """Engine, schema and the reads the gateway and the API need."""

    def __init__(self, engine: AsyncEngine, writer: GroupCommitter) -> None:
        self.engine = engine
        self.writer = writer

    @classmethod
    async def open(cls, url: str, *, commit_interval: float = 0.002,
                   max_batch: int = 2000) -> Store:
        engine = make_engine(url)
        try:
            await cls._migrate(engine)
        except Exception:
            await engine.dispose()
            raise
        parsed = make_url(url)
        batches = (SqliteBatches(parsed.database or ":memory:")
                   if parsed.get_backend_name() == "sqlite"
                   else await PostgresBatches.connect(parsed))
        writer = GroupCommitter(batches, interval=commit_interval, max_batch=max_batch)
        await writer.start()
        return cls(engine, writer)

    @staticmethod
    async def _migrate(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Nodes starting together on a new database: one creates, the others wait
                # and then find the tables (CREATE TABLE races are not IF NOT EXISTS-safe).
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('omnigate.schema'))"))
            await conn.run_sync(schema.metadata.create_all)
            row = (await conn.execute(
                select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
            )).first()
            if row is None:
                await conn.execute(schema.meta.insert().values(
                    key="schema_version", value=str(schema.SCHEMA_VERSION)))
            elif int(row[0]) > schema.SCHEMA_VERSION:
                raise RuntimeError(
                    f"store schema version {row[0]} is newer than this omnigate "
                    f"({schema.SCHEMA_VERSION}); upgrade omnigate")
            elif int(row[0]) < schema.SCHEMA_VERSION:
                # 1 -> 2 added tables, which create_all just made; 2 -> 3 a column too;
                # 3 -> 4 tables and views only (accounts and billing); 4 -> 5 tables only
                # (on-call alarms); 5 -> 6 a column of inbound_messages (made by
                # create_all, with the column, when the store was older than 3).
                if int(row[0]) < 3:
                    await conn.execute(text("ALTER TABLE inbound ADD COLUMN message_id BIGINT"))
                    await conn.execute(text(
                        "CREATE INDEX IF NOT EXISTS ix_inbound_message ON inbound (message_id)"))
                elif int(row[0]) < 6:
                    await conn.execute(text(
                        "ALTER TABLE inbound_messages ADD COLUMN reply_to BIGINT"))
                await conn.execute(schema.meta.update()
                                   .where(schema.meta.c.key == "schema_version")
                                   .values(value=str(schema.SCHEMA_VERSION)))

    async def close(self) -> None:
        await self.writer.stop()
        await self.engine.dispose()

    # -- reads for the API --------------------------------------------------

    @staticmethod
    def _message_dict(row: Any) -> dict[str, Any]:
        return {
            "id": row.id, "to": row.recipient, "from": row.sender, "text": row.text,
            "status": row.status, "parts": row.parts, "origin": row.origin,
            "account": row.account, "link": row.link, "error": row.error,
            "attempts": row.attempts, "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at), "flash": row.flash, "priority": row.priority,
        }

    async def get_message(self, id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(*_MESSAGE_COLUMNS).where(schema.messages.c.id == id))).first()
            if row is None:
                return None
            ev = schema.events.c
            events = (await conn.execute(
                select(ev.at, ev.status, ev.link, ev.node, ev.reason)
                .where(ev.message_id == id).order_by(ev.id))).all()
            pc = schema.parts.c
            parts = (await conn.execute(
                select(pc.seq, pc.link, pc.carrier_ref, pc.status, pc.error)
                .where(pc.message_id == id).order_by(pc.seq))).all()
        out = self._message_dict(row)
        # The row itself records the first change: queued, when and where it came from.
        out["events"] = [{"at": iso(row.created_at), "status": "queued", "link": None,
                          "node": row.node, "reason": f"from {row.origin}"}]
        out["events"] += [{"at": iso(e.at), "status": e.status, "link": e.link,
                           "node": e.node, "reason": e.reason} for e in events]
        out["part_refs"] = [{"seq": p.seq, "link": p.link, "carrier_ref": p.carrier_ref,
                             "status": p.status, "error": p.error} for p in parts]
        return out

    async def list_messages(self, *, status: str | None = None, to: str | None = None,
                            since: datetime | None = None, limit: int = 100,
                            account: str | None = None, link: str | None = None,
                            text: str | None = None) -> list[dict[str, Any]]:
        """Newest first; `text` matches anywhere in the text, ignoring case."""
        c = schema.messages.c
        q = select(*_MESSAGE_COLUMNS).order_by(c.id.desc()).limit(limit)
        if status:
            q = q.where(c.status == status)
        if to:
            q = q.where(c.recipient == to)
        if account:
            q = q.where(c.account == account)
        if link:
            q = q.where(c.link == link)
        if text:
            q = q.where(func.lower(c.text).contains(text.lower(), autoescape=True))
        if since:
            # Ids grow with time, so the primary key finds the start.
            q = q.where(c.id >= id_floor(since.timestamp()), c.created_at >= since.timestamp())
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [self._message_dict(r) for r in rows]

    # -- reads for the queue ------------------------------------------------

    async def find_client_keys(self, keys: list[str]) -> list[Any]:
        """Messages already stored under these idempotency keys, in key order."""
        c = schema.messages.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(c.id, c.recipient, c.status, c.parts, c.client_key)
                .where(c.client_key.in_(keys)))).all()
        order = {k: i for i, k in enumerate(keys)}
        return sorted(rows, key=lambda r: order[r.client_key])

    async def load_queued(self, node: str, after_id: int, limit: int) -> list[Any]:
        """Queued messages of this node in id order, for crash recovery and backlog."""
        c = schema.messages.c
        async with self.engine.connect() as conn:
            return list((await conn.execute(
                select(schema.messages)
                .where(c.node == node, c.status.in_(("queued", "sending")), c.id > after_id)
                .order_by(c.id).limit(limit))).all())

    async def load_messages(self, node: str, ids: list[int]) -> list[Any]:
        """This node's queued messages by id (just taken over or handed over), in id order."""
        c = schema.messages.c
        async with self.engine.connect() as conn:
            return list((await conn.execute(
                select(schema.messages)
                .where(c.id.in_(ids), c.node == node, c.status.in_(("queued", "sending")))
                .order_by(c.id))).all())

    async def count_queued(self, node: str) -> int:
        c = schema.messages.c
        async with self.engine.connect() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(schema.messages)
                .where(c.node == node, c.status.in_(("queued", "sending"))))).scalar_one())

    async def sent_parts(self, message_ids: list[int]) -> dict[int, dict[int, str]]:
        """Parts already taken by a carrier (seq -> status), so recovery resends only the
        rest and still counts the reports that arrived before it."""
        pc = schema.parts.c
        out: dict[int, dict[int, str]] = {}
        async with self.engine.connect() as conn:
            for i in range(0, len(message_ids), 500):
                rows = (await conn.execute(
                    select(pc.message_id, pc.seq, pc.status)
                    .where(pc.message_id.in_(message_ids[i:i + 500])))).all()
                for r in rows:
                    out.setdefault(r.message_id, {})[r.seq] = r.status
        return out

    async def find_part(self, link: str, carrier_ref: str) -> Any | None:
        """The part and what a DLR needs of its message (message_id, seq, parts, status,
        and the message's recipient, sender, account, origin, text, dlr_url, dlr_mask)."""
        pc, mc = schema.parts.c, schema.messages.c
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(pc.message_id, pc.seq, mc.parts, mc.status, mc.recipient, mc.sender,
                       mc.account, mc.origin, mc.text, mc.dlr_url, mc.dlr_mask)
                .join(schema.messages, mc.id == pc.message_id)
                .where(pc.link == link, pc.carrier_ref == carrier_ref))).first()

    async def part_statuses(self, message_id: int) -> list[str]:
        pc = schema.parts.c
        async with self.engine.connect() as conn:
            return list((await conn.execute(
                select(pc.status).where(pc.message_id == message_id))).scalars())
