"""Provider callbacks (issue 8): routed by `api/webhooks.py` to the link, which checks the
caller and reads its profile's format. Real aiohttp server and client on loopback."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from omnigate.api.webhooks import add_hooks
from omnigate.carriers.http import HttpLink
from omnigate.carriers.http.config import HttpConfig
from omnigate.model import Status
from omnigate.sms.coding import Coding
from tests.support import Recorder

TOKEN = "hook-secret"
Serve = Callable[..., Awaitable[tuple[str, Recorder]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Serve hooks of one link (built from these fields) on an API-like app: the base URL."""
    runners: list[web.AppRunner] = []

    async def start(**fields: Any) -> tuple[str, Recorder]:
        rec = Recorder()
        config = {"name": "prov", "type": "http", "profile": "websms", "token": "t",
                  "callback_base": "http://127.0.0.1:1", "hook_token": TOKEN, **fields}
        link = HttpLink(HttpConfig.model_validate(config), rec)
        app = web.Application()
        add_hooks(app, {"prov": link, "other": object()})
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hooks", rec

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def websms_dlr(status: str = "delivered", key: str = "n1") -> dict[str, Any]:
    return {"messageType": "deliveryReport", "notificationId": key, "transferId": "T1",
            "recipientAddress": "46701234567", "deliveryReportMessageStatus": status}


