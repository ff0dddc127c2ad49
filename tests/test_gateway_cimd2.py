"""End to end: real HTTP client -> gateway -> store -> CIMD2 link -> CIMD2 simulator.

Runs on SQLite and on PostgreSQL (see conftest `store_url`). Needs the "cimd2" entry of
the link registry (`omnigate.carriers.registry`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.config import Config
from omnigate.sim.cimd2 import Cimd2Simulator
from tests.support import (
    FINAL,
    make_link_config,
    send_form,
    sim_fixture,
    wait_all_sent,
    wait_inbound,
    wait_status,
)


def cimd2_config(store_url: str, port: int, tmp_path: Path, **link: Any) -> Config:
    entry = {"name": "cimd1", "type": "cimd2", "hosts": [f"127.0.0.1:{port}"],
             "user": "omnigate", "password": "secret", "window": 8,
             "reconnect_min": 0.1, "reconnect_max": 0.5, **link}
    return make_link_config(store_url, tmp_path, entry)


cimd2_sim = sim_fixture(Cimd2Simulator, user="omnigate", password="secret", dlr=True)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_send_reaches_the_smsc_and_is_delivered(
        store_url: str, cimd2_sim: Cimd2Simulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(cimd2_config(store_url, cimd2_sim.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    ids = await send_form(http, base, ["0705123456", "0708321321"], "Mitt sms @ 5€ {ok}")
    await cimd2_sim.wait_for(2)
    assert sorted(s.destination for s in cimd2_sim.submits) == ["+46705123456", "+46708321321"]
    assert all(s.text == "Mitt sms @ 5€ {ok}" for s in cimd2_sim.submits)
    for id in ids:
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "delivered"
        assert [e["status"] for e in msg["events"]] == ["queued", "sent", "delivered"]
        assert msg["events"][1]["link"] == "cimd1"


async def test_long_and_unicode_texts_arrive_whole(
        store_url: str, cimd2_sim: Cimd2Simulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(cimd2_config(store_url, cimd2_sim.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    long_gsm = "Larm: " + "pumpstation {3} å_ä " * 20
    emoji = "Hej 😀 " * 20
    for text in (long_gsm, emoji):
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": ["+46701234567"], "text": text}) as resp:
            assert resp.status == 202, await resp.text()
            body = await resp.json()
        assert body["messages"][0]["parts"] > 1
        msg = await wait_status(http, base, body["messages"][0]["id"], FINAL)
        assert msg["status"] == "delivered"
    texts = sorted(t for _, _, t in cimd2_sim.messages())
    assert texts == sorted([long_gsm, emoji])
    assert {s.coding for s in cimd2_sim.submits} == {"gsm", "ucs2"}


async def test_mo_is_stored(
        store_url: str, cimd2_sim: Cimd2Simulator, gateway_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    gw = await gateway_factory(cimd2_config(store_url, cimd2_sim.port, tmp_path))
    async with asyncio.timeout(5):
        while cimd2_sim.logged_in == 0:
            await asyncio.sleep(0.02)
    await cimd2_sim.inject_mo("+46701234567", "46700000000", "Svar: ja tack")
    rows = await wait_inbound(gw)
    assert [(r.sender, r.recipient, r.text, r.link) for r in rows] == [
        ("46701234567", "46700000000", "Svar: ja tack", "cimd1")]


async def test_throttling_and_dropped_connections_lose_nothing(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    sim = Cimd2Simulator(user="omnigate", password="secret", throttle_every=7, drop_after=23)
    await sim.start()
    try:
        gw = await gateway_factory(cimd2_config(store_url, sim.port, tmp_path,
                                                throttle_backoff=0.05))
        base = f"http://127.0.0.1:{gw.http_port}"
        numbers = [f"07012345{i:02d}" for i in range(60)]
        await wait_all_sent(http, base, await send_form(http, base, numbers, "storm"))
        assert {s.destination for s in sim.submits} == {f"+467012345{i:02d}" for i in range(60)}
        assert sim.throttled_count > 0 and sim.violations == []
    finally:
        await sim.stop()
