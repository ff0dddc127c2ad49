"""TCP line protocol benchmark: messages/s accepted through concurrent TCP sessions.

The daemon (`omnigate run`, SQLite store) and the SMPP simulator run as
separate processes on loopback, with bench/throughput.py's process helpers.
The load is `--sessions` concurrent TCP sessions (raw asyncio streams in a
separate client process), each sending one `SEND <number> <text>` per line:

* lockstep: a session writes a line and waits for its `+OK <id> <number>`
  before the next (a script without pipelining);
* pipelined: a session keeps `--window` lines in flight (answers still come
  in order; the daemon submits consecutive SENDs together).

Each run measures, per mode: messages/s accepted (answered +OK / time to the
last answer) and the daemon's CPU time per message; after the last run, the
time until the simulator has every message gives SMS/s end to end. The
figures are medians of `--runs` runs. Writes bench/results/tcp.json.
Usage: python bench/tcp.py [--messages 6000] [--sessions 20] [--window 16] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import (  # a sibling script, not a package
    RESULTS,
    Processes,
    cpu_seconds,
    free_port,
    rss_kb,
    sim_count,
    wait_ready,
    wait_sim,
)


def write_config(path: Path, *, http_port: int, tcp_port: int, smsc_port: int) -> None:
    path.write_text(f"""
log_level = "warning"
[store]
url = "sqlite+aiosqlite:///omnigate.db"
[http]
listen = "127.0.0.1:{http_port}"
[tcp]
listen = "127.0.0.1:{tcp_port}"
max_sessions = 1000
[traffic_log]
path = "traffic.log"
[[links]]
name = "smsc1"
type = "smpp"
hosts = ["127.0.0.1:{smsc_port}"]
system_id = "bench"
password = "bench"
window = 10
[[routes]]
tiers = [["smsc1"]]
""")


def line(i: int) -> bytes:
    return f"SEND 070{1000000 + i % 100000:07d} bench message {i}\n".encode()


async def _sessions(port: int, sessions: int, count: int, window: int) -> tuple[int, float]:
    """`sessions` connections sending `count` lines in all; (refused, end epoch)."""
    next_i = 0
    refused = 0

    async def session() -> None:
        nonlocal next_i, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"+OK omnigate")
        in_flight = 0
        while next_i < count or in_flight:
            while in_flight < window and next_i < count:
                writer.write(line(next_i))
                next_i += 1
                in_flight += 1
            answer = await reader.readline()
            in_flight -= 1
            if not answer.startswith(b"+OK "):
                refused += 1
        writer.write(b"QUIT\n")
        await reader.readline()
        writer.close()

    await asyncio.gather(*(session() for _ in range(sessions)))
    return refused, time.time()


def _client_process(port: int, sessions: int, count: int, window: int, start_at: float,
                    out: Any) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    time.sleep(max(0.0, start_at - time.time()))
    refused, end = asyncio.run(_sessions(port, sessions, count, window))
    out.put((refused, end))


def load(port: int, messages: int, sessions: int, window: int) -> dict[str, Any]:
    """One load from a spawned client process; wall-clock start and end (epoch seconds)."""
    ctx = multiprocessing.get_context("spawn")
    out: Any = ctx.Queue()
    start_at = time.time() + 1.0  # the spawned interpreter needs a moment to import
    proc = ctx.Process(target=_client_process,
                       args=(port, sessions, messages, window, start_at, out))
    proc.start()
    refused, end = out.get(timeout=600)
    proc.join(timeout=30)
    return {"start": start_at, "end": end, "refused": refused}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnigate-bench-tcp-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        http_port, tcp_port, smsc_port, control = (free_port() for _ in range(4))
        config = work / "omnigate.toml"
        write_config(config, http_port=http_port, tcp_port=tcp_port, smsc_port=smsc_port)
        modes = {"lockstep": 1, "pipelined": args.window}
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        try:
            procs.sim(smsc_port, control, dlr=False)
            daemon = procs.daemon(config)
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, f"http://127.0.0.1:{http_port}", link_up=True)
                # Warm-up (imports, caches, the store's first pages) is not measured.
                await asyncio.to_thread(load, tcp_port, 500, args.sessions, 1)
                await wait_sim(session, control, 500, 60)
                total = 500
                for _ in range(args.runs):
                    for mode, window in modes.items():
                        cpu0 = cpu_seconds(daemon.pid)
                        r = await asyncio.to_thread(load, tcp_port, args.messages,
                                                    args.sessions, window)
                        cpu = cpu_seconds(daemon.pid) - cpu0
                        accepted = args.messages - r["refused"]
                        total += accepted
                        smsc_end = await wait_sim(session, control, total, 300)
                        # wait_sim answers in time.monotonic(); the client in epoch seconds
                        smsc_epoch = time.time() - (time.monotonic() - smsc_end)
                        runs[mode].append({
                            "accepted_per_s": accepted / (r["end"] - r["start"]),
                            "end_to_end_per_s": accepted / (smsc_epoch - r["start"]),
                            "refused": r["refused"],
                            # includes the sending of earlier messages still under way
                            "daemon_cpu_us_per_message": cpu / max(accepted, 1) * 1e6})
                at_smsc = await sim_count(session, control)
            result: dict[str, Any] = {
                "messages_per_run": args.messages, "sessions": args.sessions,
                "window": args.window, "runs": args.runs, "at_smsc": at_smsc,
                "daemon_peak_rss_mb": round(rss_kb(daemon.pid, "VmHWM") / 1024, 1),
            }
            for mode, samples in runs.items():
                result[mode] = {
                    "accepted_per_s_median": round(statistics.median(
                        s["accepted_per_s"] for s in samples)),
                    "accepted_per_s_runs": [round(s["accepted_per_s"]) for s in samples],
                    "end_to_end_per_s_median": round(statistics.median(
                        s["end_to_end_per_s"] for s in samples)),
                    "daemon_cpu_us_per_message_median": round(statistics.median(
                        s["daemon_cpu_us_per_message"] for s in samples), 1),
                    "refused": sum(int(s["refused"]) for s in samples),
                }
        except Exception:
            print(f"--- daemon.log\n{procs.tail('daemon.log')}\n--- sim.log\n{procs.tail('sim.log')}",
                  file=sys.stderr)
            raise
        finally:
            procs.stop_all()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=6000, help="per run and mode")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--window", type=int, default=16, help="lines in flight, pipelined")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 messages, one run")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs = 2000, 1
    result = asyncio.run(run(args))
    doc = {"date": date.today().isoformat(),
           "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
           "args": vars(args), "sqlite": result}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "tcp.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
