"""What on-call costs: resolving a schedule, and a message to schedule:NAME against one to
a number through the whole gateway.

* `who_us`: microseconds per `Schedule.who` on the README's schedule (override,
  holiday calendar, two weekly rules, a rotation), at times spread over a year;
* `http_per_s`: accepted messages/s of POST /api/v1/messages (20 concurrent
  clients, in one process with the gateway and the SMPP simulator, SQLite) to a
  number, to `schedule:desk` (resolved, plus an event row per message), and to
  an `ack = true` schedule (an alarm row and its timeline per request).

Writes bench/results/oncall.json and prints the medians.
Usage: python bench/oncall.py [--quick] [--runs 3] [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from omnigate.carriers.base import LinkState  # noqa: E402
from omnigate.config import parse  # noqa: E402
from omnigate.gateway import Gateway  # noqa: E402
from omnigate.oncall.schedule import Schedule  # noqa: E402
from omnigate.sim.smpp import SmscSimulator  # noqa: E402

README = (ROOT / "README.md").read_text()
[SCHEDULES] = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if "[[schedules]]" in b]


def bench_who(calls: int) -> float:
    schedule = Schedule(parse(tomllib.loads(SCHEDULES)).schedules[0])
    start_at = 1_767_225_600.0  # 2026-01-01
    step = 365 * 86400 / calls
    t0 = time.perf_counter()
    for i in range(calls):
        schedule.who(start_at + i * step)
    return (time.perf_counter() - t0) / calls * 1e6


async def bench_http(to: str, messages: int, tmp: Path) -> float:
    """Accepted messages/s to `to`, on a fresh store (a grown one would favour the first)."""
    sim = SmscSimulator(system_id="omnigate", password="secret", dlr=False, keep=100)
    await sim.start()
    config = parse({
        "store": {"url": f"sqlite+aiosqlite:///{tmp}/bench.db"},
        "http": {"listen": "127.0.0.1:0"},
        "links": [{"name": "smsc1", "type": "smpp", "hosts": [f"127.0.0.1:{sim.port}"],
                   "system_id": "omnigate", "password": "secret"}],
        "routes": [{"tiers": [["smsc1"]]}], "traffic_log": {"path": None},
        "schedules": [
            {"name": "desk", "timezone": "Europe/Stockholm", "numbers": ["+46701111111"]},
            {"name": "alarm", "timezone": "Europe/Stockholm", "numbers": ["+46702222222"],
             "ack": True, "escalate_after": 3600}]})
    gw = Gateway(config)
    await gw.start()
    try:
        while gw.links["smsc1"].state is not LinkState.UP:
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{gw.http_port}/api/v1/messages"
        todo = iter(range(messages))
        async with aiohttp.ClientSession() as http:
            async def client() -> None:
                for _ in todo:
                    async with http.post(url, json={"to": to, "text": "bench"}) as resp:
                        assert resp.status < 300, await resp.text()

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(20)))
            return messages / (time.perf_counter() - t0)
    finally:
        await gw.stop(grace=2.0)
        await sim.stop()


TARGETS = {"number": "+46703333333", "schedule": "schedule:desk", "alarm": "schedule:alarm"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer messages and one run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--messages", type=int, default=2000)
    args = p.parse_args()
    runs, messages = (1, 300) if args.quick else (args.runs, args.messages)
    who = [bench_who(20_000 if args.quick else 100_000) for _ in range(runs)]
    http: list[dict[str, float]] = []
    for _ in range(runs):
        run = {}
        for label, to in TARGETS.items():
            with tempfile.TemporaryDirectory() as tmp:
                run[label] = asyncio.run(bench_http(to, messages, Path(tmp)))
        http.append(run)
    result: dict[str, Any] = {
        "who_us": round(statistics.median(who), 2),
        "http_per_s": {k: round(statistics.median(r[k] for r in http)) for k in http[0]},
        "runs": runs, "messages": messages, "quick": args.quick,
        "note": "one process (gateway, simulator and client), SQLite, 2-core machine",
    }
    out = ROOT / "bench" / "results" / "oncall.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
