"""What accounts cost on the hot path: bench/throughput.py's full-load run, with every
request authenticated by API key and checked by the account policy.

The account is the expensive kind: prepaid (so each message reserves from a
balance, here an ample credit limit), daily and monthly quotas, allowed
destinations, a default sender, a footer and a price table; each message also
gets its charge row in the same group commit. Compare
`daemon_cpu_us_per_message` with `bench/throughput.py` (open API, no accounts).

Writes bench/results/accounts.json and prints the medians.
Usage: python bench/accounts.py [--quick] [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import throughput  # noqa: E402
from omnigate.api.auth import hash_secret  # noqa: E402

KEY = "bench-account-key"
ACCOUNT = f"""
[[accounts]]
name = "bench"
api_key_hash = ["{hash_secret(KEY)}"]
billing = "prepaid"
credit_limit = 1e12
daily_quota = 1000000000
monthly_quota = 1000000000
destinations = ["+46"]
senders = ["BENCH"]
default_sender = "BENCH"
footer = " /b"
[billing]
prices = {{ "+46" = 0.05, "+4670" = 0.04 }}
"""


def write_config(path: Path, **kwargs: Any) -> None:
    original_write_config(path, **kwargs)
    path.write_text(path.read_text() + ACCOUNT)


original_write_config = throughput.write_config


class _Aiohttp:
    """aiohttp as bench/throughput.py uses it, with the account's key on every request."""

    ClientSession = functools.partial(aiohttp.ClientSession, headers={"X-API-Key": KEY})

    def __getattr__(self, name: str) -> Any:
        return getattr(aiohttp, name)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="one short run")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.runs = 3, 1
    # what run_store reads besides these
    args.n, args.distinct, args.dlr = 2000, 10000, False
    throughput.write_config = write_config
    throughput.aiohttp = _Aiohttp()  # type: ignore[assignment]
    throughput.WRK_SCRIPT = f'wrk.headers["X-API-Key"] = "{KEY}"\n' + throughput.WRK_SCRIPT
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "args": vars(args),
                              "stores": {}}
    stores = [("sqlite", None)] + ([("postgresql", throughput.PG_URL)]
                                   if throughput.pg_reachable() else [])
    for kind, url in stores:
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(await throughput.run_store(
                    kind, url or f"sqlite+aiosqlite:///{tmp}/b.db", args))
        keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
        median = {k: statistics.median(r[k] for r in runs) for k in keys}
        report["stores"][kind] = {"median": median, "runs": runs}
        print(f"{kind}: {json.dumps(median)}", flush=True)
    out = ROOT / "bench" / "results" / "accounts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
