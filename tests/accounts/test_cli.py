"""`omnigate account` and `omnigate report` against a running gateway's admin API."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from omnigate.cli import main
from tests.accounts.admin import ADMIN_KEY, send, start


async def omnigate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return main(list(argv))
    code = await asyncio.to_thread(run)
    return code, out.getvalue()


async def test_accounts_and_reports_from_the_command_line(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path)
    api = ("--url", base, "--key", ADMIN_KEY)
    code, out = await omnigate("account", "add", *api, "shop", "billing=prepaid",
                               "company=Shop AB", 'senders=["SHOP"]', "daily_quota=100")
    assert code == 0 and '"senders": [\n    "SHOP"\n  ]' in out
    code, out = await omnigate("account", "topup", *api, "shop", "1.5", "--note", "invoice 1")
    assert code == 0 and '"balance": 1.5' in out
    code, out = await omnigate("account", "key", *api, "shop", "--label", "web shop")
    key = out.split()[0]
    assert code == 0 and key.startswith("og_") and "shown this once" in out
    async with aiohttp.ClientSession() as http:
        status, _ = await send(http, base, key, "+46701234567", "x" * 200, **{"from": "SHOP"})
    assert status == 202
    code, out = await omnigate("account", "list", *api)
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.startswith("shop"))
    assert row[:5] == ["shop", "user", "prepaid", "1.4", "2"]  # 2 parts at 0.05
    code, out = await omnigate("report", "billing", *api, "--group", "company", "--csv")
    assert code == 0 and out.splitlines()[:2] == ["period,company,messages,parts,amount",
                                                  f"{gw.accounts.usage['shop'].day},"
                                                  "Shop AB,1,2,0.1"]
    code, out = await omnigate("account", "set", *api, "shop", "senders=oops")
    assert code == 1 and "refused (400)" in out and "senders" in out
    code, out = await omnigate("account", "list", "--url", base, "--key", "wrong")
    assert code == 1 and "refused (401)" in out
