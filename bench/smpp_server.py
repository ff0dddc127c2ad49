"""SMPP server benchmark: submit_sm/s accepted through N client binds, receipts/s back.

The daemon (`omnigate run`, SQLite store, its SMPP server and one SMPP link) and the
SMPP simulator (sending receipts) run as separate processes on loopback, with
bench/common.py's process helpers. The load comes from a third process:
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
import struct
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
    spawn_clients,
    sqlite_gateway_toml,
    wait_ready,
    write_sqlite_report,
)

from omnigate.api.auth import hash_secret
from omnigate.carriers.smpp import codec

WINDOWS = (10, 100)
PASSWORD = "bench"


def write_config(path: Path, *, http_port: int, smpp_port: int, smsc_port: int) -> None:
    path.write_text(sqlite_gateway_toml(http_port, smsc_port, f"""
[[accounts]]
name = "bench"
password_hash = "{hash_secret(PASSWORD)}"
[smpp_server]
listen = "127.0.0.1:{smpp_port}"
window = {max(WINDOWS)}
max_binds = 64
""", window=100))


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


def load(port: int, messages: int, binds: int, window: int) -> dict[str, Any]:
    start_at, [(state, _)] = spawn_clients(_binds, [(port, binds, messages, window)], delay=1.0)
    return {"start": start_at, **state}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_dir("omnigate-bench-smpp-") as (work, procs):
        http_port, smpp_port, smsc_port, control = (free_port() for _ in range(4))
        config = work / "omnigate.toml"
        write_config(config, http_port=http_port, smpp_port=smpp_port, smsc_port=smsc_port)
        runs: dict[int, list[dict[str, float]]] = {w: [] for w in WINDOWS}
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
            "daemon_peak_rss_mb": peak_rss_mb(daemon.pid)}
        for window, samples in runs.items():
            result[f"window_{window}"] = mode_summary(samples, "receipts_per_s")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=6000, help="per run and window")
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parse_quick(parser, "2,000 messages, one run", messages=2000, runs=1)
    write_sqlite_report("smpp_server.json", args, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
