"""On-call end to end: schedules from HTTP, SMTP and the spool reach the right phone; alarms
are acknowledged by SMS (MO injected at the SMPP simulator), escalate, and survive a
restart. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import smtplib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from omnigate.carriers.base import LinkState
from omnigate.config import Config
from omnigate.sim.smpp import SmscSimulator
from tests.support import make_config, poll

A, B, C, D = "46701111111", "46702222222", "46703333333", "46709999999"
COMPANY = "46700000000"


def config(store_url: str, smsc: SmscSimulator, tmp_path: Path, after: float = 30.0,
           **more: Any) -> Config:
    return make_config(store_url, smsc.port, tmp_path, schedules=[
        {"name": "jour", "timezone": "Europe/Stockholm", "numbers": [f"+{A}", f"+{B}"],
         "ack": True, "escalate_after": after, "escalate_to": "chefer"},
        {"name": "chefer", "timezone": "UTC", "numbers": [f"+{C}"]},
        {"name": "desk", "timezone": "Europe/Stockholm",
         "rotations": [{"name": "w", "anchor": "2026-01-05T08:00:00", "turns": [f"+{C}", f"+{D}"]}],
         "rules": [{"rotation": "w"}]},
    ], **more)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def started(gateway_factory: Callable[..., Any], cfg: Config) -> Any:
    gw = await gateway_factory(cfg)
    await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
    return gw


def base(gw: Any) -> str:
    return f"http://127.0.0.1:{gw.http_port}"


async def send(http: aiohttp.ClientSession, gw: Any, to: str, text: str,
               **more: Any) -> list[dict[str, Any]]:
    async with http.post(f"{base(gw)}/api/v1/messages",
                         json={"to": to, "text": text, **more}) as resp:
        assert resp.status in (200, 201, 202), await resp.text()
        return (await resp.json())["messages"]


async def alarm_of(http: aiohttp.ClientSession, gw: Any, message_id: int) -> tuple[int, str]:
    """The alarm id and reference, as the message's event records them."""
    async with http.get(f"{base(gw)}/api/v1/messages/{message_id}") as resp:
        events = (await resp.json())["events"]
    [reason] = [e["reason"] for e in events if (e["reason"] or "").startswith("on call:")]
    m = re.search(r"alarm (\d+) ref (\d+)", reason)
    assert m, reason
    return int(m.group(1)), m.group(2)


async def alarm_until(http: aiohttp.ClientSession, gw: Any, id: int,
                      done: Callable[[dict[str, Any]], bool], timeout: float = 10.0
                      ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"{base(gw)}/api/v1/alarms/{id}") as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        if done(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"alarm {id} did not get there: {body}")
        await asyncio.sleep(0.05)


