"""File spool and SQL table benchmark: pickup latency and throughput of both ingresses.

The daemon (`omnigate run`) runs as its own process with the default settings of
[spool] and [[sql]]; the SMPP simulator runs in this process, so each submit is
timestamped as it arrives (same clock as the writer's). Measured:

* spool pickup: a file renamed into outgoing/ -> its submit at the simulator,
  p50/p99 over files dropped one at a time;
* spool burst: files renamed into outgoing/ as fast as possible -> their .ok in
  processed/ (accepted: committed) and -> the simulator; files/s, median of runs;
* SQL pickup: a row committed by another connection -> its submit at the
  simulator, p50/p99, polled (SQLite) and with LISTEN (PostgreSQL);
* SQL backlog: 10,000 rows committed at once -> all `queued` (accepted) and all at
  the simulator; rows/s, median of runs.

Writes bench/results/spool.json and prints it.
Usage: python bench/spool.py [--quick] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # a sibling module, not a package
    PG_URL,
    Processes,
    daemon_toml,
    free_port,
    medians,
    one_link_toml,
    pct,
    pg_reachable,
    wait_ready,
    write_results,
)

from omnigate.sim.smpp import SmscSimulator

BENCH_DB = "omnigate_bench"  # PostgreSQL: a database of its own, apart from the tests'


def write_config(path: Path, *, store: str, http_port: int, smsc_port: int,
                 listen: bool) -> None:
    path.write_text(daemon_toml(store, http_port) + one_link_toml(smsc_port) + f"""[spool]
