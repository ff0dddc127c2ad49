"""SQL table ingress: rows inserted by other connections (sqlite3, asyncpg, the sqlite3 and
psql command lines) -> Gateway -> SMPP -> simulator, and the row following the message."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import subprocess
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from omnigate.config import parse
from omnigate.gateway import Gateway
from omnigate.model import Inbound
from omnigate.sim.smpp import SmscSimulator
from tests.support import make_config

TIMEOUT = 10.0
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_ddl(dialect: str) -> str:
    """The README's CREATE statements for this dialect (docs that cannot drift)."""
    blocks = [b for b in re.findall(r"```sql\n(.*?)```", README, re.S)
              if b.startswith(f"-- {dialect}")]
    assert len(blocks) == 1, f"README has no single ```sql block for {dialect}"
    return blocks[0]
FINAL = {"delivered", "undelivered", "failed", "expired", "rejected"}


def dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Table:
    """The outbox as an outside application sees it: its own connection, plain SQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")

    async def execute(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.postgres:
            conn = await asyncpg.connect(dsn(self.url))
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()
        path = make_url(self.url).database
        qmark = sql
        for i in range(len(args), 0, -1):
            qmark = qmark.replace(f"${i}", "?")
        with sqlite3.connect(path, timeout=10) as db:  # commits on leaving the block
            return db.execute(qmark, args).fetchall()

    async def insert(self, recipient: str | None, text: str | None,
                     sender: str | None = None) -> int:
        rows = await self.execute("INSERT INTO sms_outbox (recipient, text, sender) "
                                  "VALUES ($1, $2, $3) RETURNING id", recipient, text, sender)
        return int(rows[0][0])

    async def row(self, id: int) -> dict[str, Any]:
        rows = await self.execute("SELECT status, message_id, error, updated_at FROM sms_outbox "
                                  "WHERE id = $1", id)
        status, message_id, error, updated = rows[0]
        return {"status": status, "message_id": message_id, "error": error, "updated_at": updated}

    async def wait(self, id: int, wanted: set[str], timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            row = await self.row(id)
            if row["status"] in wanted:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"row {id} stuck in {row}")
            await asyncio.sleep(0.05)


async def drop_tables(url: str) -> None:
    await Table(url).execute("DROP TABLE IF EXISTS sms_outbox, sms_inbox"
                             if url.startswith("postgresql") else "DROP TABLE IF EXISTS sms_outbox")
    if not url.startswith("postgresql"):
        await Table(url).execute("DROP TABLE IF EXISTS sms_inbox")


async def start(gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
                store_url: str, node: int = 0, **sql: Any) -> Gateway:
    settings = {"poll_interval": 0.1, **sql}
    config = make_config(store_url, smsc.port, tmp_path, sql=[settings],
                         node={"name": f"node{node}", "id": node})
    return await gateway_factory(config)


@pytest.fixture
async def outbox_url(store_url: str) -> str:
    """The outbox lives in the store's own database (the default); tables from earlier
    PostgreSQL tests are dropped."""
    if store_url.startswith("postgresql"):
        await drop_tables(store_url)
    return store_url


async def test_rows_are_sent_and_followed_to_delivered(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        outbox_url: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, outbox_url)
    table = Table(outbox_url)
    first = await table.insert("0701234567", "hello from a table", "Omnigate")
    second = await table.insert("+46707654321", "second")
    row = await table.wait(first, {"delivered"})
    assert row["error"] is None and row["updated_at"] is not None
    async with asyncio.timeout(TIMEOUT):  # the row may be written a moment before the store
        while (stored := await gw.store.get_message(row["message_id"]))["status"] != "delivered":
            await asyncio.sleep(0.02)
    assert (stored["to"], stored["origin"], stored["account"]) == ("+46701234567", "sql", "sql:sql")
    assert [e["status"] for e in stored["events"]][:2] == ["queued", "sent"]
    assert (await table.wait(second, {"delivered"}))["message_id"] != row["message_id"]
    assert sorted((s.destination, s.text, s.source) for s in smsc.submits) == [
        ("46701234567", "hello from a table", "Omnigate"), ("46707654321", "second", "")]


@pytest.mark.parametrize(("recipient", "text", "error"), [
    (None, "hi", "recipient: missing"),
    ("", "hi", "recipient: missing"),
    ("0701", "hi", "recipient: '0701' is not a valid number for region SE (too short)"),
    ("0701234567,0707654321", "hi", "recipient: one number per row"),
    ("0701234567", None, "text: missing"),
    ("0701234567", "x" * 2000, "text: text needs 14 parts, at most 10 allowed"),
])
async def test_bad_rows_are_rejected_with_the_reason(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        recipient: str | None, text: str | None, error: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"
    await start(gateway_factory, smsc, tmp_path, url)
    table = Table(url)
    bad = await table.insert(recipient, text)
    good = await table.insert("0701234567", "fine")
    row = await table.wait(bad, {"rejected"})
    assert (row["error"], row["message_id"]) == (error, None)
    await table.wait(good, {"delivered"})
    assert smsc.submit_count == 1


async def test_command_line_sqlite3_on_the_default_database(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    """The issue's promise: `sqlite3 var/omnigate.db "insert ..."` sends an SMS."""
    if shutil.which("sqlite3") is None:
        pytest.fail("the sqlite3 command line is needed (apt-get install sqlite3)")
    db = tmp_path / "var" / "omnigate.db"
    await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{db}")
    subprocess.run(["sqlite3", str(db), "insert into sms_outbox(recipient, text) "
                                        "values ('0701234567','hello')"], check=True, timeout=10)
    await smsc.wait_for(1)
    assert [(s.destination, s.text) for s in smsc.submits] == [("46701234567", "hello")]
    await Table(f"sqlite+aiosqlite:///{db}").wait(1, {"delivered"})


