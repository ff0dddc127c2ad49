"""Inbound end to end: MO injected at the SMSC simulator -> omnigate -> the right target.

Targets are real: an aiosmtpd sink for mail, an aiohttp application for HTTP,
files on disk, and SMS back through the simulator for replies. SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from omnigate.carriers.base import LinkState
from omnigate.sim.smpp import SmscSimulator
from tests.delivery.test_email import Sink
from tests.support import make_config, poll

COMPANY = "46700000000"


class WebApp:
    """An application receiving inbound SMS over HTTP; answers as scripted."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.answers: list[web.Response] = []  # then 200 with an empty body
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return self.answers.pop(0) if self.answers else web.Response(text="")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/sms", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"


@pytest.fixture
async def webapp() -> AsyncIterator[WebApp]:
    app = WebApp()
    await app.start()
    yield app
    if app._runner:
        await app._runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def mail(port: int, to: str, subject: str, body: str) -> None:
    """A mail client (blocking: run it in a thread, the gateway shares this loop)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("anna@example.com", [to],
                        f"Subject: {subject}\r\n\r\n{body}\r\n".encode())


async def started(gateway_factory: Callable[..., Any], config: Any) -> Any:
    gw = await gateway_factory(config)
    await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
    return gw


async def inbound(http: aiohttp.ClientSession, gw: Any, count: int,
                  timeout: float = 10.0) -> list[dict[str, Any]]:
    """The API's inbound list once `count` messages are routed (not `received`)."""
    base = f"http://127.0.0.1:{gw.http_port}"
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with http.get(f"{base}/api/v1/inbound") as resp:
            rows = (await resp.json())["inbound"]
        routed = [r for r in rows if r["status"] != "received"]
        if len(routed) >= count:
            return routed
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"inbound not routed in time: {rows}")
        await asyncio.sleep(0.05)


async def test_rules_send_each_message_to_its_target(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, webapp: WebApp, http: aiohttp.ClientSession) -> None:
    files = tmp_path / "incoming"
    gw = await started(gateway_factory, make_config(
        store_url, smsc.port, tmp_path, inbound={
            "numbers": {"46700000001": [f"file:{files}"]},
            "aliases": {"crm": [webapp.url]},
            "senders": {"46709999999": ["reply:Tack, vi återkommer."]},
            "default": [f"file:{tmp_path / 'default'}"]}))
    await smsc.inject_mo("46701111111", "46700000001", "to the extension")
    await smsc.inject_mo("46701111111", COMPANY, "CRM order 17 please")
    await smsc.inject_mo("46709999999", COMPANY, "any news?")
    await smsc.inject_mo("46701111111", COMPANY, "nobody in particular")
    rows = {r["text"]: r for r in await inbound(http, gw, 4)}

    ext = rows["to the extension"]
    assert (ext["rule"], ext["status"]) == ("number", "delivered")
    assert ext["reference"].startswith("IN-20") and ext["from"] == "46701111111"
    content = (files / ext["reference"]).read_text()
    assert content.startswith("From: 46701111111\nTo: 46700000001\n")
    assert content.endswith("\n\nto the extension\n")

    [post] = webapp.posts
    assert (post["text"], post["from"], post["to"]) == ("order 17 please", "46701111111", COMPANY)
    assert rows["CRM order 17 please"]["rule"] == "alias"

    await smsc.wait_for(1)  # the autoresponse, from the number the phone wrote to
    [reply] = smsc.submits
    assert (reply.destination, reply.source, reply.text) == (
        "46709999999", COMPANY, "Tack, vi återkommer.")
    assert rows["any news?"]["rule"] == "sender"

    default = rows["nobody in particular"]
    assert default["rule"] == "default"
    assert (tmp_path / "default" / default["reference"]).exists()
    async with http.get(f"http://127.0.0.1:{gw.http_port}/api/v1/inbound/"
                        f"{default['reference']}") as resp:
        assert (await resp.json())["targets"] == [[f"file:{tmp_path / 'default'}", "ok"]]
    async with http.get(f"http://127.0.0.1:{gw.http_port}/api/v1/inbound/IN-1999-1") as resp:
        assert resp.status == 404


