"""TCP line protocol benchmark: messages/s accepted through concurrent TCP sessions.

The daemon (`omnigate run`, SQLite store) and the SMPP simulator run as
separate processes on loopback, with bench/common.py's process helpers.
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
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # a sibling module, not a package
    bench_dir,
    cpu_seconds,
    free_port,
    mode_summary,
    parse_quick,
    peak_rss_mb,
    sim_count,
    spawn_clients,
    sqlite_gateway_toml,
    wait_ready,
    wait_sim,
    write_sqlite_report,
)


def write_config(path: Path, *, http_port: int, tcp_port: int, smsc_port: int) -> None:
    path.write_text(sqlite_gateway_toml(
        http_port, smsc_port, f'[tcp]\nlisten = "127.0.0.1:{tcp_port}"\nmax_sessions = 1000\n'))


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


def load(port: int, messages: int, sessions: int, window: int) -> dict[str, Any]:
    """One load from a spawned client process; wall-clock start and end (epoch seconds)."""
    start_at, [((refused, end), _)] = spawn_clients(
        _sessions, [(port, sessions, messages, window)], delay=1.0)
    return {"start": start_at, "end": end, "refused": refused}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_dir("omnigate-bench-tcp-") as (work, procs):
        http_port, tcp_port, smsc_port, control = (free_port() for _ in range(4))
        config = work / "omnigate.toml"
        write_config(config, http_port=http_port, tcp_port=tcp_port, smsc_port=smsc_port)
        modes = {"lockstep": 1, "pipelined": args.window}
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
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
            "daemon_peak_rss_mb": peak_rss_mb(daemon.pid),
        }
        for mode, samples in runs.items():
            result[mode] = mode_summary(samples, "end_to_end_per_s")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=6000, help="per run and mode")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--window", type=int, default=16, help="lines in flight, pipelined")
    parser.add_argument("--runs", type=int, default=3)
    args = parse_quick(parser, "2,000 messages, one run", messages=2000, runs=1)
    write_sqlite_report("tcp.json", args, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