async def inbound_rows(http: aiohttp.ClientSession, gw: Any, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        async with http.get(f"{base(gw)}/api/v1/inbound") as resp:
            rows = [r for r in (await resp.json())["inbound"] if r["status"] != "received"]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


def to(smsc: SmscSimulator) -> list[tuple[str, str]]:
    return [(s.destination, s.text) for s in smsc.submits]


async def test_alarm_acknowledged_at_level_1_is_announced_and_does_not_escalate(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, config(store_url, smsc, tmp_path, after=1.0))
    accepted = await send(http, gw, "schedule:jour", "DB1 down")
    assert sorted(m["to"] for m in accepted) == [f"+{A}", f"+{B}"]
    await smsc.wait_for(2)
    id, ref = await alarm_of(http, gw, accepted[0]["id"])
    assert sorted(to(smsc)) == [(A, f"DB1 down\nReply OK {ref}"), (B, f"DB1 down\nReply OK {ref}")]

    await smsc.inject_mo(A, COMPANY, f"ok {ref} on my way")
    body = await alarm_until(http, gw, id, lambda b: b["status"] == "acknowledged")
    assert (body["acked_by"], body["level"], body["test"]) == (f"+{A}", 1, False)
    await smsc.wait_for(3)
    assert to(smsc)[2] == (B, f"Alarm {ref} acknowledged by +{A}")
    body = await alarm_until(http, gw, id, lambda b: len(b["timeline"]) == 3)
    assert [s["kind"] for s in body["timeline"]] == ["sent", "acknowledged", "announced"]
    assert body["timeline"][0]["detail"].startswith(f"schedule jour: +{A} (message ")
    [row] = await inbound_rows(http, gw, 1)
    assert (row["rule"], row["status"]) == ("ack", "delivered")

    await asyncio.sleep(1.3)  # past escalate_after: the acknowledged alarm stays at level 1
    assert smsc.submit_count == 3
    async with http.get(f"{base(gw)}/api/v1/alarms", params={"status": "open"}) as resp:
        assert (await resp.json())["alarms"] == []


async def test_unacknowledged_drill_escalates_and_unknown_numbers_are_ignored(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, config(store_url, smsc, tmp_path, after=0.5))
    accepted = await send(http, gw, "schedule:jour", "TEST: pump 3", client_ref="drill-1")
    await smsc.wait_for(2)
    id, ref = await alarm_of(http, gw, accepted[0]["id"])
    again = await send(http, gw, "schedule:jour", "TEST: pump 3", client_ref="drill-1")
    assert [m["id"] for m in again] == [m["id"] for m in accepted]  # no second alarm either
    await smsc.inject_mo(D, COMPANY, f"OK {ref}")  # not a recipient: no acknowledgement
    [row] = await inbound_rows(http, gw, 1)
    assert row["rule"] != "ack" and row["from"] == D

    body = await alarm_until(http, gw, id, lambda b: b["level"] == 2)
    assert (body["status"], body["schedule"], body["test"]) == ("open", "chefer", True)
    await smsc.wait_for(3)
    assert to(smsc)[2] == (C, f"TEST: pump 3\nReply OK {ref}")
    assert body["timeline"][1]["kind"] == "escalated"
    assert body["timeline"][1]["detail"].startswith(f"schedule chefer: +{C} (message ")

    await smsc.inject_mo(C, COMPANY, "OK")  # one open alarm of C's: no reference needed
    body = await alarm_until(http, gw, id, lambda b: len(b["timeline"]) == 4)
    assert (body["status"], body["acked_by"], body["level"]) == ("acknowledged", f"+{C}", 2)
    await smsc.wait_for(5)
    assert sorted(to(smsc)[3:]) == [(A, f"TEST: Alarm {ref} acknowledged by +{C}"),
                                    (B, f"TEST: Alarm {ref} acknowledged by +{C}")]
    async with http.get(f"{base(gw)}/api/v1/alarms") as resp:
        assert [a["id"] for a in (await resp.json())["alarms"]] == [id]


async def test_plain_ok_with_two_open_alarms_needs_the_reference(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, config(store_url, smsc, tmp_path))
    first = await send(http, gw, "schedule:jour", "fan 1")
    second = await send(http, gw, "schedule:jour", "fan 2")
    (id1, _), (id2, ref2) = [await alarm_of(http, gw, m[0]["id"]) for m in (first, second)]
    await smsc.inject_mo(B, COMPANY, "OK")  # which one? neither
    [row] = await inbound_rows(http, gw, 1)
    assert row["rule"] != "ack"
    await smsc.inject_mo(B, COMPANY, f"OK {ref2}")
    body = await alarm_until(http, gw, id2, lambda b: b["status"] == "acknowledged")
    assert body["acked_by"] == f"+{B}"
    async with http.get(f"{base(gw)}/api/v1/alarms/{id1}") as resp:
        assert (await resp.json())["status"] == "open"
    await smsc.inject_mo(B, COMPANY, "ok")  # now only one is open
    await alarm_until(http, gw, id1, lambda b: b["status"] == "acknowledged")
    async with http.get(f"{base(gw)}/api/v1/alarms/123") as resp:
        assert resp.status == 404


async def test_escalation_timer_survives_a_restart(
        store_url: str, smsc: SmscSimulator, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    from omnigate.gateway import Gateway

    cfg = config(store_url, smsc, tmp_path, after=2.0)
    gw = Gateway(cfg)
    await gw.start()
    try:
        await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
        accepted = await send(http, gw, "schedule:jour", "disk full")
        raised = time.monotonic()
        id, ref = await alarm_of(http, gw, accepted[0]["id"])
    finally:
        await gw.stop(grace=2.0)
    await asyncio.sleep(max(0.0, raised + 1.2 - time.monotonic()))
    gw = Gateway(cfg)
    await gw.start()
    restarted = time.monotonic()
    try:
        body = await alarm_until(http, gw, id, lambda b: b["level"] == 2)
        # due when it was due before the restart (2 s after raising), not 2 s after the start
        assert time.monotonic() - raised < 3.0 and time.monotonic() - restarted < 1.6
        await smsc.wait_for(3)
        assert (C, f"disk full\nReply OK {ref}") in to(smsc)
        assert [s["kind"] for s in body["timeline"]] == ["sent", "escalated"]
    finally:
        await gw.stop(grace=2.0)


def mail(port: int, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("nagios@example.com", [rcpt], f"Subject: {subject}\r\n\r\n".encode())


async def test_schedule_addresses_from_http_smtp_and_spool_reach_the_phone_on_call(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    spool = tmp_path / "spool"
    gw = await started(gateway_factory, config(
        store_url, smsc, tmp_path, smtp={"listen": "127.0.0.1:0", "domains": ["sms.example.com"]},
        spool={"dir": str(spool), "settle": 0.05}))
    async with http.get(f"{base(gw)}/api/v1/schedules/desk/now") as resp:
        now = await resp.json()
    phone = now["numbers"][0]
    assert now["why"].startswith("rule 1 (always), rotation w turn") and now["timezone"] == \
        "Europe/Stockholm"
    async with http.get(f"{base(gw)}/api/v1/schedules/DESK/now",
                        params={"at": "2026-01-12T08:00"}) as resp:  # turn 2 begins
        at = await resp.json()
    assert (at["numbers"], at["at"]) == ([f"+{D}"], "2026-01-12T08:00:00+01:00")
    async with http.get(f"{base(gw)}/api/v1/schedules/nope/now") as resp:
        assert resp.status == 404
    for path, params, field in (("schedules/desk/now", {"at": "soon"}, "at"),
                                ("alarms", {"status": "maybe"}, "status"),
                                ("alarms/x1", {}, "id")):
        async with http.get(f"{base(gw)}/api/v1/{path}", params=params) as resp:
            assert (resp.status, (await resp.json())["error"]["field"]) == (400, field)

    [msg] = await send(http, gw, "schedule:desk", "from http")
    assert msg["to"] == phone
    async with http.get(f"{base(gw)}/api/v1/messages/{msg['id']}") as resp:
        reasons = [e["reason"] for e in (await resp.json())["events"]]
    assert any(r.startswith("on call: schedule desk: rule 1 (always), rotation w turn")
               for r in reasons if r)
    await asyncio.to_thread(mail, gw.smtp.port, "Desk@sms.example.com", "from smtp")
    (spool / "outgoing" / "job1").write_text("To: desk\n\nfrom spool\n")
    await smsc.wait_for(3)
    assert sorted(to(smsc)) == sorted([(phone.lstrip("+"), "from http"),
                                       (phone.lstrip("+"), "from smtp"),
                                       (phone.lstrip("+"), "from spool")])
    async with http.post(f"{base(gw)}/api/v1/messages",
                         json={"to": "schedule:nope", "text": "x"}) as resp:
        assert resp.status == 400
        assert "no schedule named 'nope'" in (await resp.json())["error"]["reason"]
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await asyncio.to_thread(mail, gw.smtp.port, "nope@sms.example.com", "x")
