"""The store and its group committer against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from omnigate.store import Store, schema
from omnigate.store.writer import ConstraintError
from tests.support import reset_pg


def message_row(id: int, *, key: str | None = None, status: str = "queued",
                node: str = "n1") -> dict[str, Any]:
    now = time.time()
    return {"id": id, "client_key": key, "origin": "http", "account": None, "sender": None,
            "recipient": "+46701234567", "text": f"text {id}", "coding": 0, "parts": 1,
            "chars": 6, "flash": False, "report": True, "dlr_url": None, "dlr_mask": None,
            "priority": 0, "status": status,
            "attempts": 0, "link": None, "error": None, "node": node, "created_at": now,
            "updated_at": now, "not_before": now, "expires_at": now + 3600}


async def count(store: Store, table: Any) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_schema_is_created_and_versioned(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        async with store.engine.connect() as conn:
            version = (await conn.execute(
                text("select value from omnigate_meta where key='schema_version'"))).scalar_one()
        assert version == str(schema.SCHEMA_VERSION)
    finally:
        await store.close()
    # Opening again keeps the data and the version.
    store = await Store.open(store_url)
    await store.close()


async def test_concurrent_submits_share_commits(store_url: str) -> None:
    store = await Store.open(store_url, commit_interval=0.005)
    try:
        futures = [store.writer.commit({"messages": [message_row(i)]}) for i in range(1, 201)]
        await asyncio.gather(*futures)
        assert await count(store, schema.messages) == 200
        assert store.writer.commits < 200 / 4, "200 submits should need only a few commits"
    finally:
        await store.close()


async def test_one_bad_group_fails_alone(store_url: str) -> None:
    store = await Store.open(store_url, commit_interval=0.01)
    try:
        await store.writer.commit({"messages": [message_row(1, key="acct\x1fref\x1f0")]})
        good = store.writer.commit({"messages": [message_row(2)]})
        dup = store.writer.commit({"messages": [message_row(3, key="acct\x1fref\x1f0")]})
        also_good = store.writer.commit({"messages": [message_row(4)]})
        results = await asyncio.gather(good, dup, also_good, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], ConstraintError)
        assert await count(store, schema.messages) == 3
    finally:
        await store.close()


async def test_background_writes_are_flushed_on_close(store_url: str) -> None:
    store = await Store.open(store_url)
    await store.writer.commit({"messages": [message_row(7)]})
    store.writer.write("message_status", {"b_id": 7, "status": "failed", "error": "why",
                                          "updated_at": time.time()})
    store.writer.write("events", {"message_id": 7, "at": time.time(), "status": "failed",
                                  "node": "n1", "link": None, "reason": "why"})
    await store.close()
    store = await Store.open(store_url)
    try:
        msg = await store.get_message(7)
        assert msg is not None
        assert msg["status"] == "failed" and msg["error"] == "why"
        assert [e["status"] for e in msg["events"]] == ["queued", "failed"]
    finally:
        await store.close()


async def test_queue_reads(store_url: str) -> None:
    store = await Store.open(store_url)
    try:
        rows = [message_row(i) for i in range(1, 11)]
        rows[2]["status"] = "sent"
        rows[3]["node"] = "other"
        await store.writer.commit({"messages": rows})
        assert await store.count_queued("n1") == 8
        page = await store.load_queued("n1", after_id=0, limit=5)
        assert [r.id for r in page] == [1, 2, 5, 6, 7]
        rest = await store.load_queued("n1", after_id=7, limit=5)
        assert [r.id for r in rest] == [8, 9, 10]
        await store.writer.commit({"parts": [
            {"message_id": 5, "seq": 1, "link": "l", "carrier_ref": "abc", "status": "sent",
             "error": None, "updated_at": time.time()}]})
        assert await store.sent_parts([1, 5]) == {5: {1: "sent"}}
        found = await store.find_part("l", "abc")
        assert found is not None
        assert (found.message_id, found.seq, found.parts, found.status) == (5, 1, 1, "queued")
        assert await store.find_part("l", "nope") is None
        listed = await store.list_messages(status="queued", limit=3)
        assert [m["id"] for m in listed] == [10, 9, 8]
    finally:
        await store.close()


async def test_postgres_connection_loss_refuses_submits_and_keeps_status_writes(
        pg_url: str) -> None:
    """The writer's connection is killed server-side and the server stays unreachable for
    a while (the writer is pointed at a closed port): submitters hear 'unavailable' (not
    'accepted'), status writes wait and land once the writer has reconnected."""
    import asyncpg

    from omnigate.store.writer import StoreUnavailable

    store = await Store.open(pg_url)
    try:
        await store.writer.commit({"messages": [message_row(1)]})
        pid = store.writer._batches._conn.get_server_pid()
        admin = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        batches = store.writer._batches
        real_dsn, batches._dsn = batches._dsn, "postgresql://postgres@127.0.0.1:1/test"
        await asyncio.sleep(0.1)  # the terminated connection notices it is closed
        store.writer.write("message_status", {"b_id": 1, "status": "sent", "error": None,
                                              "updated_at": time.time()})
        with pytest.raises(StoreUnavailable):
            await store.writer.commit({"messages": [message_row(2)]})
        batches._dsn = real_dsn
        await asyncio.wait_for(store.writer.commit({"messages": [message_row(3)]}), 10)
        msg = await store.get_message(1)
        assert msg is not None and msg["status"] == "sent"
        assert await store.get_message(2) is None
        assert await store.get_message(3) is not None
    finally:
        await store.close()


@pytest.mark.parametrize("old", [2, 5])
async def test_older_stores_are_upgraded_in_place(store_url: str, old: int) -> None:
    """A store left by an older omnigate gets the newer columns and its data stays."""
    store = await Store.open(store_url)
    await store.writer.commit({"messages": [message_row(1)]})
    async with store.engine.begin() as conn:
        if old < 3:
            await conn.execute(text("DROP TABLE inbound_messages"))
            await conn.execute(text("DROP INDEX ix_inbound_message"))
            await conn.execute(text("ALTER TABLE inbound DROP COLUMN message_id"))
        else:
            await conn.execute(text("ALTER TABLE inbound_messages DROP COLUMN reply_to"))
        await conn.execute(text(f"UPDATE omnigate_meta SET value = '{old}'"))
    await store.close()
    store = await Store.open(store_url)
    try:
        async with store.engine.connect() as conn:
            await conn.execute(select(schema.inbound.c.message_id))
            await conn.execute(select(schema.inbound_messages.c.reply_to))
            version = (await conn.execute(select(schema.meta.c.value))).scalar_one()
        assert version == str(schema.SCHEMA_VERSION)
        assert await count(store, schema.messages) == 1
    finally:
        await store.close()


async def test_nodes_starting_together_on_a_new_database(pg_url: str) -> None:
    """Several nodes creating the schema at once: one creates it, the others wait and use it."""
    for _ in range(3):
        await reset_pg(pg_url)
        stores = await asyncio.gather(*(Store.open(pg_url) for _ in range(3)))
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(select(schema.meta.c.value))).scalars().all()
        for store in stores:
            await store.close()
        assert versions == [str(schema.SCHEMA_VERSION)]