async def test_parts_out_of_order_and_a_missing_part(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, make_config(
        store_url, smsc.port, tmp_path,
        inbound={"default": [f"file:{tmp_path}/in"], "wait": 1.0}))
    long = "".join(f"({i:03d})" for i in range(60))  # 300 characters: two parts
    await smsc.inject_mo("46701111111", COMPANY, long, only=[2, 1])
    await smsc.inject_mo("46702222222", COMPANY, long + long[:100], only=[3, 1])
    rows = {r["from"]: r for r in await inbound(http, gw, 2)}
    whole = rows["46701111111"]
    assert (whole["text"], whole["parts"], whole["total"], whole["complete"]) == (
        long, 2, 2, True)
    partial = rows["46702222222"]
    assert (partial["parts"], partial["total"], partial["complete"]) == (2, 3, False)
    assert partial["text"].startswith(long[:100]) and "(059)" not in partial["text"]
    content = (tmp_path / "in" / partial["reference"]).read_text()
    assert content.endswith(f"\n\n{partial['text']}\n")


async def test_http_target_answer_goes_back_as_sms_and_failures_fall_back(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, webapp: WebApp, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, make_config(
        store_url, smsc.port, tmp_path, inbound={
            "numbers": {COMPANY: [webapp.url]}, "default": [f"file:{tmp_path}/fallback"],
            "http_attempts": 2, "http_retry": 0.05}))
    webapp.answers = [web.Response(text="Your balance is 17 kr", content_type="text/plain"),
                      web.Response(status=503), web.Response(status=503)]
    await smsc.inject_mo("46701111111", COMPANY, "BALANCE")
    await smsc.wait_for(1)
    assert [(s.destination, s.text) for s in smsc.submits] == [
        ("46701111111", "Your balance is 17 kr")]
    await inbound(http, gw, 1)
    await smsc.inject_mo("46702222222", COMPANY, "BALANCE")
    rows = {r["from"]: r for r in await inbound(http, gw, 2)}
    failed = rows["46702222222"]
    assert failed["status"] == "partly"  # the application failed, the fallback has it
    assert failed["targets"][0][0] == webapp.url
    assert "HTTP 503" in failed["targets"][0][1] and "after 2 tries" in failed["targets"][0][1]
    assert failed["targets"][1][1] == "ok"
    assert (tmp_path / "fallback" / failed["reference"]).exists()
    assert len(webapp.posts) == 3


async def test_reply_to_a_mailed_sms_comes_back_to_the_mailbox(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, sink: Sink, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, make_config(
        store_url, smsc.port, tmp_path,
        smtp={"listen": "127.0.0.1:0", "domains": ["sms.example.com"]},
        mail={"relay": f"127.0.0.1:{sink.port}", "from": "omnigate@example.com",
              "starttls": False},
        inbound={"default": ["mailto:switchboard@example.com"]}))
    port = gw.smtp.port
    await asyncio.to_thread(mail, port, "0701234567@sms.example.com", "Lunch?", "At noon?")
    await smsc.wait_for(1)
    await smsc.inject_mo("46701234567", COMPANY, "Yes, see you")
    await sink.wait_for(1)
    _, rcpt, received = sink.mails[0]
    assert rcpt == ["anna@example.com"]
    assert received["From"].addresses[0].addr_spec == "46701234567@sms.example.com"
    [row] = await inbound(http, gw, 1)
    assert (row["rule"], row["status"]) == ("last_sender", "delivered")
    assert f"[{row['reference']}]" in received["Subject"]
    assert received.get_content().strip() == "Yes, see you"
    # Replying to that mail sends an SMS back to the phone.
    await asyncio.to_thread(mail, port, received["From"].addresses[0].addr_spec, "Re: SMS", "Great")
    await smsc.wait_for(2)
    assert smsc.submits[1].destination == "46701234567"


