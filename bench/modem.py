"""GSM modem benchmark: the PDU codec's cost, and messages through `ModemLink` to the
modem simulator.

1. PDU: µs per SMS-SUBMIT encoded (GSM 7-bit 160 chars, a UCS-2 part with a UDH) and
   per SMS-DELIVER / SMS-STATUS-REPORT decoded (`omnigate.sms.pdu`), best of 5 timeit
   repeats, median over `--runs`.
2. Ceiling: the simulator (`python -m omnigate.sim.modem`, its own process, no delay)
   and one link in this process fed single-part messages as fast as `capacity()`
   allows, the way the dispatcher does: messages/s and this process's CPU µs per
   message (the AT dialogue, PDU encoding, the stream link), median over `--runs`.
3. Pace: with a real modem's delay per AT+CMGS (`--delay`, default 2 s), messages per
   minute and how busy the link kept the modem (sends x delay / elapsed; 1.0 means no
   idle gap between sends while parts were queued).

Writes bench/results/modem.json and prints it.
Usage: python bench/modem.py [--quick] [--messages 2000] [--runs 3] [--delay 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import timeit
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # a sibling module, not a package
    CountingEvents,
    drive,
    free_port,
    run_on_uvloop,
    single_parts,
    wait_listening,
    write_results,
)

from omnigate.carriers.atmodem import ModemConfig, ModemLink
from omnigate.sms import gsm, pdu
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from omnigate.sms.segment import concat_udh

PIN = "1234"
TEXT = gsm.encode("Pump 3: pressure low, please check")
DELIVER = bytes.fromhex("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9"
                        "EC37")
REPORT = bytes.fromhex("00062A0B916407281553F84210126173004042101261831540" "00")


def codec_us() -> dict[str, float]:
    """µs per call, best of 5 repeats of 2,000 calls."""
    dest = Address("46701234567", 1, 1)
    gsm160 = gsm.encode("x" * 160)
    ucs2 = ("Привет " * 10)[:67].encode("utf-16-be")
    udh = concat_udh(7, 3, 2)
    cases = {
        "encode_gsm7_160": lambda: pdu.encode_submit(dest, Coding.GSM7, gsm160, report=True,
                                                     validity=86400),
        "encode_ucs2_part": lambda: pdu.encode_submit(dest, Coding.UCS2, ucs2, udh=udh),
        "decode_deliver": lambda: pdu.decode(DELIVER),
        "decode_status_report": lambda: pdu.decode(REPORT),
    }
    return {name: min(timeit.repeat(fn, number=2000, repeat=5)) / 2000 * 1e6
            for name, fn in cases.items()}


async def start_simulator(port: int, delay: float) -> subprocess.Popen[bytes]:
    sim = subprocess.Popen([sys.executable, "-m", "omnigate.sim.modem", "--listen",
                            f"127.0.0.1:{port}", "--password", PIN, "--keep", "1000",
                            "--response-delay", str(delay)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await wait_listening(port, sim)
    return sim


async def run_once(delay: float, messages: int) -> dict[str, float]:
    """One simulator, one link, `messages` single-part messages."""
    port = free_port()
    sim = await start_simulator(port, delay)
    try:
        events = CountingEvents(messages)
        link = ModemLink(ModemConfig(name="bench", hosts=[f"127.0.0.1:{port}"], pin=PIN,
                                     poll_interval=30), events)
        await link.start()
        await asyncio.wait_for(events.up.wait(), 10)
        parts = single_parts(messages, TEXT)
        elapsed, cpu = await drive(link, events, parts, idle=0.0005,
                                   timeout=60 + messages * (delay + 0.1))
        out = {"messages_per_s": messages / elapsed, "cpu_us_per_message": cpu / messages * 1e6,
               "messages_per_minute": messages / elapsed * 60}
        if delay:
            out["busy"] = messages * delay / elapsed
        return out
    finally:
        sim.terminate()
        sim.wait(5)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    codec_runs = [codec_us() for _ in range(args.runs)]
    ceiling = [await run_once(0.0, args.messages) for _ in range(args.runs)]
    pace = await run_once(args.delay, args.paced)

    def med(runs: list[dict[str, float]], key: str, digits: int = 1) -> float:
        return round(statistics.median(r[key] for r in runs), digits)

    return {
        "pdu_us": {k: med(codec_runs, k, 2) for k in codec_runs[0]},
        "ceiling": {"runs": ceiling, "median_messages_per_s": med(ceiling, "messages_per_s"),
                    "median_cpu_us_per_message": med(ceiling, "cpu_us_per_message")},
        "paced": {"delay_s": args.delay, "messages": args.paced,
                  "messages_per_minute": round(pace["messages_per_minute"], 1),
                  "busy": round(pace["busy"], 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="300 messages, one run, 5 paced messages of 0.5 s")
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per AT+CMGS, paced")
    parser.add_argument("--paced", type=int, default=10, help="messages in the paced run")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs, args.delay, args.paced = 300, 1, 0.5, 5
    results = run_on_uvloop(bench(args))
    doc = {"date": date.today().isoformat(), "cpus": os.cpu_count(),
           "messages": args.messages, "runs": args.runs, "results": results}
    write_results("modem.json", doc)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
