"""Routing end to end: fallback tiers, weighted shares, circuits and suspension, at the simulators.

Real HTTP clients, a real gateway and one SMPP simulator per SMSC, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.carriers.base import LinkState
from omnigate.sim.smpp import SmscSimulator
from tests.support import FINAL, make_config, poll, send_form, wait_status

ESME_RSYSERR = 0x08


def smpp_link(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "smpp", "hosts": [f"127.0.0.1:{port}"],
            "system_id": "omnigate", "password": "secret", "reconnect_min": 0.1,
            "reconnect_max": 0.3, **extra}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def two_smscs() -> AsyncIterator[tuple[SmscSimulator, SmscSimulator]]:
    a = SmscSimulator(system_id="omnigate", password="secret", dlr=True)
    b = SmscSimulator(system_id="omnigate", password="secret", dlr=True)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_primary_killed_traffic_falls_back_and_returns(
        store_url: str, two_smscs: tuple[SmscSimulator, SmscSimulator],
        gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    primary, gsm = two_smscs
    port = primary.port
    gw = await gateway_factory(make_config(
        store_url, 0, tmp_path, links=[smpp_link("telia", port), smpp_link("gsm1", gsm.port)],
        routes=[{"name": "main", "tiers": [["telia"], ["gsm1"]]}]))
    base = f"http://127.0.0.1:{gw.http_port}"
    await poll(lambda: all(link.state is LinkState.UP for link in gw.links.values()))

    ids = await send_form(http, base, ["0701000001", "0701000002"], "before")
    await primary.wait_for(2)
    await primary.stop()  # the operator's SMSC dies
    await poll(lambda: gw.links["telia"].state is not LinkState.UP)
    ids += await send_form(http, base, ["0701000003", "0701000004"], "during")
    await gsm.wait_for(2)
    for id in ids[2:]:
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "delivered"
        sent = next(e for e in msg["events"] if e["status"] == "sent")
        assert sent["link"] == "gsm1" and sent["reason"] == "route main, tier 2"
        fell = [e for e in msg["events"] if e["reason"] and "tier 2 via gsm1" in e["reason"]]
        assert fell and "no usable link in tier 1" in fell[0]["reason"]

    revived = SmscSimulator(port=port, system_id="omnigate", password="secret", dlr=True)
    await revived.start()
    try:
        await poll(lambda: gw.links["telia"].state is LinkState.UP, timeout=10)
        ids += await send_form(http, base, ["0701000005"], "after")
        await revived.wait_for(1)
        msg = await wait_status(http, base, ids[-1], FINAL)
        assert next(e for e in msg["events"] if e["status"] == "sent")["link"] == "telia"
        assert gsm.submit_count == 2
    finally:
        await revived.stop()


async def test_weights_three_to_one_measured_at_the_smscs(
        store_url: str, two_smscs: tuple[SmscSimulator, SmscSimulator],
        gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    a, b = two_smscs
    gw = await gateway_factory(make_config(
        store_url, 0, tmp_path,
        links=[smpp_link("a", a.port, window=500), smpp_link("b", b.port, window=500)],
        routes=[{"tiers": [["a", "b"]], "weights": {"a": 3, "b": 1}}]))
    base = f"http://127.0.0.1:{gw.http_port}"
    await poll(lambda: all(link.state is LinkState.UP for link in gw.links.values()))
    numbers = [f"07020{i:05d}" for i in range(400)]
    for chunk in range(0, 400, 100):
        await send_form(http, base, numbers[chunk:chunk + 100], "share")
    await poll(lambda: a.submit_count + b.submit_count == 400, timeout=20)
    assert abs(a.submit_count - 300) <= 15 and abs(b.submit_count - 100) <= 5, (
        a.submit_count, b.submit_count)


async def test_circuit_opens_on_a_failing_smsc_and_traffic_moves_on(
        store_url: str, two_smscs: tuple[SmscSimulator, SmscSimulator],
        gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    sick, healthy = two_smscs
    sick.fail_every, sick.fail_status = 1, ESME_RSYSERR  # bound, but every submit fails
    gw = await gateway_factory(make_config(
        store_url, 0, tmp_path,
        links=[smpp_link("sick", sick.port, window=1, queue=0), smpp_link("healthy", healthy.port)],
        routes=[{"tiers": [["sick"], ["healthy"]], "fallback_after": 100}],
        routing={"circuit_failures": 3, "circuit_cooldown": 60},
        retry={"initial": 0.05, "maximum": 0.1, "jitter": 0}))
    base = f"http://127.0.0.1:{gw.http_port}"
    await poll(lambda: all(link.state is LinkState.UP for link in gw.links.values()))
    ids = await send_form(http, base, [f"070300000{i}" for i in range(6)], "circuit")
    for id in ids:
        assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"
    assert sick.failed_count == 3  # the circuit opened after three, nothing more went there
    assert healthy.submit_count == 6
    async with http.get(f"{base}/api/v1/links") as resp:
        links = {link["name"]: link for link in (await resp.json())["links"]}
    assert links["sick"]["circuit"] == "open" and links["sick"]["state"] == "up"
    assert links["healthy"]["circuit"] == "closed"


async def test_suspended_link_gets_nothing_until_resumed(
        store_url: str, two_smscs: tuple[SmscSimulator, SmscSimulator],
        gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    a, b = two_smscs
    gw = await gateway_factory(make_config(
        store_url, 0, tmp_path, links=[smpp_link("a", a.port), smpp_link("b", b.port)],
        routes=[{"tiers": [["a"], ["b"]]}]))
    base = f"http://127.0.0.1:{gw.http_port}"
    await poll(lambda: all(link.state is LinkState.UP for link in gw.links.values()))
    gw.suspend_link("a", True)
    await send_form(http, base, ["0704000001"], "suspended")
    await b.wait_for(1)
    gw.suspend_link("a", False)
    await send_form(http, base, ["0704000002"], "resumed")
    await a.wait_for(1)
    await asyncio.sleep(0.1)
    assert (a.submit_count, b.submit_count) == (1, 1)
    with pytest.raises(KeyError):
        gw.suspend_link("nope", True)


async def test_route_by_origin_and_priority(
        store_url: str, two_smscs: tuple[SmscSimulator, SmscSimulator],
        gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    normal, urgent = two_smscs
    gw = await gateway_factory(make_config(
        store_url, 0, tmp_path,
        links=[smpp_link("normal", normal.port), smpp_link("urgent", urgent.port)],
        routes=[{"tiers": [["normal"]]},
                {"name": "alarms", "match": {"min_priority": 2, "origin": ["http"]},
                 "tiers": [["urgent"]]}]))
    base = f"http://127.0.0.1:{gw.http_port}"
    for priority, text in ((0, "routine"), (3, "fire")):
        async with http.post(f"{base}/api/v1/messages", json={
                "to": ["0705000001"], "text": text, "priority": priority}) as resp:
            assert resp.status == 202, await resp.text()
    await normal.wait_for(1)
    await urgent.wait_for(1)
    assert [m[2] for m in normal.messages()] == ["routine"]
    assert [m[2] for m in urgent.messages()] == ["fire"]


async def test_no_route_is_a_clear_rejection(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(
        store_url, smsc.port, tmp_path, numbers={"mobile_only": False},
        routes=[{"match": {"prefix": ["46"]}, "tiers": [["smsc1"]]}]))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.post(f"{base}/api/v1/messages",
                         json={"to": ["+4915112345678"], "text": "abroad"}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["field"] == "to" and error["reason"].startswith("no route for +4915112345678")
