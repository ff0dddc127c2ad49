"""The HTTP ingress over a real loopback socket, driven by a real aiohttp client.

The thing under test is the HTTP layer: `submit` and `reader` are small
in-test collaborators that record what they were handed. End-to-end tests
through the real gateway live with the gateway's tests.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from yarl import URL

from omnigate.api import openapi
from omnigate.api.http import AUTHENTICATOR, KANNEL_ACCEPTED, ROUTES, build_app
from omnigate.config import AccountConfig, HttpConfig
from omnigate.metrics import Metrics
from omnigate.model import Accepted, Origin, Status, SubmitError, SubmitRequest

BAD_NUMBER = "0700000000"  # the fake submit refuses it: field `to`
QUOTA_NUMBER = "0799999999"  # refused with kind "quota" -> 429
ODD_KIND_NUMBER = "0788888888"  # refused with an unknown kind -> 400
DOWN_NUMBER = "0777777777"  # refused with kind "unavailable" (gateway stopping) -> 503
BROKEN_NUMBER = "0766666666"  # submit fails unexpectedly -> 500


def _cheap_hash(secret: str) -> str:
    """A valid scrypt hash at a low cost, so these tests stay fast (test_auth covers
    hash_secret's real parameters)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**4, r=8, p=1, dklen=32)
    return f"scrypt$16$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ALICE = AccountConfig(name="alice", password_hash=_cheap_hash("s3cret"),
                      api_key_hash=[_cheap_hash("key-alice-1")])
BOB_ELSEWHERE = AccountConfig(name="bob", password_hash=_cheap_hash("bobpw"), allow=["10.0.0.0/8"])