async def test_psql_command_line_and_listen_pickup(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        pg_url: str) -> None:
    if shutil.which("psql") is None:
        pytest.fail("the psql command line is needed (apt-get install postgresql-client)")
    """The README's DDL (trigger included) through psql, then create = false."""
    await drop_tables(pg_url)
    url = make_url(pg_url)
    psql = ["psql", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
            "-U", url.username or "postgres", "-d", url.database or "", "-q",
            "-v", "ON_ERROR_STOP=1"]
    subprocess.run([*psql, "-c", readme_ddl("PostgreSQL")], check=True, timeout=10)
    gw = await start(gateway_factory, smsc, tmp_path, pg_url, poll_interval=30.0,
                     listen="sms_outbox", create=False)
    assert gw.sql[0]._listener is not None
    await asyncio.sleep(0.2)  # the first (empty) poll is done; the next is 30 s away
    started = time.monotonic()
    subprocess.run([*psql, "-c", "insert into sms_outbox(recipient, text) "
                                 "values ('0701234567','via psql')"], check=True, timeout=10)
    await smsc.wait_for(1, timeout=5)
    assert time.monotonic() - started < 5.0  # polling alone would take 30 s
    assert [s.text for s in smsc.submits] == ["via psql"]


async def test_two_gateways_on_one_table_never_send_a_row_twice(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        outbox_url: str) -> None:
    """Two nodes (sharing the store, as a cluster does) claim from one outbox at once."""
    nodes = [await start(gateway_factory, smsc, tmp_path, outbox_url, node=node, batch=20,
                         poll_interval=60.0) for node in (1, 2)]
    for gw in nodes:  # the test claims, at the same moments on both; write-backs go on
        await gw.sql[0].stop()
    table = Table(outbox_url)
    count = 200
    values = ", ".join(f"('0701{i:06d}', 'row {i}')" for i in range(count))
    await table.execute(f"INSERT INTO sms_outbox (recipient, text) VALUES {values}")
    async with asyncio.timeout(20):  # both claim at the same moments until the table is empty
        while sum(await asyncio.gather(*(gw.sql[0].poll() for gw in nodes))):
            pass
    await smsc.wait_for(count, timeout=20)
    await asyncio.sleep(0.5)  # a double would have arrived by now
    assert smsc.submit_count == count
    assert sorted(s.text for s in smsc.submits) == sorted(f"row {i}" for i in range(count))
    claimed = [gw.sql[0].claimed for gw in nodes]
    assert sum(claimed) == count, claimed  # no row was claimed twice
    deadline = time.monotonic() + TIMEOUT
    while True:
        rows = await table.execute("SELECT status, count(*) FROM sms_outbox GROUP BY status")
        if dict(rows) == {"delivered": count} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert dict(rows) == {"delivered": count}


async def test_separate_outbox_database_and_column_mapping(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    """An application's own table in another database, with its own column names."""
    app_db = tmp_path / "app.db"
    with sqlite3.connect(app_db) as db:
        db.execute("CREATE TABLE outgoing_sms (nr INTEGER PRIMARY KEY AUTOINCREMENT, "
                   "phone TEXT, body TEXT, state TEXT NOT NULL DEFAULT 'new', sms_id BIGINT, "
                   "problem TEXT, changed TIMESTAMP)")
        db.execute("INSERT INTO outgoing_sms (phone, body) VALUES ('0701234567', 'mapped')")
    columns = {"id": "nr", "recipient": "phone", "text": "body", "sender": None,
               "status": "state", "message_id": "sms_id", "error": "problem",
               "created_at": None, "updated_at": "changed"}
    await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/store.db",
                url=f"sqlite+aiosqlite:///{app_db}", outbox="outgoing_sms", inbox=None,
                create=False, columns=columns)
    await smsc.wait_for(1)
    deadline = time.monotonic() + TIMEOUT
    while True:
        with sqlite3.connect(app_db) as db:
            state, sms_id, changed = db.execute(
                "SELECT state, sms_id, changed FROM outgoing_sms").fetchone()
        if state == "delivered" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert state == "delivered" and sms_id and changed
    assert [s.text for s in smsc.submits] == ["mapped"]