dir = "spool"
[[sql]]
{'listen = "sms_outbox"' if listen else ""}
""")


class Arrivals:
    """Submits at the simulator by text, with their arrival time (wall clock)."""

    def __init__(self, sim: SmscSimulator) -> None:
        self.sim = sim
        self.seen = 0
        self.at: dict[str, float] = {}

    def collect(self) -> None:
        subs = list(self.sim.submits)[self.seen:]
        self.seen += len(subs)
        for s in subs:
            self.at.setdefault(s.text, s.received_at)

    async def wait(self, texts: list[str], timeout: float) -> float:
        """Until every text arrived; the time the last one did."""
        deadline = time.monotonic() + timeout
        while True:
            self.collect()
            if all(t in self.at for t in texts):
                return max(self.at[t] for t in texts)
            if time.monotonic() > deadline:
                missing = sum(t not in self.at for t in texts)
                raise RuntimeError(f"{missing} of {len(texts)} never reached the simulator")
            await asyncio.sleep(0.005)


def drop_file(outgoing: Path, name: str, text: str) -> float:
    """Write then rename; the time of the rename."""
    tmp = outgoing / f".{name}.tmp"
    tmp.write_text(f"To: 0701234567\n\n{text}\n")
    os.rename(tmp, outgoing / name)
    return time.time()


async def spool_pickup(work: Path, arrivals: Arrivals, count: int) -> dict[str, float]:
    outgoing = work / "spool" / "outgoing"
    lat = []
    for i in range(count):
        text = f"pickup {i}"
        t0 = drop_file(outgoing, f"p{i}", text)
        lat.append(await arrivals.wait([text], 10) - t0)
        await asyncio.sleep(random.uniform(0.01, 0.2))
    lat.sort()
    return {"files": count, "p50_ms": round(pct(lat, 0.5) * 1000, 1),
            "p99_ms": round(pct(lat, 0.99) * 1000, 1)}


async def spool_burst(work: Path, arrivals: Arrivals, run: int, count: int) -> dict[str, float]:
    outgoing, processed = work / "spool" / "outgoing", work / "spool" / "processed"
    texts = [f"burst {run}-{i}" for i in range(count)]
    start = time.time()
    for i, text in enumerate(texts):
        drop_file(outgoing, f"b{run}-{i}", text)
    written = time.time()
    while sum(1 for _ in processed.glob(f"b{run}-*.ok")) < count:
        if time.time() - start > 120:
            raise RuntimeError("burst not accepted within 120 s")
        await asyncio.sleep(0.01)
    accepted = time.time()
    last = await arrivals.wait(texts, 120)
    return {"files": count, "write_s": round(written - start, 3),
            "accepted_per_s": round(count / (accepted - start)),
            "end_to_end_per_s": round(count / (last - start))}


class Outbox:
    """An application writing rows: its own connection, committing each statement."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg: asyncpg.Connection | None = None
        self.db: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.url.startswith("postgresql"):
            self.pg = await asyncpg.connect(self.url.replace("+asyncpg", ""))
        else:
            self.db = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None,
                                      timeout=30)
        deadline = time.monotonic() + 20  # the daemon creates the table once it is up
        while True:
            try:
                await self.count("new")
                return
            except (asyncpg.UndefinedTableError, sqlite3.OperationalError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def insert(self, rows: list[str]) -> float:
        """Insert in one transaction; the time of the commit."""
        values = [("0701234567", t) for t in rows]
        if self.pg is not None:
            async with self.pg.transaction():
                await self.pg.executemany(
                    "INSERT INTO sms_outbox (recipient, text) VALUES ($1, $2)", values)
        else:
            assert self.db is not None
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO sms_outbox (recipient, text) VALUES (?, ?)", values)
            self.db.execute("COMMIT")
        return time.time()

    async def count(self, status: str) -> int:
        sql = f"SELECT count(*) FROM sms_outbox WHERE status = '{status}'"
        if self.pg is not None:
            return int(await self.pg.fetchval(sql))
        assert self.db is not None
        return int(self.db.execute(sql).fetchone()[0])

    async def close(self) -> None:
        if self.pg is not None:
            await self.pg.close()
        if self.db is not None:
            self.db.close()


async def sql_pickup(outbox: Outbox, arrivals: Arrivals, tag: str, count: int
                     ) -> dict[str, float]:
    lat = []
    for i in range(count):
        text = f"row {tag} {i}"
        t0 = await outbox.insert([text])
        lat.append(await arrivals.wait([text], 10) - t0)
        await asyncio.sleep(random.uniform(0.01, 0.6))  # rows come at no particular moment
    lat.sort()
    return {"rows": count, "p50_ms": round(pct(lat, 0.5) * 1000, 1),
            "p99_ms": round(pct(lat, 0.99) * 1000, 1)}


async def sql_backlog(outbox: Outbox, arrivals: Arrivals, run: int, count: int
                      ) -> dict[str, float]:
    texts = [f"backlog {run}-{i}" for i in range(count)]
    start = await outbox.insert(texts)
    while await outbox.count("new") + await outbox.count("claimed") > 0:
        if time.time() - start > 300:
            raise RuntimeError("backlog not taken within 300 s")
        await asyncio.sleep(0.05)
    accepted = time.time()
    last = await arrivals.wait(texts, 300)
    return {"rows": count, "accepted_per_s": round(count / (accepted - start)),
            "end_to_end_per_s": round(count / (last - start))}


def median_of(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {**medians(runs, [k for k in runs[0] if k.endswith("_per_s")]), "runs": runs}


async def with_daemon(store: str, listen: bool, body: Callable[[Path, Arrivals],
                      Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    sim = SmscSimulator(system_id="bench", password="bench", keep=200_000)
    await sim.start()
    with tempfile.TemporaryDirectory(prefix="omnigate-bench-spool-") as tmp:
        work = Path(tmp)
        http_port = free_port()
        config = work / "omnigate.toml"
        write_config(config, store=store.replace("WORK", str(work)), http_port=http_port,
                     smsc_port=sim.port, listen=listen)
        procs = Processes(work)
        try:
            procs.daemon(config)
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, f"http://127.0.0.1:{http_port}", link_up=True)
            return await body(work, Arrivals(sim))
        except BaseException:
            print(procs.tail("daemon.log"), file=sys.stderr)
            raise
        finally:
            procs.stop_all()
            await sim.stop()


async def fresh_pg_database() -> str:
    admin = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {BENCH_DB}")
    finally:
        await admin.close()
    return PG_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer files and rows, one run each")
    p.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL runs")
    args = p.parse_args()
    runs = 1 if args.quick else 3
    files, burst, rows, backlog = (50, 500, 50, 2000) if args.quick else (200, 2000, 200, 10_000)
    out: dict[str, Any] = {"date": date.today().isoformat(), "quick": args.quick,
                           "cpus": os.cpu_count()}

    async def sqlite_runs(work: Path, arrivals: Arrivals) -> dict[str, Any]:
        result: dict[str, Any] = {"spool_pickup": await spool_pickup(work, arrivals, files)}
        result["spool_burst"] = median_of(
            [await spool_burst(work, arrivals, r, burst) for r in range(runs)])
        outbox = Outbox(f"sqlite:///{work}/omnigate.db")
        await outbox.open()
        try:
            result["sql_pickup_polled"] = await sql_pickup(outbox, arrivals, "polled", rows)
            result["sql_backlog"] = median_of(
                [await sql_backlog(outbox, arrivals, r, backlog) for r in range(runs)])
        finally:
            await outbox.close()
        return result

    out["sqlite"] = await with_daemon("sqlite+aiosqlite:///WORK/omnigate.db", False, sqlite_runs)
    if not args.no_pg and pg_reachable():
        url = await fresh_pg_database()

        async def pg_runs(work: Path, arrivals: Arrivals) -> dict[str, Any]:
            outbox = Outbox(url)
            await outbox.open()
            try:
                result = {"sql_pickup_listen": await sql_pickup(outbox, arrivals, "listen",
                                                                rows)}
                result["sql_backlog"] = median_of(
                    [await sql_backlog(outbox, arrivals, r, backlog) for r in range(runs)])
            finally:
                await outbox.close()
            return result

        out["postgresql"] = await with_daemon(url, True, pg_runs)
    write_results("spool.json", out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
