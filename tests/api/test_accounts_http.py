"""Accounts end to end over HTTP: a real gateway, the SMPP simulator, SQLite and
PostgreSQL. Each refusal with its status and code, prepaid balances under
concurrent submits, quotas, footers, refunds and reports counted by hand."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.accounts.admin import ADMIN_KEY, Admin, send, start
from tests.support import FINAL, wait_status

MOBILE = "+46701234567"  # 0.05 per part
FIXED = "+4681234567"  # 0.10 per part (not mobile: numbers.mobile_only is off below)
GERMAN = "+4915112345678"  # 0.20 per part (default price)
OPEN_NUMBERS = {"mobile_only": False}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # the admin key by default, so tests can poll messages as a user would
    async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN_KEY}) as session:
        yield session


async def test_every_refusal_has_its_status_and_code(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path, numbers=OPEN_NUMBERS)
    admin = Admin(http, base)
    cases = [  # settings, message fields, HTTP status, field (the code)
        ({"senders": ["ACME"]}, {"from": "EVIL"}, 403, "from"),
        ({"destinations": ["+4670"]}, {"to": FIXED}, 403, "to"),
        ({"daily_quota": 1}, {"text": "x" * 200}, 429, "daily_quota"),
        ({"monthly_quota": 1}, {"text": "x" * 200}, 429, "monthly_quota"),
        ({"billing": "prepaid"}, {}, 402, "balance"),
    ]
    for i, (settings, fields, status, code) in enumerate(cases):
        key = await admin.account(f"user{i}", **settings)
        got, body = await send(http, base, key, fields.pop("to", MOBILE),
                               fields.pop("text", "hi"), **fields)
        assert (got, body["error"]["field"]) == (status, code), (settings, body)
    # a disabled account, and one whose network the caller is not in
    key = await admin.account("off")
    await admin.call("PATCH", "/api/v1/accounts/off", json={"enabled": False})
    got, body = await send(http, base, key, MOBILE, "hi")
    assert (got, body["error"]["field"]) == (403, "account")
    key = await admin.account("far", allow=["192.0.2.0/24"])
    got, _ = await send(http, base, key, MOBILE, "hi")
    assert got == 403
    # too fast: 2 messages/s at the door, the third at once is refused
    key = await admin.account("fast", submit_rate=2)
    answers = [await send(http, base, key, MOBILE, "hi") for _ in range(3)]
    assert [a[0] for a in answers] == [202, 202, 429] and answers[2][1]["error"]["field"] == "rate"
    # a user may not administer
    user_key = await admin.account("plain")
    async with http.get(f"{base}/api/v1/accounts", headers={"X-API-Key": user_key}) as r:
        assert r.status == 403
    # nothing refused was stored or charged
    rows = (await admin.call("GET", "/api/v1/reports/traffic?group=account"))["rows"]
    assert {(r["account"], r["messages"]) for r in rows} == {("fast", 2)}
    assert gw.accounts.usage["user4"].balance == 0


async def test_prepaid_concurrent_submits_never_overspend(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path)
    admin = Admin(http, base)
    key = await admin.account("pre", billing="prepaid")
    assert await admin.topup("pre", 0.5) == 0.5  # ten mobile parts at 0.05
    answers = await asyncio.gather(*(send(http, base, key, MOBILE, f"m{i}") for i in range(30)))
    statuses = sorted(a[0] for a in answers)
    assert statuses == [202] * 10 + [402] * 20
    assert gw.accounts.usage["pre"].balance == pytest.approx(0.0)
    # the balance is the store's: a new gateway on the same store sees the same
    await gw.stop(grace=2.0)
    gw2, base2 = await start(gateway_factory, store_url, smsc.port, tmp_path)
    assert gw2.accounts.usage["pre"].balance == pytest.approx(0.0)
    billing = (await Admin(http, base2).call("GET", "/api/v1/reports/billing"))["rows"]
    assert [(r["account"], r["messages"], r["parts"], r["amount"]) for r in billing] == \
        [("pre", 10, 10, 0.5)]
    movements = (await Admin(http, base2).call("GET", "/api/v1/reports/movements"))["rows"]
    assert [(m["kind"], m["amount"]) for m in movements] == [("topup", 0.5)]


async def test_refund_of_failed_prepaid_messages(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path)
    admin = Admin(http, base)
    key = await admin.account("pre", billing="prepaid")
    await admin.topup("pre", 1.0)
    smsc.fail_every = 1  # every submit refused for good: the message fails
    status, body = await send(http, base, key, MOBILE, "x" * 200)  # 2 parts = 0.10
    assert status == 202 and gw.accounts.usage["pre"].balance == pytest.approx(0.9)
    msg = await wait_status(http, base, body["messages"][0]["id"], FINAL)
    assert msg["status"] == "failed"
    for _ in range(100):
        if gw.accounts.usage["pre"].balance == pytest.approx(1.0):
            break
        await asyncio.sleep(0.05)
    assert gw.accounts.usage["pre"].balance == pytest.approx(1.0)
    movements = (await admin.call("GET", "/api/v1/reports/movements?account=pre"))["rows"]
    assert [(m["kind"], m["amount"]) for m in movements] == [("topup", 1.0), ("refund", 0.1)]
    billing = (await admin.call("GET", "/api/v1/reports/billing"))["rows"]
    assert [(r["parts"], r["amount"]) for r in billing] == [(2, 0.0)]  # refunded: not billed


async def test_footer_and_default_sender_are_sent_and_counted(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path)
    admin = Admin(http, base)
    key = await admin.account("sig", senders=["ACME"], default_sender="ACME",
                              footer=" -- ACME AB", daily_quota=2)
    status, body = await send(http, base, key, MOBILE, "a" * 150)  # 150 + 11 > 160: two parts
    assert status == 202 and body["messages"][0]["parts"] == 2
    msg = await wait_status(http, base, body["messages"][0]["id"], FINAL)
    assert msg["text"] == "a" * 150 + " -- ACME AB" and msg["from"] == "ACME"
    assert [m[2] for m in smsc.messages()] == ["a" * 150 + " -- ACME AB"]
    status, body = await send(http, base, key, MOBILE, "b")  # the two parts used the quota
    assert (status, body["error"]["field"]) == (429, "daily_quota")
    assert gw.accounts.usage["sig"].day_parts == 2


async def test_daily_quota_starts_again_at_midnight(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path,
                           billing={"timezone": "Europe/Stockholm"})
    admin = Admin(http, base)
    key = await admin.account("q", daily_quota=1)
    evening = datetime(2030, 1, 1, 22, 59, 59, tzinfo=UTC).timestamp()  # 23:59:59 local
    gw.accounts.clock = lambda: evening
    assert (await send(http, base, key, MOBILE, "one"))[0] == 202
    assert (await send(http, base, key, MOBILE, "two"))[0] == 429
    gw.accounts.clock = lambda: evening + 1  # midnight in Stockholm
    assert (await send(http, base, key, MOBILE, "three"))[0] == 202
    assert (await send(http, base, key, MOBILE, "four"))[0] == 429


async def test_reports_by_dimension_and_period_as_json_and_csv(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path, numbers=OPEN_NUMBERS)
    admin = Admin(http, base)
    sales = await admin.account("sales", company="ACME", department="Sales", project="launch")
    ops = await admin.account("ops", company="ACME", department="Ops", cost_centre="CC-7")
    other = await admin.account("other", company="Globex")
    sent = [(sales, MOBILE, "x" * 200), (sales, FIXED, "hi"), (ops, [MOBILE, GERMAN], "hi"),
            (other, GERMAN, "y" * 400)]
    ids = []
    for key, to, text in sent:
        status, body = await send(http, base, key, to, text)
        assert status == 202, body
        ids += [m["id"] for m in body["messages"]]
    for id in ids:
        await wait_status(http, base, id, FINAL)
    # by hand: sales 2 parts x 0.05 + 1 x 0.10 = 0.20; ops 0.05 + 0.20 = 0.25;
    # other 3 parts (400 GSM characters) x 0.20 = 0.60
    rows = (await admin.call("GET", "/api/v1/reports/billing?group=company,department"
                                    "&period=month"))["rows"]
    month = datetime.now(UTC).strftime("%Y-%m")
    assert rows == [
        {"period": month, "company": "ACME", "department": "Ops", "messages": 2, "parts": 2,
         "amount": 0.25},
        {"period": month, "company": "ACME", "department": "Sales", "messages": 2, "parts": 3,
         "amount": 0.2},
        {"period": month, "company": "Globex", "department": None, "messages": 1, "parts": 3,
         "amount": 0.6}]
    text = await admin.call("GET", "/api/v1/reports/billing?group=cost_centre&format=csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(r["cost_centre"], r["parts"], r["amount"]) for r in table] == \
        [("", "6", "0.8"), ("CC-7", "2", "0.25")]
    traffic = (await admin.call("GET", "/api/v1/reports/traffic?group=account,status"))["rows"]
    assert {(r["account"], r["status"], r["messages"], r["parts"]) for r in traffic} == {
        ("ops", "delivered", 2, 2), ("other", "delivered", 1, 3), ("sales", "delivered", 2, 3)}
    week = (await admin.call("GET", "/api/v1/reports/traffic?group=project&period=week"))["rows"]
    assert {(r["project"], r["parts"]) for r in week} == {("launch", 3), (None, 5)}
    assert week[0]["period"].startswith(str(datetime.now(UTC).isocalendar()[0]) + "-W")
    # the store's views give report tools the same numbers
    from sqlalchemy import text as sql

    async with gw.store.engine.connect() as conn:
        view = (await conn.execute(sql(
            "SELECT account, SUM(parts), SUM(amount) FROM v_billing GROUP BY account "
            "ORDER BY account"))).all()
    assert [(a, int(p), round(float(m), 6)) for a, p, m in view] == \
        [("ops", 2, 0.25), ("other", 3, 0.6), ("sales", 3, 0.2)]


async def test_admin_api_keys_passwords_and_balances(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    gw, base = await start(gateway_factory, store_url, smsc.port, tmp_path)
    admin = Admin(http, base)
    key = await admin.account("alice", password="wonderland", billing="prepaid",
                              credit_limit=0.05)
    listed = await admin.call("GET", "/api/v1/accounts/alice")
    assert listed["password"] is True and "password_hash" not in listed
    [stored] = listed["api_keys"]
    assert key.startswith(f"og_{stored['id']}_") and "key" not in stored  # shown once only
    # the argon2 password works for Basic auth; the credit limit lets one part through
    basic = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    async with http.post(f"{base}/api/v1/messages", headers={"Authorization": basic},
                         json={"to": MOBILE, "text": "on credit"}) as r:
        assert r.status == 202, await r.text()
    assert (await admin.call("GET", "/api/v1/reports/balances"))["rows"] == [
        {"account": "alice", "balance": -0.05, "credit_limit": 0.05, "currency": "EUR"}]
    await admin.call("POST", "/api/v1/accounts/alice/balance", json={"set": 2.0, "note": "po 7"})
    assert gw.accounts.usage["alice"].balance == 2.0
    # a revoked key is refused at once
    await admin.call("DELETE", f"/api/v1/accounts/alice/keys/{stored['id']}", 204)
    assert (await send(http, base, key, MOBILE, "hi"))[0] == 401
    # bad input gets a clear error
    answer = await admin.call("POST", "/api/v1/accounts", 400,
                              json={"name": "bob", "senders": ["WAY-TOO-LONG-NAME"]})
    assert answer["error"]["field"] == "account" and "senders" in answer["error"]["reason"]
    await admin.call("POST", "/api/v1/accounts", 409, json={"name": "alice"})
    await admin.call("POST", "/api/v1/accounts/root/balance", 400, json={"topup": 1})
    await admin.call("DELETE", "/api/v1/accounts/alice", 204)
    await admin.call("GET", "/api/v1/accounts/alice", 404)


async def test_an_accounts_default_status_callback(
        store_url: str, smsc: Any, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    from aiohttp import web

    calls: list[dict[str, str]] = []

    async def dlr(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/dlr", dlr)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        _, base = await start(gateway_factory, store_url, smsc.port, tmp_path)
        admin = Admin(http, base)
        key = await admin.account("crm", dlr_url=f"http://127.0.0.1:{port}/dlr?id=%I&event=%d",
                                  dlr_mask=1)
        status, body = await send(http, base, key, MOBILE, "with a callback")
        assert status == 202
        id = body["messages"][0]["id"]
        assert (await wait_status(http, base, id, FINAL))["status"] == "delivered"
        async with asyncio.timeout(10):
            while not calls:
                await asyncio.sleep(0.05)
        assert calls == [{"id": str(id), "event": "1"}]
    finally:
        await runner.cleanup()
