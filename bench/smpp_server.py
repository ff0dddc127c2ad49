"""SMPP server benchmark: submit_sm/s accepted through N client binds, receipts/s back.

The daemon (`omnigate run`, SQLite store, its SMPP server and one SMPP link) and the
SMPP simulator (sending receipts) run as separate processes on loopback, with
bench/throughput.py's process helpers. The load comes from a third process:
`--binds` transceiver sessions of one account, each keeping `window` submit_sm in
flight (registered_delivery 1) and answering every deliver_sm receipt. submit_sm are
packed with omnigate's codec and answers are read by header: the client must cost
less than the server it measures (smpplib needs ~100 µs per PDU; the tests use it).

Per window (10 and 100) and run: submit_sm/s accepted (ESME_ROK answers / time to the
last answer), receipts/s (receipts / time from the first submit to the last receipt)
and the daemon's CPU per message. Medians of `--runs` runs, to
bench/results/smpp_server.json.
Usage: python bench/smpp_server.py [--messages 6000] [--binds 4] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import struct
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
    wait_ready,
)

from omnigate.api.auth import hash_secret
from omnigate.carriers.smpp import codec

WINDOWS = (10, 100)
PASSWORD = "bench"


def write_config(path: Path, *, http_port: int, smpp_port: int, smsc_port: int) -> None:
    path.write_text(f"""
log_level = "warning"
[store]
url = "sqlite+aiosqlite:///omnigate.db"
[http]
listen = "127.0.0.1:{http_port}"
[[accounts]]
name = "bench"
password_hash = "{hash_secret(PASSWORD)}"
[smpp_server]
listen = "127.0.0.1:{smpp_port}"
window = {max(WINDOWS)}
max_binds = 64
[traffic_log]
path = "traffic.log"
[[links]]
name = "smsc1"
type = "smpp"
hosts = ["127.0.0.1:{smsc_port}"]
system_id = "bench"
password = "bench"
window = 100
[[routes]]
tiers = [["smsc1"]]
""")


_HEADER = struct.Struct(">IIII")


async def _binds(port: int, binds: int, count: int, window: int) -> dict[str, float]:
    """`binds` sessions submitting `count` in all; counts and epoch times."""
    state = {"next": 0, "ok": 0, "refused": 0, "receipts": 0, "last_resp": 0.0,
             "last_receipt": 0.0}
    source = codec.address(5, 0, "Bench")
    done = asyncio.Event()

    async def session() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(codec.bind(codec.BIND_TRANSCEIVER, 1, "bench", PASSWORD))
        head = await reader.readexactly(16)
        length, _, status, _ = _HEADER.unpack(head)
        await reader.readexactly(length - 16)
        assert status == 0, f"bind refused: {codec.status_text(status)}"
        seq = 1
        in_flight = 0
        buf = b""

        def fill() -> None:
            nonlocal seq, in_flight
            out = []
            while in_flight < window and state["next"] < count:
                i = state["next"]
                state["next"] += 1
                seq += 1
                dest = codec.address(1, 1, f"4670{1000000 + i % 100000:07d}")
                out.append(codec.submit_sm(seq, source, dest, b"bench message %d" % i,
                                           registered_delivery=1))
                in_flight += 1
            if out:
                writer.write(b"".join(out))

        fill()
        while not done.is_set():
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), 1.0)
            except TimeoutError:
                continue
            if not data:
                break
            buf += data
            pos = 0
            answers = []
            while len(buf) - pos >= 16:
                length, cid, status, pseq = _HEADER.unpack_from(buf, pos)
                if len(buf) - pos < length:
                    break
                pos += length
                if cid == codec.SUBMIT_SM_RESP:
                    in_flight -= 1
                    state["ok" if status == 0 else "refused"] += 1
                    state["last_resp"] = time.time()
                elif cid == codec.DELIVER_SM:
                    answers.append(codec.deliver_sm_resp(pseq))
                    state["receipts"] += 1
                    state["last_receipt"] = time.time()
                elif cid == codec.ENQUIRE_LINK:
                    answers.append(codec.header_only(codec.ENQUIRE_LINK_RESP, pseq))
            buf = buf[pos:]
            if answers:
                writer.write(b"".join(answers))
            fill()
            if state["receipts"] >= state["ok"] and state["ok"] + state["refused"] >= count:
                done.set()
        writer.close()

    tasks = [asyncio.create_task(session()) for _ in range(binds)]
    try:
        await asyncio.wait_for(done.wait(), 300)
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)
    return state


def _client_process(port: int, binds: int, count: int, window: int, start_at: float,
                    out: Any) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    time.sleep(max(0.0, start_at - time.time()))
    out.put(asyncio.run(_binds(port, binds, count, window)))


def load(port: int, messages: int, binds: int, window: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    out: Any = ctx.Queue()
    start_at = time.time() + 1.0  # the spawned interpreter needs a moment to import
    proc = ctx.Process(target=_client_process, args=(port, binds, messages, window, start_at,
                                                     out))
    proc.start()
    state = out.get(timeout=600)
    proc.join(timeout=30)
    return {"start": start_at, **state}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omnigate-bench-smpp-") as tmp:
        work = Path(tmp)
        procs = Processes(work)
        http_port, smpp_port, smsc_port, control = (free_port() for _ in range(4))
        config = work / "omnigate.toml"
        write_config(config, http_port=http_port, smpp_port=smpp_port, smsc_port=smsc_port)
        runs: dict[int, list[dict[str, float]]] = {w: [] for w in WINDOWS}
        try:
            procs.sim(smsc_port, control, dlr=True)
            daemon = procs.daemon(config)
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, f"http://127.0.0.1:{http_port}", link_up=True)
            await asyncio.to_thread(load, smpp_port, 500, args.binds, 10)  # warm-up
            for _ in range(args.runs):
                for window in WINDOWS:
                    cpu0 = cpu_seconds(daemon.pid)
                    r = await asyncio.to_thread(load, smpp_port, args.messages, args.binds,
                                                window)
                    cpu = cpu_seconds(daemon.pid) - cpu0
                    runs[window].append({
                        "accepted_per_s": r["ok"] / (r["last_resp"] - r["start"]),
                        "receipts_per_s": r["receipts"] / (r["last_receipt"] - r["start"]),
                        "refused": r["refused"], "receipts": r["receipts"],
                        # submit, send, receipt in and out: the whole round per message
                        "daemon_cpu_us_per_message": cpu / max(r["ok"], 1) * 1e6})
            result: dict[str, Any] = {
                "messages_per_run": args.messages, "binds": args.binds, "runs": args.runs,
                "daemon_peak_rss_mb": round(rss_kb(daemon.pid, "VmHWM") / 1024, 1)}
            for window, samples in runs.items():
                result[f"window_{window}"] = {
                    "accepted_per_s_median": round(statistics.median(
                        s["accepted_per_s"] for s in samples)),
                    "accepted_per_s_runs": [round(s["accepted_per_s"]) for s in samples],
                    "receipts_per_s_median": round(statistics.median(
                        s["receipts_per_s"] for s in samples)),
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
    parser.add_argument("--messages", type=int, default=6000, help="per run and window")
    parser.add_argument("--binds", type=int, default=4)
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
    path = RESULTS / "smpp_server.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