async def test_inbound_rows(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                            tmp_path: Path, outbox_url: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, outbox_url)
    received = datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
    await gw.sql[0].deliver_inbound(
        Inbound(link="smsc1", sender="46701234567", recipient="4670000", text="Svar: ja, åk",
                received_at=received), ref="IN-2026-000123")
    rows = await Table(outbox_url).execute("SELECT sender, recipient, text, link, ref "
                                           "FROM sms_inbox")
    assert rows == [("46701234567", "4670000", "Svar: ja, åk", "smsc1", "IN-2026-000123")]


async def test_database_away_is_retried_not_fatal(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    """The outbox's database is not there at first (a directory in the way); once it is,
    rows flow. The gateway keeps running throughout."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    app_db = app_dir / "app.db"
    app_db.mkdir()  # SQLite cannot open a directory: "unable to open database file"
    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db",
                     url=f"sqlite+aiosqlite:///{app_db}", create=False)
    await asyncio.sleep(1.2)  # a few failed polls
    assert gw.sql[0]._poller is not None and not gw.sql[0]._poller.done()
    app_db.rmdir()
    with sqlite3.connect(app_db) as db:
        db.executescript(readme_ddl("SQLite"))
        db.execute("INSERT INTO sms_outbox (recipient, text) VALUES ('0701234567', 'back')")
    await smsc.wait_for(1, timeout=10)  # the back-off is at most 2 s at this point
    await Table(f"sqlite+aiosqlite:///{app_db}").wait(1, {"delivered"})


def test_check_config_names_sql_problems() -> None:
    with pytest.raises(Exception, match=r"sql\[0\]\.url: Value error, use sqlite\+aiosqlite"):
        parse({"sql": [{"url": "mysql://x"}]})
    with pytest.raises(Exception, match=r"sql: Value error, \[\[sql\]\] name 'a' is used twice"):
        parse({"sql": [{"name": "a"}, {"name": "a"}]})


def test_readme_config_examples_are_valid() -> None:
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S)
              if "[spool]" in b or "[[sql]]" in b]
    assert len(blocks) == 2
    for block in blocks:
        config = parse(tomllib.loads(block))
        assert config.spool is not None or config.sql


async def test_retry_reaches_the_row(gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    """A temporary SMSC error shows as `queued` with the retry's reason, then the row goes
    on to `delivered` with the error cleared."""
    from omnigate.carriers.smpp.codec import ESME_RSYSERR

    url = f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"
    table = Table(url)
    async with SmscSimulator(system_id="omnigate", password="secret", dlr=True,
                             fail_every=2, fail_status=ESME_RSYSERR) as sim:
        config = make_config(url, sim.port, tmp_path, sql=[{"poll_interval": 0.1}],
                             retry={"initial": 1.5, "maximum": 2.0, "jitter": 0.0})
        await gateway_factory(config)
        ok = await table.insert("0701234567", "first goes through")
        await table.wait(ok, {"delivered"})
        retried = await table.insert("0701234567", "second fails once")
        row = await table.wait(retried, {"queued"})
        deadline = time.monotonic() + TIMEOUT
        while not (row["error"] or "").startswith("retry in"):
            assert time.monotonic() < deadline, row
            row = await table.row(retried)
        assert "ESME_RSYSERR" in row["error"], row
        row = await table.wait(retried, {"delivered"})
        assert row["error"] is None


async def test_permanent_failure_reaches_the_row(gateway_factory: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"
    async with SmscSimulator(system_id="omnigate", password="secret", fail_every=1) as sim:
        await gateway_factory(make_config(url, sim.port, tmp_path, sql=[{"poll_interval": 0.1}]))
        table = Table(url)
        failed = await table.insert("0701234567", "refused by the SMSC")
        row = await table.wait(failed, {"failed"})
        assert row["message_id"] and "ESME_RINVDSTADR" in row["error"], row


async def test_lost_listen_connection_is_made_again(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        pg_url: str) -> None:
    """The server ends the LISTEN session (a restart, an administrator): omnigate listens
    again at once, and the next row is still picked up without waiting for a poll."""
    await drop_tables(pg_url)
    gw = await start(gateway_factory, smsc, tmp_path, pg_url, poll_interval=30.0,
                     listen="sms_outbox")
    source = gw.sql[0]
    first = source._listener
    assert first is not None
    killed = await Table(pg_url).execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'")
    assert killed == [(True,)]
    async with asyncio.timeout(5):
        while source._listener is first or source._listener is None:
            await asyncio.sleep(0.02)
    started = time.monotonic()
    await Table(pg_url).insert("0701234567", "after the reconnect")
    await smsc.wait_for(1, timeout=5)
    assert time.monotonic() - started < 5.0


async def test_database_away_at_start_does_not_stop_omnigate(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    from tests.support import closed_port

    gw = await start(gateway_factory, smsc, tmp_path, f"sqlite+aiosqlite:///{tmp_path}/s.db",
                     url=f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/x",
                     listen="sms_outbox")
    await asyncio.sleep(1.2)
    poller = gw.sql[0]._poller
    assert poller is not None and not poller.done()
    assert gw.health()["status"] == "ok"
