"""kill -9 of `omnigate run` between the commit and the answer: a spool file or an outbox
row is found again after restart and answered with the message stored the first time,
and the simulator sees it once.

The window is held open with real faults, not mocks: a directory where `NAME.ok`
must go (the rename onto it fails), and an SQLite trigger refusing the `queued`
write-back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from omnigate.sim.smpp import SmscSimulator
from tests.test_daemon import start_daemon, wait_ready, write_config

SMS = b"To: 0701234567\n\nPump 3 pressure low\n"


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def crash_and_restart(config: Path, base: str, smsc: SmscSimulator,
                            window_open: Callable[[], bool], close_window: Callable[[], None],
                            answered: Callable[[], bool]) -> None:
    """Start the daemon, let it commit and send (the answer failing), kill -9 it, remove
    the fault, start it again and wait for the answer."""
    log = config.with_name("daemon.log")
    proc = start_daemon(config, log)
    try:
        await wait_ready(base, proc)
        await smsc.wait_for(1, timeout=10)
        await asyncio.sleep(0.5)  # the answer was tried (and failed) meanwhile
        assert window_open()
        os.kill(proc.pid, signal.SIGKILL)
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL
        close_window()
        proc = start_daemon(config, log)
        await wait_ready(base, proc)
        await until(answered)
        await asyncio.sleep(0.5)  # a second submit would have reached the simulator by now
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 15)
    assert smsc.submit_count == 1, [s.text for s in smsc.submits]


async def stored_id(base: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/api/v1/messages") as resp:
        messages = await resp.json()
    assert len(messages) == 1
    return int(messages[0]["id"])


async def test_kill_9_between_commit_and_move(tmp_path: Path, smsc: SmscSimulator,
                                              unused_tcp_port: int) -> None:
    config = tmp_path / "omnigate.toml"
    write_config(config, f"sqlite+aiosqlite:///{tmp_path}/o.db", unused_tcp_port, smsc.port)
    spool = tmp_path / "spool"
    with config.open("a") as fh:
        fh.write(f'[spool]\ndir = "{spool}"\nsettle = 0.05\nrescan = 0.3\n')
    blocker = spool / "processed" / "alarm.ok"
    (blocker / "x").mkdir(parents=True)  # renaming alarm.ok into place fails
    (spool / "outgoing").mkdir()
    (spool / "outgoing" / ".alarm.tmp").write_bytes(SMS)
    os.rename(spool / "outgoing" / ".alarm.tmp", spool / "outgoing" / "alarm")
    base = f"http://127.0.0.1:{unused_tcp_port}"
    await crash_and_restart(
        config, base, smsc,
        window_open=lambda: (spool / "outgoing" / "alarm").exists(),
        close_window=lambda: shutil.rmtree(blocker),
        answered=lambda: (spool / "processed" / "alarm").exists())
    ok = (spool / "processed" / "alarm.ok").read_text().split()
    assert ok[0] == "OK" and ok[2] == "+46701234567"
    # the daemon is stopped; the store still says which message the file became
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("SELECT id FROM messages").fetchall() == [(int(ok[1]),)]


async def test_kill_9_between_commit_and_row_write_back(
        tmp_path: Path, smsc: SmscSimulator, unused_tcp_port: int) -> None:
    config = tmp_path / "omnigate.toml"
    store = tmp_path / "o.db"
    write_config(config, f"sqlite+aiosqlite:///{store}", unused_tcp_port, smsc.port)
    with config.open("a") as fh:
        fh.write("[[sql]]\npoll_interval = 0.1\nclaim_timeout = 1.0\n")
    db = sqlite3.connect(store, isolation_level=None)
    db.executescript("""
        CREATE TABLE sms_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient VARCHAR(64),
            text TEXT, sender VARCHAR(32), status VARCHAR(16) DEFAULT 'new' NOT NULL,
            message_id BIGINT, error TEXT, created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            updated_at DATETIME);
        CREATE TRIGGER hold_window BEFORE UPDATE OF status ON sms_outbox
            WHEN NEW.status = 'queued' BEGIN SELECT RAISE(ABORT, 'held for the test'); END;
    """)
    if shutil.which("sqlite3"):
        subprocess.run(["sqlite3", str(store), "insert into sms_outbox(recipient, text) "
                                               "values ('0701234567','hello')"], check=True)
    else:
        db.execute("INSERT INTO sms_outbox (recipient, text) VALUES ('0701234567', 'hello')")

    def row() -> tuple[str, int | None]:
        return db.execute("SELECT status, message_id FROM sms_outbox").fetchone()

    started = time.monotonic()
    await crash_and_restart(
        config, f"http://127.0.0.1:{unused_tcp_port}", smsc,
        window_open=lambda: row() == ("claimed", None),
        close_window=lambda: db.execute("DROP TRIGGER hold_window"),
        answered=lambda: row()[0] in {"queued", "sent", "delivered"})
    _, message_id = row()
    assert message_id == db.execute("SELECT id FROM messages").fetchone()[0]
    assert time.monotonic() - started < 30
