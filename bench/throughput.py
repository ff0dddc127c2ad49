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
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_URL = os.environ.get("OMNIGATE_TEST_PG_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def numbers(count: int, distinct: int) -> list[str]:
    return [f"070{1000000 + i % distinct:07d}" for i in range(count)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Processes:
    """The simulator and daemon child processes of one run; all killed at exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.workdir / log, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=self.workdir,
                                stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def sim(self, port: int, control: int, dlr: bool) -> subprocess.Popen[bytes]:
        args = ["omnigate.sim.smpp", "--listen", f"127.0.0.1:{port}", "--system-id", "bench",
                "--password", "bench", "--control", f"127.0.0.1:{control}", "--keep", "1000"]
        return self.spawn(*args, *(["--dlr"] if dlr else []), log="sim.log")

    def daemon(self, config: Path) -> subprocess.Popen[bytes]:
        return self.spawn("omnigate", "run", "-c", str(config), log="daemon.log")

    def tail(self, log: str, lines: int = 15) -> str:
        path = self.workdir / log
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def write_config(path: Path, *, store: str, http_port: int, smsc_port: int) -> None:
    path.write_text(f"""
log_level = "warning"
[store]
url = "{store}"
[http]
listen = "127.0.0.1:{http_port}"
[traffic_log]
path = "traffic.log"
[queue]
memory_limit = 50000
[[links]]
name = "smsc1"
type = "smpp"
hosts = ["127.0.0.1:{smsc_port}"]
system_id = "bench"
password = "bench"
window = 10
reconnect_min = 0.2
reconnect_max = 1.0
[[routes]]
tiers = [["smsc1"]]
""")


async def wait_ready(session: aiohttp.ClientSession, base: str, link_up: bool,
                     timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    body = await resp.json()
                    if body["links_up"] or not link_up:
                        return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise RuntimeError("daemon did not become ready; see daemon.log")


async def sim_count(session: aiohttp.ClientSession, control: int) -> int:
    async with session.get(f"http://127.0.0.1:{control}/stats") as resp:
        return int((await resp.json())["submit_count"])


async def wait_sim(session: aiohttp.ClientSession, control: int, target: int,
                   timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(aiohttp.ClientConnectionError):  # still starting
            if await sim_count(session, control) >= target:
                return time.monotonic()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"SMSC got {await sim_count(session, control)} of {target} in {timeout}s")


async def blast(session: aiohttp.ClientSession, base: str, to: list[str], concurrency: int,
                rate: float | None = None) -> tuple[float, float, int]:
    """Send one sendsms per number; returns (start, end, refused)."""
    url = f"{base}/cgi-bin/sendsms"
    next_index = 0
    refused = 0
    start = time.monotonic()

    async def worker() -> None:
        nonlocal next_index, refused
        while next_index < len(to):
            i = next_index
            next_index += 1
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with session.get(url, params={"to": to[i], "text": f"bench message {i}"}) as r:
                await r.read()
                if r.status != 202:
                    refused += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return start, time.monotonic(), refused


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local n = 1000000 + counter % DISTINCT
  return wrk.format("GET", "/cgi-bin/sendsms?to=070" .. string.format("%07d", n)
                    .. "&text=bench+message+" .. counter)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d\\n", summary.requests, summary.errors.status))
end
"""


def wrk_blast(base: str, seconds: int, connections: int, distinct: int,
              workdir: Path) -> tuple[float, float, int, int]:
    """Full load from wrk (C, two threads): (start, end, requests, non-2xx)."""
    script = workdir / "sendsms.lua"
    script.write_text(WRK_SCRIPT.replace("DISTINCT", str(distinct)))
    start = time.monotonic()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          base], capture_output=True, text=True, check=True).stdout
    end = time.monotonic()
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, requests, bad = line.split()
    return start, end, int(requests), int(bad)


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


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p))]


async def run_store(kind: str, store_url: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"omnigate-bench-{kind}-") as tmp:
        work = Path(tmp)
        if kind == "postgresql":
            sys.path.insert(0, str(ROOT))
            from tests.support import reset_pg

            await reset_pg(store_url)
        procs = Processes(work)
        http_port, smsc_port, control = free_port(), free_port(), free_port()
        config = work / "omnigate.toml"
        write_config(config, store=store_url, http_port=http_port, smsc_port=smsc_port)
        base = f"http://127.0.0.1:{http_port}"
        result: dict[str, Any] = {"store": kind}
        try:
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
                    "daemon_peak_rss_mb": round(rss_kb(daemon.pid, "VmHWM") / 1024, 1),
                })
            daemon.send_signal(signal.SIGTERM)
            result["daemon_exit_code"] = daemon.wait(timeout=30)
        except Exception:
            print(f"--- daemon.log\n{procs.tail('daemon.log')}\n--- sim.log\n{procs.tail('sim.log')}",
                  file=sys.stderr)
            raise
        finally:
            procs.stop_all()
        return result


async def queued_memory_and_restart(args: argparse.Namespace) -> dict[str, Any]:
    """RSS with 100k queued behind a dead link; restart time with 1M queued (SQLite)."""
    with tempfile.TemporaryDirectory(prefix="omnigate-bench-queue-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        http_port, smsc_port, control = free_port(), free_port(), free_port()
        store_url = f"sqlite+aiosqlite:///{work}/omnigate.db"
        config = work / "omnigate.toml"
        write_config(config, store=store_url, http_port=http_port, smsc_port=smsc_port)
        base = f"http://127.0.0.1:{http_port}"
        out: dict[str, Any] = {}
        try:
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
        finally:
            procs.stop_all()
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


def pg_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


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

    report: dict[str, Any] = {"date": date.today().isoformat(), "machine": {
        "cores": os.cpu_count(), "python": sys.version.split()[0]}, "args": vars(args),
        "stores": {}}
    stores = [("sqlite", None)] + ([("postgresql", PG_URL)] if pg_reachable() else [])
    if args.only == "queue":
        stores = []
    for kind, url in stores:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(await run_store(kind, url or f"sqlite+aiosqlite:///{tmp}/b.db", args))
        keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
        median = {k: statistics.median(r[k] for r in runs) for k in keys}
        report["stores"][kind] = {"median": median, "runs": runs}
        print(f"{kind}: {json.dumps(median)}", flush=True)
    if args.only != "throughput":
        report["queue"] = await queued_memory_and_restart(args)
        print(f"queue: {json.dumps(report['queue'])}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{report['date']}-throughput{'-' + args.only if args.only else ''}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
