"""End to end: real HTTP client -> gateway -> store -> SMPP link -> SMSC simulator, on loopback.

Runs on SQLite and on PostgreSQL (see conftest `store_url`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from omnigate.sim.smpp import SmscSimulator
from omnigate.store import schema
from tests.support import FINAL, make_config, wait_status


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_send_form_reaches_smsc_and_is_delivered(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={
            "numbers": "0705123456,0708321321", "text": "My sms message"}) as resp:
        assert resp.status == 200
        lines = (await resp.text()).strip().splitlines()
    assert len(lines) == 2
    ids = [int(line.split()[1]) for line in lines]
    assert [line.split()[2] for line in lines] == ["+46705123456", "+46708321321"]
    await smsc.wait_for(2)
    assert sorted(s.destination for s in smsc.submits) == ["46705123456", "46708321321"]
    assert all(s.text == "My sms message" for s in smsc.submits)
    for id in ids:
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "delivered"
        assert [e["status"] for e in msg["events"]] == ["queued", "sent", "delivered"]
        assert msg["events"][1]["link"] == "smsc1"


async def test_long_and_unicode_texts_arrive_whole(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    long_gsm = "Larm: " + "pumpstation {3} " * 25  # braces are GSM extension characters
    emoji = "Hej 😀 " * 20
    for text in (long_gsm, emoji):
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": ["+46701234567"], "text": text}) as resp:
            assert resp.status == 202, await resp.text()
            body = await resp.json()
        assert body["messages"][0]["parts"] > 1
        await wait_status(http, base, body["messages"][0]["id"], FINAL)
    texts = sorted(t for _, _, t in smsc.messages())
    assert texts == sorted([long_gsm, emoji])
    codings = {s.data_coding for s in smsc.submits}
    assert codings == {0, 8}


async def test_bad_input_is_refused_and_nothing_is_stored(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path,
                                           messages={"max_parts": 2}))
    base = f"http://127.0.0.1:{gw.http_port}"
    cases = [
        ({"to": ["0701234567", "12"], "text": "x"}, "to"),
        ({"to": ["+4681234567"], "text": "landline"}, "to"),
        ({"to": ["0701234567"], "text": "x" * 400}, "text"),
        ({"to": ["0701234567"]}, "text"),
        ({"text": "nobody"}, "to"),
        ({"to": ["0701234567"], "text": "x", "from": "ThisIsTooLongASender"}, "from"),
    ]
    for body, field in cases:
        async with http.post(f"{base}/api/v1/messages", json=body) as resp:
            assert resp.status == 400, (body, await resp.text())
            answer = await resp.json()
            assert answer["error"]["field"] == field, answer
    async with gw.store.engine.connect() as conn:
        assert (await conn.execute(select(schema.messages.c.id))).all() == []
    assert smsc.submit_count == 0


async def test_client_ref_makes_resubmission_idempotent(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    body = {"to": ["0701234567", "0707654321"], "text": "once", "client_ref": "order-17"}
    answers = []
    for _ in range(3):
        async with http.post(f"{base}/api/v1/messages", json=body) as resp:
            assert resp.status == 202
            answers.append([m["id"] for m in (await resp.json())["messages"]])
    assert answers[0] == answers[1] == answers[2]
    await smsc.wait_for(2)
    await asyncio.sleep(0.2)
    assert smsc.submit_count == 2


async def test_messages_wait_while_the_smsc_is_down_then_go(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    gw = await gateway_factory(make_config(store_url, unused_tcp_port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    ids = []
    for i in range(5):
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": "0701234567", "text": f"queued {i}"}) as resp:
            assert resp.status == 202
            ids.append((await resp.json())["messages"][0]["id"])
    async with http.get(f"{base}/api/v1/messages/{ids[0]}") as resp:
        assert (await resp.json())["status"] == "queued"
    sim = SmscSimulator(port=unused_tcp_port, system_id="omnigate", password="secret", dlr=True)
    await sim.start()
    try:
        await sim.wait_for(5, timeout=10)
        for id in ids:
            assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"
    finally:
        await sim.stop()


async def test_throttling_and_dropped_connections_lose_nothing(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    sim = SmscSimulator(system_id="omnigate", password="secret", throttle_every=7, drop_after=23)
    await sim.start()
    try:
        gw = await gateway_factory(make_config(store_url, sim.port, tmp_path,
                                               link={"throttle_backoff": 0.05}))
        base = f"http://127.0.0.1:{gw.http_port}"
        numbers = [f"07012345{i:02d}" for i in range(60)]
        async with http.get(f"{base}/send", params={"numbers": ",".join(numbers),
                                                    "text": "storm"}) as resp:
            assert resp.status == 200, await resp.text()
            ids = [int(line.split()[1]) for line in (await resp.text()).splitlines()]
        for id in ids:
            assert (await wait_status(http, base, id, {"sent"}, timeout=20))["status"] == "sent"
        got = {s.destination for s in sim.submits}
        assert got == {f"467012345{i:02d}" for i in range(60)}
        assert sim.throttled_count > 0
    finally:
        await sim.stop()


async def test_permanent_error_fails_with_the_reason(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    sim = SmscSimulator(system_id="omnigate", password="secret", fail_every=1)
    await sim.start()
    try:
        gw = await gateway_factory(make_config(store_url, sim.port, tmp_path))
        base = f"http://127.0.0.1:{gw.http_port}"
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": "0701234567", "text": "doomed"}) as resp:
            id = (await resp.json())["messages"][0]["id"]
        msg = await wait_status(http, base, id, FINAL)
        assert msg["status"] == "failed"
        assert "0x0000000b" in msg["error"].lower() or "invdstadr" in msg["error"].lower()
    finally:
        await sim.stop()


async def test_expired_messages_are_never_sent(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    gw = await gateway_factory(make_config(store_url, unused_tcp_port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.post(f"{base}/api/v1/messages",
                         json={"to": "0701234567", "text": "stale", "validity": 0.3}) as resp:
        id = (await resp.json())["messages"][0]["id"]
    await asyncio.sleep(0.4)
    sim = SmscSimulator(port=unused_tcp_port, system_id="omnigate", password="secret")
    await sim.start()
    try:
        msg = await wait_status(http, base, id, FINAL, timeout=10)
        assert msg["status"] == "expired"
        assert sim.submit_count == 0
    finally:
        await sim.stop()


async def test_restart_resumes_queued_messages(
        store_url: str, tmp_path: Path, unused_tcp_port: int, http: aiohttp.ClientSession
) -> None:
    from omnigate.gateway import Gateway

    config = make_config(store_url, unused_tcp_port, tmp_path)
    gw = Gateway(config)
    await gw.start()
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={"numbers": "0701111111,0702222222",
                                                "text": "survive"}) as resp:
        assert resp.status == 200
    await gw.stop(grace=1)
    sim = SmscSimulator(port=unused_tcp_port, system_id="omnigate", password="secret", dlr=True)
    await sim.start()
    gw = Gateway(config)
    await gw.start()
    try:
        await sim.wait_for(2, timeout=10)
        assert sorted(t for _, _, t in sim.messages()) == ["survive", "survive"]
    finally:
        await gw.stop(grace=1)
        await sim.stop()


async def test_mo_is_stored_and_traffic_is_logged(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={"numbers": "0737452078",
                                                "text": "x" * 102}) as resp:
        id = int((await resp.text()).split()[1])
    await wait_status(http, base, id, FINAL)
    await smsc.inject_mo("46701234567", "46700000000", "Svar: ja tack")
    deadline = time.monotonic() + 5
    while True:
        async with gw.store.engine.connect() as conn:
            rows = (await conn.execute(select(schema.inbound))).all()
        if rows or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [(r.sender, r.recipient, r.text, r.link) for r in rows] == [
        ("46701234567", "46700000000", "Svar: ja tack", "smsc1")]
    gw.dispatcher.traffic.flush()
    log = (tmp_path / "traffic.log").read_text().splitlines()
    line = re.compile(r"^\d{4}-\d\d-\d\d; \d\d:\d\d:\d\d\.\d{3};(OUT|IN);smsc1;[^;]*;\d+;\d+;\d+;$")
    assert all(line.match(entry) for entry in log), log
    assert any(entry.endswith(";OUT;smsc1;http;46737452078;102;1;")
               or ";OUT;smsc1;http;46737452078;102;1;" in entry for entry in log), log
    assert any(";IN;smsc1;46701234567;46700000000;13;1;" in entry for entry in log), log


async def test_links_health_and_metrics(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={"numbers": "0701234567", "text": "m"}) as resp:
        id = int((await resp.text()).split()[1])
    await wait_status(http, base, id, FINAL)
    async with http.get(f"{base}/api/v1/links") as resp:
        links = (await resp.json())["links"]
    assert links[0]["name"] == "smsc1" and links[0]["state"] == "up"
    async with http.get(f"{base}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["links_up"] == ["smsc1"]
    async with http.get(f"{base}/metrics") as resp:
        text = await resp.text()
    assert 'omnigate_messages_accepted_total{origin="http"} 1.0' in text
    assert 'omnigate_parts_sent_total{link="smsc1"} 1.0' in text
    assert 'omnigate_reports_total{link="smsc1",status="delivered"} 1.0' in text
    assert "omnigate_accept_to_submit_seconds_count 1.0" in text
    assert "omnigate_queue_depth 0.0" in text


async def test_scheduled_message_waits_for_its_time(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
    base = f"http://127.0.0.1:{gw.http_port}"
    at = datetime.now(UTC) + timedelta(seconds=1.0)
    async with http.post(f"{base}/api/v1/messages", json={
            "to": "0701234567", "text": "later", "schedule_at": at.isoformat()}) as resp:
        assert resp.status == 202, await resp.text()
        id = (await resp.json())["messages"][0]["id"]
    await asyncio.sleep(0.5)
    assert smsc.submit_count == 0
    await smsc.wait_for(1, timeout=5)
    assert time.time() >= at.timestamp()
    assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"


async def test_higher_priority_goes_first(
        store_url: str, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    gw = await gateway_factory(make_config(store_url, unused_tcp_port, tmp_path,
                                           link={"window": 1, "queue": 0}))
    base = f"http://127.0.0.1:{gw.http_port}"
    for i in range(5):
        async with http.post(f"{base}/api/v1/messages",
                             json={"to": "0701234567", "text": f"normal {i}"}) as resp:
            assert resp.status == 202
    async with http.post(f"{base}/api/v1/messages",
                         json={"to": "0701234567", "text": "URGENT", "priority": 9}) as resp:
        assert resp.status == 202
    sim = SmscSimulator(port=unused_tcp_port, system_id="omnigate", password="secret")
    await sim.start()
    try:
        await sim.wait_for(6, timeout=10)
        assert sim.submits[0].text == "URGENT"
        assert [s.text for s in sim.submits][1:] == [f"normal {i}" for i in range(5)]
    finally:
        await sim.stop()


async def test_falls_back_to_the_next_tier_when_the_first_is_down(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    def link(name: str, port: int) -> dict[str, Any]:
        return {"name": name, "type": "smpp", "hosts": [f"127.0.0.1:{port}"],
                "system_id": "omnigate", "password": "secret"}

    config = make_config(store_url, smsc.port, tmp_path,
                         links=[link("smsc1", unused_tcp_port), link("backup", smsc.port)],
                         routes=[{"tiers": [["smsc1"], ["backup"]]}])
    gw = await gateway_factory(config)
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={"numbers": "0701234567", "text": "via backup"}) as resp:
        id = int((await resp.text()).split()[1])
    msg = await wait_status(http, base, id, FINAL)
    assert msg["status"] == "delivered"
    assert msg["link"] == "backup"
    assert [s.text for s in smsc.submits] == ["via backup"]


async def test_kannel_dlr_url_and_ucs2_coding(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    from aiohttp import web

    calls: list[dict[str, str]] = []
    got_final = asyncio.Event()

    async def dlr(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        if request.query["type"] == "1":
            got_final.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/dlr", dlr)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        gw = await gateway_factory(make_config(store_url, smsc.port, tmp_path))
        base = f"http://127.0.0.1:{gw.http_port}"
        url = f"http://127.0.0.1:{unused_tcp_port}/dlr?type=%d&id=%I&to=%p&link=%i"
        async with http.get(f"{base}/cgi-bin/sendsms", params={
                "to": "0701234567", "text": "Hi", "coding": "2", "dlr-mask": "9",
                "dlr-url": url}) as resp:
            assert resp.status == 202
            assert await resp.text() == "0: Accepted for delivery"
        await asyncio.wait_for(got_final.wait(), 10)
    finally:
        await runner.cleanup()
    assert [c["type"] for c in calls] == ["8", "1"]
    assert {c["to"] for c in calls} == {"+46701234567"}
    assert {c["link"] for c in calls} == {"smsc1"}
    msg = await wait_status(http, base, int(calls[0]["id"]), FINAL)
    assert msg["status"] == "delivered"
    assert smsc.submits[0].data_coding == 8 and smsc.submits[0].text == "Hi"


async def test_dlr_url_without_escapes_gets_json(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    from aiohttp import web

    posts: list[dict[str, Any]] = []

    async def dlr(request: web.Request) -> web.Response:
        posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/status", dlr)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        gw = await gateway_factory(make_config(f"sqlite+aiosqlite:///{tmp_path}/o.db",
                                               smsc.port, tmp_path))
        base = f"http://127.0.0.1:{gw.http_port}"
        async with http.post(f"{base}/api/v1/messages", json={
                "to": "0701234567", "text": "json please", "dlr_mask": 9,
                "dlr_url": f"http://127.0.0.1:{unused_tcp_port}/status"}) as resp:
            id = (await resp.json())["messages"][0]["id"]
        async with asyncio.timeout(10):
            while len(posts) < 2:
                await asyncio.sleep(0.05)
    finally:
        await runner.cleanup()
    assert [(p["id"], p["status"], p["event"], p["to"], p["link"]) for p in posts] == [
        (id, "sent", 8, "+46701234567", "smsc1"), (id, "delivered", 1, "+46701234567", "smsc1")]


@pytest.mark.parametrize("protocol", ["smpp", "cimd2", "ucp"])
async def test_built_in_simulator_of_each_protocol(
        protocol: str, tmp_path: Path, gateway_factory: Callable[..., Any],
        http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    """`[[simulators]]` starts any protocol's SMSC inside the daemon, as `make run` does."""
    login = {"system_id": "omnigate"} if protocol == "smpp" else {"user": "omnigate"}
    config = make_config(
        f"sqlite+aiosqlite:///{tmp_path}/o.db", unused_tcp_port, tmp_path,
        simulators=[{"type": protocol, "listen": f"127.0.0.1:{unused_tcp_port}",
                     "system_id": "omnigate", "password": "secret", "dlr": True}],
        links=[{"name": "smsc1", "type": protocol, "hosts": [f"127.0.0.1:{unused_tcp_port}"],
                "password": "secret", **login}])
    gw = await gateway_factory(config)
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/send", params={"numbers": "0701234567", "text": "hej"}) as resp:
        id = int((await resp.text()).split()[1])
    assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"
    assert gw.simulators[0].submit_count == 1
