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
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omnigate.carriers.base import Link, LinkState  # noqa: E402
from omnigate.carriers.http import HttpLink  # noqa: E402
from omnigate.carriers.http.config import HttpConfig  # noqa: E402
from omnigate.model import DeliveryReport, FailureKind, Inbound, Part  # noqa: E402
from omnigate.sms.coding import Coding  # noqa: E402
from omnigate.sms.gsm import encode  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http_link.json"
TEXT = encode("Pump 3: pressure low, please check")


class Counter:
    """LinkEvents that count; `done` is set once `want` parts are settled."""

    def __init__(self, want: int) -> None:
        self.want, self.sent, self.failed = want, 0, 0
        self.done = asyncio.Event()
        self.up = asyncio.Event()
        self.reasons: set[str] = set()

    def on_sent(self, part: Part, carrier_ref: str) -> None:
        self.sent += 1
        if self.sent + self.failed >= self.want:
            self.done.set()

    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None:
        self.failed += 1
        self.reasons.add(reason)
        if self.sent + self.failed >= self.want:
            self.done.set()

    def on_mo(self, inbound: Inbound) -> None: ...
    def on_report(self, report: DeliveryReport) -> None: ...

    def on_state(self, link: Link, state: LinkState) -> None:
        if state is LinkState.UP:
            self.up.set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_once(port: int, shape: dict[str, Any], messages: int) -> dict[str, float]:
    events = Counter(messages)
    config = HttpConfig.model_validate({"name": "bench", "hosts": [f"127.0.0.1:{port}"],
                                        "queue": 1000, **shape})
    link = HttpLink(config, events)
    await link.start()
    await asyncio.wait_for(events.up.wait(), 10)
    parts = [Part(message_id=i, seq=1, total=1, recipient=f"4670{i:07d}", sender=None,
                  coding=Coding.GSM7, data=TEXT, report=False) for i in range(messages)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    i = 0
    while i < messages:
        room = link.capacity()
        for part in parts[i:i + room]:
            link.submit(part)
        i += room
        await asyncio.sleep(0 if room else 0.001)
    await asyncio.wait_for(events.done.wait(), 120)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await link.stop()
    if events.failed:
        raise SystemExit(f"{events.failed} parts failed: {sorted(events.reasons)[:3]}")
    return {"messages_per_s": messages / elapsed, "cpu_us_per_message": cpu / messages * 1e6}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "omnigate.sim.httpprovider", "--listen",
                            f"127.0.0.1:{port}", "--password", "secret"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # the simulator listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the simulator did not start") from None
                await asyncio.sleep(0.05)
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
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(bench(args))
    doc = {"date": date.today().isoformat(), "cpus": os.cpu_count(), "messages": args.messages,
           "window": args.window, "batch": args.batch, "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
