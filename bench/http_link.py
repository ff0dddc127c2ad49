"""HTTP link benchmark: messages/s through `HttpLink` to the provider simulator.

The simulator (`python -m omnigate.sim.httpprovider`) runs as its own process on
loopback; this process runs one HTTP link and feeds it single-part messages as
fast as its `capacity()` allows, the way the dispatcher does, counting `on_sent`.
Two shapes: `generic-json` (one request per message, `window` requests in flight)
and `websms` with `batch` recipients per request (the same text to many numbers).

Measured per run: messages/s (sent / time to the last `on_sent`) and this process's
CPU time per message (the link's cost: templates, JSON, aiohttp client). The median
of `--runs` runs is reported. Writes bench/results/http_link.json and prints it.
Usage: python bench/http_link.py [--quick] [--messages 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
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

from omnigate.carriers.http import HttpLink
from omnigate.carriers.http.config import HttpConfig
from omnigate.sms.gsm import encode

TEXT = encode("Pump 3: pressure low, please check")


async def run_once(port: int, shape: dict[str, Any], messages: int) -> dict[str, float]:
    events = CountingEvents(messages)
    config = HttpConfig.model_validate({"name": "bench", "hosts": [f"127.0.0.1:{port}"],
                                        "queue": 1000, **shape})
    link = HttpLink(config, events)
    await link.start()
    await asyncio.wait_for(events.up.wait(), 10)
    parts = single_parts(messages, TEXT)
    elapsed, cpu = await drive(link, events, parts, idle=0.001, timeout=120)
    return {"messages_per_s": messages / elapsed, "cpu_us_per_message": cpu / messages * 1e6}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "omnigate.sim.httpprovider", "--listen",
                            f"127.0.0.1:{port}", "--password", "secret"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_listening(port, sim)
        shapes = {
            "generic-json": {"profile": "generic-json", "url": "http://sim/send",
                             "probe_url": "http://sim/status", "token": "secret",
                             "window": args.window},
            "websms-batch": {"profile": "websms", "url": "http://sim/rest/smsmessaging/text",
                             "token": "secret", "window": args.window, "batch": args.batch},
        }
        out: dict[str, Any] = {}
        for name, shape in shapes.items():
            runs = [await run_once(port, shape, args.messages) for _ in range(args.runs)]
            out[name] = {
                "runs": runs,
                "median_messages_per_s": round(statistics.median(
                    r["messages_per_s"] for r in runs)),
                "median_cpu_us_per_message": round(statistics.median(
                    r["cpu_us_per_message"] for r in runs), 1),
            }
        return out
    finally:
        sim.terminate()
        sim.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages, one run")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=20, help="requests in flight")
    parser.add_argument("--batch", type=int, default=50, help="websms recipients per request")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs = 2_000, 1
    results = run_on_uvloop(bench(args))
    doc = {"date": date.today().isoformat(), "cpus": os.cpu_count(), "messages": args.messages,
           "window": args.window, "batch": args.batch, "results": results}
    write_results("http_link.json", doc)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
