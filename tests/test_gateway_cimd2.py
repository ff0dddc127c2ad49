"""End to end: real HTTP client -> gateway -> store -> CIMD2 link -> CIMD2 simulator.

Runs on SQLite and on PostgreSQL (see conftest `store_url`). Needs the "cimd2" entry of
the link registry (`omnigate.carriers.registry`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from omnigate.config import Config, parse
from omnigate.sim.cimd2 import Cimd2Simulator
from omnigate.store import schema

FINAL = {"delivered", "undelivered", "failed", "expired"}


def cimd2_config(store_url: str, port: int, tmp_path: Path, **link: Any) -> Config:
    entry = {"name": "cimd1", "type": "cimd2", "hosts": [f"127.0.0.1:{port}"],
             "user": "omnigate", "password": "secret", "window": 8,
             "reconnect_min": 0.1, "reconnect_max": 0.5, **link}
    return parse({
        "store": {"url": store_url},
        "http": {"listen": "127.0.0.1:0"},
        "links": [entry],
        "routes": [{"tiers": [["cimd1"]]}],
        "traffic_log": {"path": str(tmp_path / "traffic.log")},
        "retry": {"initial": 0.1, "maximum": 0.5},
    })


async def wait_status(session: aiohttp.ClientSession, base: str, id: int, wanted: set[str],
                      timeout: float = 10.0) -> dict[str, Any]:
    """Poll the API (the way a user would) until the message reaches one of `wanted`."""
    deadline = time.monotonic() + timeout
    while True:
        async with session.get(f"{base}/api/v1/messages/{id}") as resp:
            body = await resp.json()
        if body.get("status") in wanted:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"message {id} stuck in {body.get('status')}: {body}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def cimd2_sim() -> AsyncIterator[Cimd2Simulator]:
    sim = Cimd2Simulator(user="omnigate", password="secret", dlr=True)
    await sim.start()
    yield sim
    await sim.stop()
    assert sim.violations == []


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_send_reaches_the_smsc_and_is_delivered(
        store_url: str, cimd2_sim: Cimd2Simulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(cimd2_config(store_url, cimd2_sim.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={
            "numbers": "0705123456,0708321321", "text": "Mitt sms @ 5€ {ok}"}) as resp:
        assert resp.status == 200, await resp.text()
        ids = [int(line.split()[1]) for line in (await resp.text()).strip().splitlines()]
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
    deadline = time.monotonic() + 5
    while True:
        async with gw.store.engine.connect() as conn:
            rows = (await conn.execute(select(schema.inbound))).all()
        if rows or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
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
        async with http.get(f"{base}/send", params={"numbers": ",".join(numbers),
                                                    "text": "storm"}) as resp:
            assert resp.status == 200, await resp.text()
            ids = [int(line.split()[1]) for line in (await resp.text()).splitlines()]
        for id in ids:
            assert (await wait_status(http, base, id, {"sent"}, timeout=20))["status"] == "sent"
        assert {s.destination for s in sim.submits} == {f"+467012345{i:02d}" for i in range(60)}
        assert sim.throttled_count > 0 and sim.violations == []
    finally:
        await sim.stop()