async def test_unassembled_parts_survive_a_restart(
        store_url: str, smsc: SmscSimulator, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    from omnigate.gateway import Gateway

    config = make_config(store_url, smsc.port, tmp_path,
                         inbound={"default": [f"file:{tmp_path}/in"], "wait": 30})
    long = "".join(f"<{i:03d}>" for i in range(60))
    gw = Gateway(config)
    await gw.start()
    try:
        await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
        await smsc.inject_mo("46701111111", COMPANY, long, only=[1], ref=77)
        await gw.store.writer.commit({})  # the part row is stored
    finally:
        await gw.stop(grace=1.0)
    gw = Gateway(config)
    await gw.start()
    try:
        await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
        await smsc.inject_mo("46701111111", COMPANY, long, only=[2], ref=77)
        [row] = await inbound(http, gw, 1)
        assert (row["text"], row["complete"]) == (long, True)
    finally:
        await gw.stop(grace=1.0)


async def test_sms_from_unknown_numbers_are_kept_unrouted(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, make_config(store_url, smsc.port, tmp_path))
    await smsc.inject_mo("46701111111", COMPANY, "hello?")
    [row] = await inbound(http, gw, 1)
    assert (row["status"], row["rule"], row["text"]) == ("unrouted", None, "hello?")
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/api/v1/inbound", params={"status": "bogus"}) as resp:
        assert resp.status == 400
    async with http.get(f"{base}/api/v1/inbound", params={"from": "46701111111"}) as resp:
        assert len((await resp.json())["inbound"]) == 1


async def test_table_target_writes_the_sql_sources_inbox(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    import sqlite3

    erp = tmp_path / "erp.db"
    gw = await started(gateway_factory, make_config(
        f"sqlite+aiosqlite:///{tmp_path}/o.db", smsc.port, tmp_path,
        sql=[{"name": "erp", "url": f"sqlite+aiosqlite:///{erp}"}],
        inbound={"default": ["table:erp", "table:nope"]}))
    await smsc.inject_mo("46701111111", COMPANY, "Order 4711 received")
    [row] = await inbound(http, gw, 1)
    assert row["status"] == "partly"
    assert row["targets"] == [["table:erp", "ok"], ["table:nope", "no [[sql]] source named 'nope'"]]
    with sqlite3.connect(erp) as db:
        assert db.execute("SELECT sender, recipient, text, ref FROM sms_inbox").fetchall() == [
            ("46701111111", COMPANY, "Order 4711 received", row["reference"])]


async def test_a_mailbox_that_refuses_falls_back_with_the_relays_reason(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path, sink: Sink,
        http: aiohttp.ClientSession) -> None:
    sink.refuse_rcpt = {"gone@example.com"}
    gw = await started(gateway_factory, make_config(
        f"sqlite+aiosqlite:///{tmp_path}/o.db", smsc.port, tmp_path,
        smtp={"listen": "127.0.0.1:0", "domains": ["sms.example.com"]},
        mail={"relay": f"127.0.0.1:{sink.port}", "from": "omnigate@example.com",
              "starttls": False},
        inbound={"numbers": {COMPANY: ["mailto:gone@example.com"]},
                 "default": ["mailto:desk@example.com"]}))
    await smsc.inject_mo("46701111111", COMPANY, "anyone there?")
    [row] = await inbound(http, gw, 1)
    assert row["status"] == "partly"
    assert row["targets"] == [["mailto:gone@example.com", "550 5.1.1 no such user here"],
                              ["mailto:desk@example.com", "ok"]]
    assert [r for _, r, _ in sink.mails] == [["desk@example.com"]]


async def test_replies_in_a_dialog_reach_the_sender_of_the_message_they_answer(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path, sink: Sink, http: aiohttp.ClientSession) -> None:
    gw = await started(gateway_factory, make_config(
        store_url, smsc.port, tmp_path,
        smtp={"listen": "127.0.0.1:0", "domains": ["sms.example.com"]},
        mail={"relay": f"127.0.0.1:{sink.port}", "from": "omnigate@example.com",
              "starttls": False},
        inbound={"dialog_numbers": ["46700000101", "46700000102"]}))
    port = gw.smtp.port

    def mail_from(sender: str, subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail(sender, ["0701234567@sms.example.com"],
                            f"Subject: {subject}\r\n\r\n?\r\n".encode())

    await asyncio.to_thread(mail_from, "anna@example.com", "Lunch")
    await smsc.wait_for(1)
    await asyncio.to_thread(mail_from, "bob@example.com", "Meeting")
    await smsc.wait_for(2)
    first, second = list(smsc.submits)[:2]
    assert {first.source, second.source} == {"46700000101", "46700000102"}
    # The phone answers Anna's message, although Bob wrote last.
    await smsc.inject_mo("46701234567", first.source, "Lunch: yes")
    await sink.wait_for(1)
    _, rcpt, answer = sink.mails[0]
    assert rcpt == ["anna@example.com"] and answer.get_content().strip() == "Lunch: yes"
    [row] = await inbound(http, gw, 1)
    base = f"http://127.0.0.1:{gw.http_port}"
    async with http.get(f"{base}/api/v1/messages", params={"to": "0701234567"}) as resp:
        sent = {m["text"]: m["id"] for m in (await resp.json())["messages"]}
    assert (row["rule"], row["reply_to"]) == ("dialog", sent["Lunch - ?"])
