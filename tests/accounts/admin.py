"""A gateway with an admin account, and the admin API as a test client speaks it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from omnigate.api.auth import hash_secret
from omnigate.gateway import Gateway
from tests.support import make_config

ADMIN_KEY = "admin-key-for-tests"
_ADMIN_HASH = hash_secret(ADMIN_KEY)  # one scrypt per test session
BILLING = {"prices": {"+46": 0.10, "+4670": 0.05}, "default_price": 0.20,
           "refund": ["rejected", "expired", "failed"]}


async def start(gateway_factory: Callable[..., Any], store_url: str, smsc_port: int,
                tmp_path: Path, **overrides: Any) -> tuple[Gateway, str]:
    accounts = [{"name": "root", "role": "admin", "api_key_hash": [_ADMIN_HASH]},
                *overrides.pop("accounts", [])]
    config = make_config(store_url, smsc_port, tmp_path, accounts=accounts,
                         billing=overrides.pop("billing", BILLING), **overrides)
    gw = await gateway_factory(config)
    return gw, f"http://127.0.0.1:{gw.http_port}"


class Admin:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"X-API-Key": ADMIN_KEY}

    async def call(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        async with self.http.request(method, f"{self.base}{path}", headers=self.headers,
                                     **kwargs) as resp:
            body = await resp.text()
            assert resp.status == status, (resp.status, body)
            if resp.content_type == "application/json":
                return await resp.json()
            return body

    async def account(self, name: str, **settings: Any) -> str:
        """Create an account and an API key for it; the key."""
        await self.call("POST", "/api/v1/accounts", 201, json={"name": name, **settings})
        key = await self.call("POST", f"/api/v1/accounts/{name}/keys", 201, json={"label": "t"})
        return str(key["key"])

    async def topup(self, name: str, amount: float) -> float:
        answer = await self.call("POST", f"/api/v1/accounts/{name}/balance",
                                 json={"topup": amount})
        return float(answer["balance"])


async def send(http: aiohttp.ClientSession, base: str, key: str, to: str | list[str],
               text: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{base}/api/v1/messages", headers={"X-API-Key": key},
                         json={"to": to, "text": text, **fields}) as resp:
        return resp.status, await resp.json()
