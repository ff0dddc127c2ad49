"""End to end over UCP/EMI: real HTTP client -> gateway -> store -> UCP link -> strict UCP
simulator, on loopback (issue 6). Runs on SQLite and on PostgreSQL (conftest `store_url`).

Needs `"ucp": UcpLink` in `omnigate.carriers.registry()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.config import Config
from omnigate.sim.ucp import UcpSimulator
from tests.support import (
    FINAL,
    make_link_config,
    send_form,
    sim_fixture,
    wait_all_sent,
    wait_inbound,
    wait_status,
)

USER = "46700000000"


def ucp_config(store_url: str, port: int, tmp_path: Path, **link: Any) -> Config:
    entry = {"name": "ucp1", "type": "ucp", "hosts": [f"127.0.0.1:{port}"], "user": USER,
             "password": "secret", "reconnect_min": 0.1, "reconnect_max": 0.5, **link}
    return make_link_config(store_url, tmp_path, entry)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


ucp = sim_fixture(UcpSimulator, user=USER, password="secret", dlr=True)


async def test_send_over_ucp_is_delivered_and_reassembled(
        store_url: str, ucp: UcpSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(ucp_config(store_url, ucp.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    short, long_gsm, emoji = "Hej {du}", "Larm: " + "pumpstation {3} " * 25, "Hej 😀 " * 20
    ids = []
    for text in (short, long_gsm, emoji):
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": ["+46701234567"], "text": text}) as resp:
            assert resp.status == 202, await resp.text()
            ids.append((await resp.json())["messages"][0]["id"])
    for id in ids:
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "delivered", msg
        assert [e["status"] for e in msg["events"]] == ["queued", "sent", "delivered"]
        assert msg["events"][1]["link"] == "ucp1"
    assert sorted(t for _, _, t in ucp.messages()) == sorted([short, long_gsm, emoji])
    assert {s.mt for s in ucp.submits} == {"3", "4"}
    assert {s.source for s in ucp.submits} == {USER}


async def test_mo_over_ucp_is_stored(
        store_url: str, ucp: UcpSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    gw = await gateway_factory(ucp_config(store_url, ucp.port, tmp_path))
    deadline = time.monotonic() + 5
    while ucp.logged_in == 0:
        assert time.monotonic() < deadline, "the link never logged in"
        await asyncio.sleep(0.02)
    await ucp.inject_mo("+46701234567", USER, "Svar: ja tack")
    rows = await wait_inbound(gw, timeout=max(0.0, deadline - time.monotonic()))
    assert [(r.sender, r.recipient, r.text, r.link) for r in rows] == [
        ("46701234567", USER, "Svar: ja tack", "ucp1")]


async def test_dropped_connections_and_throttling_lose_nothing(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    sim = UcpSimulator(user=USER, password="secret", throttle_every=7, drop_after=9)
    await sim.start()
    try:
        gw = await gateway_factory(ucp_config(store_url, sim.port, tmp_path,
                                              throttle_backoff=0.05))
        base = f"http://127.0.0.1:{gw.http_port}"
        numbers = [f"07012345{i:02d}" for i in range(30)]
        await wait_all_sent(http, base, await send_form(http, base, numbers, "storm"))
        assert {s.destination for s in sim.submits} == {f"467012345{i:02d}" for i in range(30)}
        assert sim.throttled_count > 0 and sim.violations == []
    finally:
        await sim.stop()


async def test_wrong_password_holds_messages_until_login_works(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    sim = UcpSimulator(user=USER, password="changed", dlr=True)
    await sim.start()
    try:
        gw = await gateway_factory(ucp_config(store_url, sim.port, tmp_path))
        base = f"http://127.0.0.1:{gw.http_port}"
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": "0701234567", "text": "patience"}) as resp:
            id = (await resp.json())["messages"][0]["id"]
        async with http.get(f"{base}/api/v1/links") as resp:
            [link] = (await resp.json())["links"]
        assert link["state"] in ("connecting", "down")
        await asyncio.sleep(0.3)
        async with http.get(f"{base}/api/v1/links") as resp:
            [link] = (await resp.json())["links"]
        assert link["state"] == "down" and "EC 07" in link["last_error"]
        assert sim.submit_count == 0
        sim.password = "secret"  # the operator fixes the account; the link retries
        assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"
    finally:
        await sim.stop()