class FakeSubmit:
    """Records every request; national 07... numbers become +467...; commits instantly."""

    def __init__(self) -> None:
        self.requests: list[SubmitRequest] = []
        self.next_id = 100

    async def __call__(self, request: SubmitRequest) -> list[Accepted]:
        self.requests.append(request)
        out = []
        for number in request.to:
            if number == BAD_NUMBER:
                raise SubmitError("to", f"{number} is not a mobile number")
            if number == QUOTA_NUMBER:
                raise SubmitError("to", "daily quota used up", "quota")
            if number == ODD_KIND_NUMBER:
                raise SubmitError("to", "something new", "brand-new-kind")
            if number == DOWN_NUMBER:
                raise SubmitError("service", "omnigate is not accepting messages", "unavailable")
            if number == BROKEN_NUMBER:
                raise RuntimeError("store exploded")
            e164 = "+46" + number[1:] if number.startswith("0") else number
            self.next_id += 1
            out.append(Accepted(self.next_id, e164, Status.QUEUED, 1 + len(request.text) // 161))
        return out

    @property
    def last(self) -> SubmitRequest:
        return self.requests[-1]


@dataclass
class FakeReader:
    calls: list[dict] = field(default_factory=list)

    async def get_message(self, id: int) -> dict | None:
        if id != 7:
            return None
        at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        return {"id": 7, "to": "+46701234567", "from": "ACME", "text": "hi", "status": "sent",
                "parts": 1, "created_at": at, "updated_at": at, "error": None,
                "events": [{"at": at, "status": "sent", "link": "smpp1", "node": "node1",
                            "reason": None}]}

    async def list_messages(self, *, status: str | None, to: str | None,
                            since: datetime | None, limit: int) -> list[dict]:
        self.calls.append({"status": status, "to": to, "since": since, "limit": limit})
        return [{"id": 7, "to": "+46701234567", "status": "sent"}]


@dataclass
class Harness:
    url: URL
    http: ClientSession
    submit: FakeSubmit
    reader: FakeReader
    app: web.Application
    health: dict

    def get(self, path: str, **kw):
        return self.http.get(self.url.join(URL(path, encoded=kw.pop("encoded", False))), **kw)

    def post(self, path: str, **kw):
        return self.http.post(self.url.join(URL(path)), **kw)


Serve = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []
    sessions: list[ClientSession] = []

    async def start(config: HttpConfig | None = None,
                    accounts: list[AccountConfig] | None = None) -> Harness:
        submit, reader = FakeSubmit(), FakeReader()
        health = {"status": "ok", "links": 1}
        metrics = Metrics()
        metrics.accepted.labels(origin="http").inc()
        app = build_app(config=config or HttpConfig(), accounts=accounts or [], submit=submit,
                        reader=reader, links=lambda: [{"name": "smpp1", "state": "up"}],
                        health=lambda: health, metrics=metrics, version="9.9.9")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        http = ClientSession(timeout=ClientTimeout(total=5))
        sessions.append(http)
        return Harness(URL(f"http://127.0.0.1:{port}/"), http, submit, reader, app, health)

    yield start
    for s in sessions:
        await s.close()
    for r in runners:
        await r.cleanup()


@pytest.fixture
async def gw(serve: Serve) -> Harness:
    return await serve()


# -- /send ----------------------------------------------------------------------


async def test_send_get_answers_one_line_per_recipient(gw: Harness) -> None:
    async with gw.get("/send", params={"numbers": "0705123456,0708321321",
                                       "text": "My sms message", "from": "ACME"}) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        assert await r.text() == "OK 101 +46705123456 1\nOK 102 +46708321321 1\n"
    req = gw.submit.last
    assert req.to == ["0705123456", "0708321321"]
    assert req.text == "My sms message"
    assert req.sender == "ACME"
    assert req.origin is Origin.HTTP
    assert req.account is None
    assert req.flash is False


async def test_send_post_form_and_flash(gw: Harness) -> None:
    async with gw.post("/send", data={"numbers": "0705123456", "text": "åäö €",
                                      "flash": "1"}) as r:
        assert r.status == 200
        assert await r.text() == "OK 101 +46705123456 1\n"
    assert gw.submit.last.text == "åäö €"
    assert gw.submit.last.flash is True


@pytest.mark.parametrize("how", ["accept", "format"])
async def test_send_json_answer(gw: Harness, how: str) -> None:
    params = {"numbers": "0705123456", "text": "x"}
    headers = {}
    if how == "accept":
        headers["Accept"] = "application/json"
    else:
        params["format"] = "json"
    async with gw.get("/send", params=params, headers=headers) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.json() == {"messages": [
            {"id": 101, "to": "+46705123456", "status": "queued", "parts": 1}]}


@pytest.mark.parametrize(("params", "status", "line"), [
    ({"text": "x"}, 400, "ERROR numbers: missing"),
    ({"numbers": " , ", "text": "x"}, 400, "ERROR numbers: missing"),
    ({"numbers": "0705123456"}, 400, "ERROR text: missing"),
    ({"numbers": "0705123456", "text": "x", "flash": "maybe"}, 400, "ERROR flash: must be 1 or 0"),
    ({"numbers": BAD_NUMBER, "text": "x"}, 400,
     f"ERROR numbers: {BAD_NUMBER} is not a mobile number"),
    ({"numbers": QUOTA_NUMBER, "text": "x"}, 429, "ERROR numbers: daily quota used up"),
    ({"numbers": ODD_KIND_NUMBER, "text": "x"}, 400, "ERROR numbers: something new"),
    ({"numbers": DOWN_NUMBER, "text": "x"}, 503,
     "ERROR service: omnigate is not accepting messages"),
    ({"numbers": BROKEN_NUMBER, "text": "x"}, 500, "ERROR server: internal error"),
])
async def test_send_errors_name_the_field(gw: Harness, params: dict, status: int,
                                          line: str) -> None:
    async with gw.get("/send", params=params) as r:
        assert r.status == status
        assert await r.text() == line + "\n"


async def test_send_form_that_is_not_utf8(gw: Harness) -> None:
    async with gw.post("/send", data="numbers=0705123456&text=å".encode("iso-8859-1"),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 400
        assert await r.text() == "ERROR body: malformed form data\n"
    assert gw.submit.requests == []


async def test_send_error_as_json(gw: Harness) -> None:
    async with gw.post("/send", data={"text": "x", "format": "json"}) as r:
        assert r.status == 400
        assert await r.json() == {"error": {"field": "numbers", "reason": "missing"}}


async def test_too_many_recipients(serve: Serve) -> None:
    gw = await serve(HttpConfig(max_recipients=3))
    numbers = ",".join(f"070512345{i}" for i in range(4))
    async with gw.get("/send", params={"numbers": numbers, "text": "x"}) as r:
        assert r.status == 400
        assert await r.text() == "ERROR numbers: too many recipients (4, at most 3)\n"
    async with gw.post("/api/v1/messages", json={"to": numbers.split(","), "text": "x"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["field"] == "to"
    assert gw.submit.requests == []


# -- /cgi-bin/sendsms ---------------------------------------------------------------


async def test_kannel_accepts_exactly_like_kannel(gw: Harness) -> None:
    # Kannel clients put several numbers in `to` separated by '+' (a space)
    raw = "/cgi-bin/sendsms?from=ACME&to=0705123456+0708321321&text=Hello+world"
    async with gw.get(raw, encoded=True) as r:
        assert r.status == 202
        assert await r.text() == KANNEL_ACCEPTED == "0: Accepted for delivery"
    req = gw.submit.last
    assert req.to == ["0705123456", "0708321321"]
    assert req.text == "Hello world"
    assert req.sender == "ACME"
    assert (req.flash, req.validity, req.report) == (False, None, True)


async def test_kannel_post_form_with_comma_numbers(gw: Harness) -> None:
    async with gw.post("/cgi-bin/sendsms", data={"to": "0705123456, 0708321321",
                                                 "text": "hej"}) as r:
        assert r.status == 202
        assert await r.text() == KANNEL_ACCEPTED
    assert gw.submit.last.to == ["0705123456", "0708321321"]


async def test_kannel_charset_iso_8859_1_query(gw: Harness) -> None:
    text = "Hälsningar från Åre"
    encoded = "".join(f"%{b:02X}" for b in text.encode("iso-8859-1"))
    async with gw.get(f"/cgi-bin/sendsms?to=0705123456&charset=ISO-8859-1&text={encoded}",
                      encoded=True) as r:
        assert r.status == 202, await r.text()
    assert gw.submit.last.text == text


@pytest.mark.parametrize(("query", "text"), [
    ("charset=ISO-8859-1&text=Hello+there", "Hello there"),  # ASCII: same in Latin-1
    ("charset=UTF-16BE&coding=2&text=%00H%00i%20%AC", "Hi€"),  # UCS-2 bytes
    ("charset=cp1252&text=%80+5", "€ 5"),
])
async def test_kannel_other_charsets(gw: Harness, query: str, text: str) -> None:
    async with gw.get(f"/cgi-bin/sendsms?to=0705123456&{query}", encoded=True) as r:
        assert r.status == 202, await r.text()
    assert gw.submit.last.text == text


async def test_kannel_charset_iso_8859_1_form_body(gw: Harness) -> None:
    text = "på svenska: åäö"
    body = ("to=0705123456&charset=iso-8859-1&text="
            + "".join(f"%{b:02X}" for b in text.encode("iso-8859-1")))
    async with gw.post("/cgi-bin/sendsms", data=body.encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 202, await r.text()
    assert gw.submit.last.text == text


async def test_kannel_utf8_default_and_bad_utf8(gw: Harness) -> None:
    async with gw.get("/cgi-bin/sendsms", params={"to": "0705123456", "text": "€ ok"}) as r:
        assert r.status == 202
    assert gw.submit.last.text == "€ ok"
    async with gw.get("/cgi-bin/sendsms?to=0705123456&text=%E5%E4", encoded=True) as r:
        assert r.status == 400
        assert await r.text() == "ERROR text: not valid UTF-8\n"


@pytest.mark.parametrize(("extra", "flash", "validity", "report"), [
    ({"mclass": "0"}, True, None, True),
    ({"mclass": "1"}, False, None, True),
    ({"validity": "10"}, False, 600.0, True),
    ({"dlr-mask": "0"}, False, None, False),
    ({"dlr-mask": "31"}, False, None, True),
    ({"dlr-mask": "4"}, False, None, False),  # only "buffered" asked: no carrier report
    ({"dlr-mask": "2", "dlr-url": "http://x/dlr?id=%d", "smsc": "smpp1", "coding": "2"},
     False, None, True),
])
async def test_kannel_options(gw: Harness, extra: dict, flash: bool, validity: float | None,
                              report: bool) -> None:
    async with gw.get("/cgi-bin/sendsms", params={"to": "0705123456", "text": "x", **extra}) as r:
        assert r.status == 202, await r.text()
    req = gw.submit.last
    assert (req.flash, req.validity, req.report) == (flash, validity, report)


@pytest.mark.parametrize(("params", "status", "line"), [
    ({"text": "x"}, 400, "ERROR to: missing"),
    ({"to": "0705123456"}, 400, "ERROR text: missing"),
    ({"to": "0705123456", "text": "x", "charset": "klingon-8"}, 400,
     "ERROR charset: unknown charset 'klingon-8'"),
    ({"to": "0705123456", "text": "x", "coding": "3"}, 400,
     "ERROR coding: must be a whole number from 0 to 2"),
    ({"to": "0705123456", "text": "x", "mclass": "x"}, 400,
     "ERROR mclass: must be a whole number from 0 to 3"),
    ({"to": "0705123456", "text": "x", "validity": "0"}, 400,
     "ERROR validity: must be a whole number from 1 to 5256000"),
    ({"to": "0705123456", "text": "x", "dlr-mask": "-1"}, 400,
     "ERROR dlr-mask: must be a whole number from 0 to 255"),
    ({"to": BAD_NUMBER, "text": "x"}, 400, f"ERROR to: {BAD_NUMBER} is not a mobile number"),
    ({"to": QUOTA_NUMBER, "text": "x"}, 429, "ERROR to: daily quota used up"),
])
async def test_kannel_errors(gw: Harness, params: dict, status: int, line: str) -> None:
    async with gw.get("/cgi-bin/sendsms", params=params,
                      headers={"Accept": "application/json"}) as r:  # Kannel answers text
        assert r.status == status
        assert await r.text() == line + "\n"


# -- /api/v1/messages ---------------------------------------------------------------


async def test_api_submit(gw: Harness) -> None:
    body = {"to": ["0705123456", "+46708321321"], "text": "hello", "from": "ACME",
            "flash": True, "validity": 3600, "priority": 2,
            "schedule_at": "2026-12-24T18:00:00+01:00", "client_ref": "order-17"}
    async with gw.post("/api/v1/messages", json=body) as r:
        assert r.status == 202
        assert await r.json() == {"messages": [
            {"id": 101, "to": "+46705123456", "status": "queued", "parts": 1},
            {"id": 102, "to": "+46708321321", "status": "queued", "parts": 1}]}
    req = gw.submit.last
    assert req.to == ["0705123456", "+46708321321"]
    assert (req.text, req.sender, req.flash, req.validity, req.priority, req.client_ref) == (
        "hello", "ACME", True, 3600.0, 2, "order-17")
    assert req.schedule_at == datetime(2026, 12, 24, 18, tzinfo=timezone(timedelta(hours=1)))
    assert req.origin is Origin.HTTP


async def test_api_submit_to_as_string(gw: Harness) -> None:
    async with gw.post("/api/v1/messages", json={"to": "0705123456", "text": "x"}) as r:
        assert r.status == 202
    assert gw.submit.last.to == ["0705123456"]
    assert (gw.submit.last.flash, gw.submit.last.validity, gw.submit.last.priority) == (
        False, None, 0)


@pytest.mark.parametrize(("body", "status", "field", "reason"), [
    (b"{not json", 400, "body", "not valid JSON"),
    (b"", 400, "body", "missing"),
    (b"[1, 2]", 400, "body", "must be a JSON object"),
    (b'{"text": "x"}', 400, "to", "missing"),
    (b'{"to": [], "text": "x"}', 400, "to", "missing"),
    (b'{"to": 46701234567, "text": "x"}', 400, "to", "must be a string or a list of strings"),
    (b'{"to": ["0705123456", 5], "text": "x"}', 400, "to",
     "must be a string or a list of strings"),
    (b'{"to": "0705123456"}', 400, "text", "missing"),
    (b'{"to": "0705123456", "text": 5}', 400, "text", "must be a string"),
    (b'{"to": "0705123456", "text": "x", "from": 1}', 400, "from", "must be a string"),
    (b'{"to": "0705123456", "text": "x", "flash": "yes"}', 400, "flash",
     "must be true or false"),
    (b'{"to": "0705123456", "text": "x", "validity": -1}', 400, "validity",
     "must be a positive number of seconds"),
    (b'{"to": "0705123456", "text": "x", "priority": "high"}', 400, "priority",
     "must be a whole number"),
    (b'{"to": "0705123456", "text": "x", "schedule_at": "2026-12-24T18:00:00"}', 400,
     "schedule_at", "needs a timezone (Z or +hh:mm)"),
    (b'{"to": "0705123456", "text": "x", "schedule_at": "tomorrow"}', 400, "schedule_at",
     "not an ISO 8601 time"),
    (b'{"to": "0705123456", "text": "x", "client_ref": ""}', 400, "client_ref",
     "must be a string of 1 to 255 characters"),
    (b'{"to": "0705123456", "text": "x", "flsh": true}', 400, "flsh", "unknown field"),
    (b'{"to": "' + BAD_NUMBER.encode() + b'", "text": "x"}', 400, "to",
     f"{BAD_NUMBER} is not a mobile number"),
    (b'{"to": "' + QUOTA_NUMBER.encode() + b'", "text": "x"}', 429, "to",
     "daily quota used up"),
])
async def test_api_submit_errors(gw: Harness, body: bytes, status: int, field: str,
                                 reason: str) -> None:
    async with gw.post("/api/v1/messages", data=body,
                       headers={"Content-Type": "application/json"}) as r:
        assert r.status == status
        assert r.content_type == "application/json"
        assert await r.json() == {"error": {"field": field, "reason": reason}}


async def test_api_get_message(gw: Harness) -> None:
    async with gw.get("/api/v1/messages/7") as r:
        assert r.status == 200
        data = await r.json()
    assert data["id"] == 7
    assert data["created_at"] == "2026-01-02T03:04:05+00:00"
    assert data["events"][0]["link"] == "smpp1"
    async with gw.get("/api/v1/messages/8") as r:
        assert r.status == 404
        assert await r.json() == {"error": {"field": "id", "reason": "no message 8"}}
    async with gw.get("/api/v1/messages/abc") as r:
        assert r.status == 400
        assert await r.json() == {"error": {"field": "id", "reason": "not a message id"}}
    async with gw.get("/api/v1/messages/99999999999999999999999") as r:
        assert r.status == 404


async def test_api_list_messages(gw: Harness) -> None:
    async with gw.get("/api/v1/messages") as r:
        assert r.status == 200
        assert await r.json() == {"messages": [{"id": 7, "to": "+46701234567",
                                                "status": "sent"}]}
    assert gw.reader.calls[-1] == {"status": None, "to": None, "since": None, "limit": 100}
    params = {"status": "delivered", "to": " 0701234567 ", "since": "2026-01-01T00:00:00Z",
              "limit": "1000"}
    async with gw.get("/api/v1/messages", params=params) as r:
        assert r.status == 200
    assert gw.reader.calls[-1] == {"status": "delivered", "to": "0701234567",
                                   "since": datetime(2026, 1, 1, tzinfo=UTC), "limit": 1000}
    # an unencoded '+' in the offset arrives as a space
    async with gw.get("/api/v1/messages?since=2026-01-01T02:00:00+02:00", encoded=True) as r:
        assert r.status == 200
    assert gw.reader.calls[-1]["since"] == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "lost"}, "status"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-01T00:00:00"}, "since"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"),
])
async def test_api_list_errors(gw: Harness, params: dict, field: str) -> None:
    async with gw.get("/api/v1/messages", params=params) as r:
        assert r.status == 400
        assert (await r.json())["error"]["field"] == field
    assert gw.reader.calls == []


async def test_links(gw: Harness) -> None:
    async with gw.get("/api/v1/links") as r:
        assert r.status == 200
        assert await r.json() == {"links": [{"name": "smpp1", "state": "up"}]}


async def test_openapi_document_matches_the_routes(gw: Harness) -> None:
    async with gw.get("/api/v1/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["version"] == "9.9.9"
    registered = {(route.method, route.resource.canonical) for route in gw.app.router.routes()}
    assert registered == openapi.operations(doc)
    assert registered == {(method, path) for method, path, _ in ROUTES}
    # every $ref resolves
    refs = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs <= set(doc["components"]["schemas"])


# -- health, metrics, unknown paths ---------------------------------------------------


async def test_healthz(gw: Harness) -> None:
    async with gw.get("/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok", "links": 1}
    gw.health["status"] = "degraded"
    async with gw.get("/healthz") as r:
        assert r.status == 503
        assert (await r.json())["status"] == "degraded"


async def test_metrics(gw: Harness) -> None:
    async with gw.get("/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'omnigate_messages_accepted_total{origin="http"} 1.0' in await r.text()


async def test_rejections_before_submit_are_counted(gw: Harness) -> None:
    async with gw.get("/send", params={"text": "x"}) as r:
        assert r.status == 400
    async with gw.get("/metrics") as r:
        assert 'omnigate_messages_rejected_total{origin="http"} 1.0' in await r.text()


async def test_unknown_path_and_method(gw: Harness) -> None:
    async with gw.get("/nowhere") as r:
        assert r.status == 404
        assert await r.text() == "ERROR path: no such endpoint\n"
    async with gw.http.delete(gw.url.join(URL("/send"))) as r:
        assert r.status == 405
        assert await r.text() == "ERROR method: DELETE is not allowed here\n"
        assert set(r.headers["Allow"].split(",")) == {"GET", "POST"}


# -- body size -------------------------------------------------------------------


async def test_oversized_body_with_content_length(serve: Serve) -> None:
    gw = await serve(HttpConfig(max_body=1024))
    async with gw.post("/send", data={"numbers": "0705123456", "text": "x" * 2000}) as r:
        assert r.status == 413
        assert await r.text() == "ERROR body: larger than 1024 bytes\n"
    async with gw.post("/api/v1/messages", data=b"{" + b" " * 2000 + b"}",
                       headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert await r.json() == {"error": {"field": "body", "reason": "larger than 1024 bytes"}}
    assert gw.submit.requests == []


async def test_oversized_chunked_body_gets_our_413(serve: Serve) -> None:
    gw = await serve(HttpConfig(max_body=1024))

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: aiohttp's own limit
        yield b'{"to": "0705123456", "text": "'
        for _ in range(4):
            yield b"x" * 512
        yield b'"}'

    async with gw.post("/api/v1/messages", data=chunks(),
                       headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert await r.json() == {"error": {"field": "body", "reason": "larger than 1024 bytes"}}
    assert gw.submit.requests == []


# -- auth ---------------------------------------------------------------------------


async def test_no_accounts_means_open_to_allowed_networks(gw: Harness) -> None:
    async with gw.get("/send", params={"numbers": "0705123456", "text": "x"}) as r:
        assert r.status == 200
    assert gw.submit.last.account is None


async def test_network_not_allowed(serve: Serve) -> None:
    gw = await serve(HttpConfig(allow=["10.0.0.0/8", "2001:db8::/32"]))
    for path in ("/send?numbers=0705123456&text=x", "/healthz", "/metrics"):
        async with gw.get(path, encoded=True) as r:
            assert r.status == 403
            assert "client address 127.0.0.1 is not allowed" in await r.text()
    async with gw.get("/send", params={"numbers": "0705123456", "text": "x"}) as r:
        assert await r.text() == "ERROR forbidden: client address 127.0.0.1 is not allowed\n"
    async with gw.get("/api/v1/links") as r:
        assert r.status == 403
        assert await r.json() == {"error": {"field": "forbidden",
                                            "reason": "client address 127.0.0.1 is not allowed"}}
    assert gw.submit.requests == []


@pytest.fixture
async def locked(serve: Serve) -> Harness:
    return await serve(accounts=[ALICE, BOB_ELSEWHERE])


async def test_accounts_require_credentials(locked: Harness) -> None:
    async with locked.get("/send", params={"numbers": "0705123456", "text": "x"}) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="omnigate"'
        assert await r.text() == "ERROR auth: credentials required\n"
    async with locked.post("/api/v1/messages", json={"to": "0705123456", "text": "x"}) as r:
        assert r.status == 401
        assert await r.json() == {"error": {"field": "auth", "reason": "credentials required"}}
    async with locked.get("/cgi-bin/sendsms", params={"to": "0705123456", "text": "x"}) as r:
        assert r.status == 401
    assert locked.submit.requests == []
    # probes need only the network
    async with locked.get("/healthz") as r:
        assert r.status == 200
    async with locked.get("/metrics") as r:
        assert r.status == 200


async def test_basic_auth(locked: Harness) -> None:
    params = {"numbers": "0705123456", "text": "x"}
    async with locked.get("/send", params=params, headers=_basic("alice", "s3cret")) as r:
        assert r.status == 200
    assert locked.submit.last.account == "alice"
    async with locked.get("/send", params=params, headers=_basic("alice", "wrong")) as r:
        assert r.status == 401
        assert await r.text() == "ERROR auth: wrong username or password\n"
    async with locked.get("/send", params=params, headers=_basic("mallory", "s3cret")) as r:
        assert r.status == 401
    async with locked.get("/send", params=params,
                          headers={"Authorization": "Basic !!notbase64"}) as r:
        assert r.status == 401
        assert await r.text() == "ERROR auth: malformed Basic credentials\n"
    async with locked.get("/send", params=params, headers={"Authorization": "Digest x"}) as r:
        assert r.status == 401
        assert await r.text() == "ERROR auth: unsupported Authorization scheme\n"
    async with locked.post("/send", data="username=alice&password=s3cr\xe9t".encode("latin-1"),
                           headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 400
        assert await r.text() == "ERROR body: malformed form data\n"
    assert len(locked.submit.requests) == 1


async def test_kannel_username_password(locked: Harness) -> None:
    params = {"username": "alice", "password": "s3cret", "to": "0705123456", "text": "x"}
    async with locked.get("/cgi-bin/sendsms", params=params) as r:
        assert r.status == 202
        assert await r.text() == KANNEL_ACCEPTED
    assert locked.submit.last.account == "alice"
    async with locked.post("/cgi-bin/sendsms", data=params) as r:  # in a form body
        assert r.status == 202
    async with locked.post("/send", data={"username": "alice", "password": "s3cret",
                                          "numbers": "0705123456", "text": "x"}) as r:
        assert r.status == 200
    async with locked.get("/cgi-bin/sendsms", params={**params, "password": "nope"}) as r:
        assert r.status == 401
        assert await r.text() == "ERROR auth: wrong username or password\n"
    assert len(locked.submit.requests) == 3


async def test_api_key(locked: Harness) -> None:
    body = {"to": "0705123456", "text": "x"}
    async with locked.post("/api/v1/messages", json=body,
                           headers={"Authorization": "Bearer key-alice-1"}) as r:
        assert r.status == 202
    assert locked.submit.last.account == "alice"
    async with locked.post("/api/v1/messages", json=body,
                           headers={"X-API-Key": "key-alice-1"}) as r:
        assert r.status == 202
    async with locked.get("/api/v1/messages/7", headers={"X-API-Key": "key-alice-1"}) as r:
        assert r.status == 200
    async with locked.post("/api/v1/messages", json=body,
                           headers={"Authorization": "Bearer key-guessed"}) as r:
        assert r.status == 401
        assert await r.json() == {"error": {"field": "auth", "reason": "unknown API key"}}
    assert len(locked.submit.requests) == 2


async def test_verified_credentials_are_cached(locked: Harness) -> None:
    auth = locked.app[AUTHENTICATOR]
    params = {"numbers": "0705123456", "text": "x"}
    for _ in range(5):
        async with locked.get("/send", params=params, headers=_basic("alice", "s3cret")) as r:
            assert r.status == 200
    assert auth.scrypt_runs == 1
    for _ in range(2):  # failures are not cached: each costs a verification
        async with locked.get("/send", params=params, headers=_basic("alice", "bad")) as r:
            assert r.status == 401
    assert auth.scrypt_runs == 3


async def test_account_network_restriction(locked: Harness) -> None:
    # bob's account may only be used from 10.0.0.0/8; the test client is 127.0.0.1
    async with locked.get("/send", params={"numbers": "0705123456", "text": "x"},
                          headers=_basic("bob", "bobpw")) as r:
        assert r.status == 403
        assert await r.text() == ("ERROR forbidden: client address 127.0.0.1 is not allowed "
                                  "for account bob\n")
    assert locked.submit.requests == []


async def test_kannel_coding_and_dlr_url_reach_the_submission(gw: Harness) -> None:
    params = {"to": "0705123456", "text": "x", "coding": "2", "dlr-mask": "9",
              "dlr-url": "http://app.example/dlr?type=%d&id=%I"}
    async with gw.get("/cgi-bin/sendsms", params=params) as r:
        assert r.status == 202, await r.text()
    req = gw.submit.last
    assert (req.ucs2, req.dlr_url, req.dlr_mask) == (
        True, "http://app.example/dlr?type=%d&id=%I", 9)
