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
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # a sibling module, not a package
import throughput

from omnigate.api.auth import hash_secret

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
    args = common.parse_quick(p, "one short run", seconds=3, runs=1)
    # what run_store reads besides these
    args.n, args.distinct, args.dlr = 2000, 10000, False
    throughput.write_config = write_config
    throughput.aiohttp = _Aiohttp()  # type: ignore[assignment]
    common.WRK_SCRIPT = f'wrk.headers["X-API-Key"] = "{KEY}"\n' + common.WRK_SCRIPT
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "args": vars(args),
                              "stores": {}}
    for kind, url in throughput.stores():
        report["stores"][kind] = await throughput.store_runs(kind, url, args)
    common.write_report("accounts.json", report)


if __name__ == "__main__":
    asyncio.run(main())
