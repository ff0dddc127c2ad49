"""End-to-end throughput benchmark: HTTP sendsms -> omnigate -> SMPP -> SMSC simulator.

The daemon and the simulator run as separate processes on loopback, as in
production; this process is the HTTP load generator (aiohttp on uvloop). For
each store (SQLite, and PostgreSQL when reachable) it measures:

* HTTP accepted/s and end-to-end messages/s reaching the SMSC at full load;
* accept-to-submit latency p50/p99 (from the store: commit time -> `sent`
  event) at half the measured end-to-end rate, paced;
* the daemon's CPU time per message at full load (steadier than the rates
  when the machine is shared), and its peak RSS;
and once (SQLite): RSS with 100,000 messages queued behind a dead link, and
the time from starting the daemon to the first message reaching the SMSC with
1,000,000 queued.

Writes bench/results/<date>-throughput.json and prints a summary.
The full-load client is wrk when installed (`make bench` installs it from
Debian's packages when it can): a Python client costs the 2-core machine
about as much CPU as the daemon and would be what is measured.
Usage: python bench/throughput.py [--seconds 10] [--concurrency 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # a sibling module, not a package
    PG_URL,
    ROOT,
    bench_dir,
    blast,
    cpu_seconds,
    daemon_toml,
    dated_name,
    free_port,
    install_uvloop,
    medians,
    numbers,
    one_link_toml,
    pct,
    peak_rss_mb,
    pg_reachable,
    report_head,
    rss_kb,
    sim_count,
    wait_ready,
    wait_sim,
    write_report,
    wrk_blast,
)


def write_config(path: Path, *, store: str, http_port: int, smsc_port: int) -> None:
    path.write_text(daemon_toml(store, http_port) + "[queue]\nmemory_limit = 50000\n"
                    + one_link_toml(smsc_port, reconnect=True))


async def latencies(store_url: str, after_id: int) -> list[float]:
    from sqlalchemy import select

    from omnigate.store.db import make_engine
    from omnigate.store.schema import events, messages

    engine = make_engine(store_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(events.c.at - messages.c.created_at)
                .join(messages, messages.c.id == events.c.message_id)
                .where(events.c.status == "sent", messages.c.id > after_id))).scalars().all()
    finally:
        await engine.dispose()
    return sorted(float(r) for r in rows)


async def max_id(store_url: str) -> int:
    from sqlalchemy import func, select

    from omnigate.store.db import make_engine
    from omnigate.store.schema import messages

    engine = make_engine(store_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.max(messages.c.id)))).scalar() or 0)
    finally:
        await engine.dispose()


async def run_store(kind: str, store_url: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "postgresql":
        sys.path.insert(0, str(ROOT))
        from tests.support import reset_pg

        await reset_pg(store_url)
    with bench_dir(f"omnigate-bench-{kind}-") as (work, procs):
        http_port, smsc_port, control = free_port(), free_port(), free_port()
        config = work / "omnigate.toml"
        write_config(config, store=store_url, http_port=http_port, smsc_port=smsc_port)
        base = f"http://127.0.0.1:{http_port}"
        result: dict[str, Any] = {"store": kind}
        procs.sim(smsc_port, control, dlr=args.dlr)
        daemon = procs.daemon(config)
        conn = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            await wait_ready(session, base, link_up=True)
            # Warm-up (imports, caches, connections) is not measured.
            await blast(session, base, numbers(500, args.distinct), args.concurrency)
            await wait_sim(session, control, 500, 60)
            done_before = await sim_count(session, control)
            cpu_before = cpu_seconds(daemon.pid)
            if shutil.which("wrk"):
                start, http_end, sent, refused = await asyncio.to_thread(
                    wrk_blast, base, args.seconds, args.concurrency, args.distinct, work)
                client = "wrk"
            else:
                sent = args.n
                start, http_end, refused = await blast(
                    session, base, numbers(sent, args.distinct), args.concurrency)
                client = "aiohttp"
            accepted = sent - refused
            smsc_end = await wait_sim(session, control, done_before + accepted, 300)
            e2e = accepted / (smsc_end - start)
            cpu = cpu_seconds(daemon.pid) - cpu_before
            result.update({
                # CPU per message is steadier than rates on a shared machine
                "daemon_cpu_us_per_message": round(cpu / accepted * 1e6, 1),
                "client": client, "messages": accepted, "concurrency": args.concurrency,
                "refused": refused,
                "http_accepted_per_s": round(accepted / (http_end - start)),
                "end_to_end_per_s": round(e2e),
            })
            # Latency at half the measured end-to-end rate, paced.
            before = await max_id(store_url)
            half = max(100.0, e2e / 2)
            count = min(args.n, int(half * 4))
            done_before = await sim_count(session, control)
            await blast(session, base, numbers(count, args.distinct), args.concurrency, half)
            await wait_sim(session, control, done_before + count, 120)
            await asyncio.sleep(0.5)  # the last `sent` events reach the store
            lat = await latencies(store_url, before)
            result.update({
                "half_load_per_s": round(half), "latency_samples": len(lat),
                "accept_to_submit_p50_ms": round(pct(lat, 0.50) * 1000, 2),
                "accept_to_submit_p99_ms": round(pct(lat, 0.99) * 1000, 2),
                "daemon_peak_rss_mb": peak_rss_mb(daemon.pid),
            })
        daemon.send_signal(signal.SIGTERM)
        result["daemon_exit_code"] = daemon.wait(timeout=30)
        return result


def stores() -> list[tuple[str, str | None]]:
    """SQLite (a fresh file per run), and PostgreSQL when reachable."""
    return [("sqlite", None)] + ([("postgresql", PG_URL)] if pg_reachable() else [])


async def store_runs(kind: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """`args.runs` full-load runs on one store: their medians and the runs; prints the medians."""
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(await run_store(kind, url or f"sqlite+aiosqlite:///{tmp}/b.db", args))
    median = medians(runs)
    print(f"{kind}: {json.dumps(median)}", flush=True)
    return {"median": median, "runs": runs}


async def queued_memory_and_restart(args: argparse.Namespace) -> dict[str, Any]:
    """RSS with 100k queued behind a dead link; restart time with 1M queued (SQLite)."""
    with bench_dir("omnigate-bench-queue-") as (work, procs):
        http_port, smsc_port, control = free_port(), free_port(), free_port()
        store_url = f"sqlite+aiosqlite:///{work}/omnigate.db"
        config = work / "omnigate.toml"
        write_config(config, store=store_url, http_port=http_port, smsc_port=smsc_port)
        base = f"http://127.0.0.1:{http_port}"
        out: dict[str, Any] = {}
        daemon = procs.daemon(config)  # no simulator yet: the link stays down
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base, link_up=False)
            batch = numbers(1000, 1000)
            for i in range(args.queued // 1000):
                async with session.post(f"{base}/send", data={
                        "numbers": ",".join(batch), "text": f"queued batch {i}"}) as resp:
                    assert resp.status == 200, await resp.text()
            await asyncio.sleep(1)
            out["queued"] = args.queued
            out["rss_with_queued_mb"] = round(rss_kb(daemon.pid, "VmRSS") / 1024, 1)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        procs.procs.remove(daemon)
        await asyncio.to_thread(fill_store, str(work / "omnigate.db"), args.restart_queued)
        procs.sim(smsc_port, control, dlr=False)
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(0.5)
            begin = time.monotonic()
            daemon = procs.daemon(config)
            first = await wait_sim(session, control, 1, 120)
            out["restart_queued"] = args.restart_queued
            out["restart_to_first_submit_s"] = round(first - begin, 2)
        return out


def fill_store(db_path: str, total: int) -> None:
    """Top the SQLite store up to `total` queued messages by copying a queued row (in SQL)."""
    import sqlite3

    from omnigate.store.schema import messages

    cols = [c.name for c in messages.columns]
    copied = ", ".join("t.id + seq.n" if c == "id" else "NULL" if c == "client_key" else f"t.{c}"
                       for c in cols)
    conn = sqlite3.connect(db_path)
    try:
        have = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        conn.execute(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?) "
            f"INSERT INTO messages ({', '.join(cols)}) SELECT {copied} FROM seq, "
            "(SELECT * FROM messages ORDER BY id DESC LIMIT 1) AS t", (total - have,))
        conn.commit()
    finally:
        conn.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000,
                   help="messages in the full-load run without wrk, and most at half load")
    p.add_argument("--seconds", type=int, default=10, help="full-load duration with wrk")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--distinct", type=int, default=10000, help="distinct recipient numbers")
    p.add_argument("--dlr", action="store_true", help="simulator sends delivery receipts")
    p.add_argument("--queued", type=int, default=100_000)
    p.add_argument("--restart-queued", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3, help="full-load runs per store; medians reported")
    p.add_argument("--quick", action="store_true", help="small numbers, for trying the bench")
    p.add_argument("--only", choices=["throughput", "queue"], help="run one part only")
    args = p.parse_args()
    if args.quick:
        args.n, args.seconds, args.queued, args.restart_queued, args.runs = 2000, 3, 5000, 20000, 1

    report: dict[str, Any] = {**report_head(args), "stores": {}}
    for kind, url in stores() if args.only != "queue" else []:
        report["stores"][kind] = await store_runs(kind, url, args)
    if args.only != "throughput":
        report["queue"] = await queued_memory_and_restart(args)
        print(f"queue: {json.dumps(report['queue'])}", flush=True)
    write_report(dated_name(report["date"], "throughput", args.only), report)


if __name__ == "__main__":
    install_uvloop()
    asyncio.run(main())