async def test_websms_report_names_transfer_and_recipient(
        serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve()
    for status, key in (("delivered", "a"), ("undelivered", "b"), ("expired", "c"),
                        ("accepted", "d")):
        async with http.post(f"{base}/prov/dlr?token={TOKEN}", json=websms_dlr(status, key)) as r:
            assert r.status == 200 and (await r.json())["statusCode"] == 2000
    assert [(r.carrier_ref, r.status) for r in rec.reports] == [
        ("T1:46701234567", Status.DELIVERED), ("T1:46701234567", Status.UNDELIVERED),
        ("T1:46701234567", Status.EXPIRED)]  # "accepted" is not final: nothing to say


async def test_part_count_in_the_url_settles_every_part(
        serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve()
    async with http.post(f"{base}/prov/dlr?token={TOKEN}&n=3", json=websms_dlr()) as r:
        assert r.status == 200
    assert [r.carrier_ref for r in rec.reports] == [f"T1:46701234567#{i}" for i in (1, 2, 3)]


async def test_kannel_report_from_its_dlr_url(serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve(profile="kannel", url="http://k.invalid/cgi-bin/sendsms",
                            token=None, username="u", password="p")
    async with http.get(f"{base}/prov/dlr", params={"token": TOKEN, "ref": "12.1", "event": "8",
                                                    "answer": "ACK/"}) as r:
        assert r.status == 200
    async with http.get(f"{base}/prov/dlr", params={"token": TOKEN, "ref": "12.1", "event": "16",
                                                    "answer": "NACK/0x0000000b"}) as r:
        assert r.status == 200
    [report] = rec.reports  # the SMSC ack (8) is not final
    assert (report.carrier_ref, report.status, report.error) == (
        "12.1", Status.UNDELIVERED, "NACK/0x0000000b")


async def test_duplicate_callbacks_answered_without_a_second_effect(
        serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve()
    mo = {"messageType": "text", "notificationId": "m1", "senderAddress": "46701234567",
          "recipientAddress": "4670000", "textMessageContent": "Hej å"}
    for _ in range(2):
        async with http.post(f"{base}/prov/mo?token={TOKEN}", json=mo) as r:
            assert r.status == 200
        async with http.post(f"{base}/prov/dlr?token={TOKEN}", json=websms_dlr()) as r:
            assert r.status == 200
    assert len(rec.reports) == 1
    [inbound] = rec.mo
    assert (inbound.link, inbound.sender, inbound.recipient, inbound.text) == (
        "prov", "46701234567", "4670000", "Hej å")


@pytest.mark.parametrize(("path", "headers", "status", "reason"), [
    ("/prov/dlr", {}, 401, "bad or missing token"),
    ("/prov/dlr?token=guess", {}, 401, "bad or missing token"),
    ("/nobody/dlr?token=" + TOKEN, {}, 404, "no link 'nobody'"),
    ("/other/dlr?token=" + TOKEN, {}, 404, "takes no callbacks"),
    ("/prov/status?token=" + TOKEN, {}, 404, "no such hook"),
])
async def test_refused_callbacks_change_nothing(
        serve: Serve, http: aiohttp.ClientSession, path: str, headers: dict[str, str],
        status: int, reason: str) -> None:
    base, rec = await serve()
    async with http.post(base + path, json=websms_dlr(), headers=headers) as r:
        assert r.status == status and reason in await r.text()
    assert rec.reports == []


async def test_token_in_a_header(serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve()
    async with http.post(f"{base}/prov/dlr", json=websms_dlr(),
                         headers={"X-Hook-Token": TOKEN}) as r:
        assert r.status == 200
    assert len(rec.reports) == 1


async def test_hmac_signed_body(serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve(hook_token=None, hook_hmac_secret="k")
    body = orjson.dumps(websms_dlr())
    good = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    for signature, status in (("0" * 64, 401), (good, 200), (f"sha256={good}", 200)):
        async with http.post(f"{base}/prov/dlr", data=body,
                             headers={"X-Signature": signature,
                                      "Content-Type": "application/json"}) as r:
            assert r.status == status
    assert len(rec.reports) == 1  # the second good one is the same callback again


async def test_caller_outside_hook_allow_is_forbidden(
        serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve(hook_allow=["192.0.2.0/24"])
    async with http.post(f"{base}/prov/dlr?token={TOKEN}", json=websms_dlr()) as r:
        assert r.status == 403 and "not in hook_allow" in await r.text()
    assert rec.reports == []


async def test_link_without_a_secret_takes_no_callbacks(
        serve: Serve, http: aiohttp.ClientSession) -> None:
    base, _rec = await serve(hook_token=None)
    async with http.post(f"{base}/prov/dlr", json=websms_dlr()) as r:
        assert r.status == 403 and "takes no callbacks" in await r.text()


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "not valid JSON"),
    (orjson.dumps({"transferId": "T1", "deliveryReportMessageStatus": "delivered"}),
     "/recipientAddress: missing"),
    (orjson.dumps({**websms_dlr(), "deliveryReportMessageStatus": ""}),
     "/deliveryReportMessageStatus: missing"),
])
async def test_bad_payload_is_400_with_the_reason(
        serve: Serve, http: aiohttp.ClientSession, body: bytes, reason: str) -> None:
    base, rec = await serve()
    async with http.post(f"{base}/prov/dlr?token={TOKEN}", data=body,
                         headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and reason in await r.text()
    assert rec.reports == []


async def test_bad_part_count_is_400(serve: Serve, http: aiohttp.ClientSession) -> None:
    base, _rec = await serve()
    async with http.post(f"{base}/prov/dlr?token={TOKEN}&n=x", json=websms_dlr()) as r:
        assert r.status == 400 and "n: not a part count" in await r.text()


async def test_kannel_mo_from_a_get_url(serve: Serve, http: aiohttp.ClientSession) -> None:
    base, rec = await serve(profile="kannel", url="http://k.invalid/cgi-bin/sendsms",
                            token=None, username="u", password="p")
    async with http.get(f"{base}/prov/mo", params={"token": TOKEN, "from": "+46701234567",
                                                   "to": "4670000", "text": "Привет"}) as r:
        assert r.status == 200 and await r.text() == "OK\n"
    [inbound] = rec.mo
    assert (inbound.sender, inbound.recipient, inbound.text, inbound.coding) == (
        "46701234567", "4670000", "Привет", Coding.UCS2)
