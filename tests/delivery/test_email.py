"""Mail out: the Mailer against a real SMTP server (an aiosmtpd sink on loopback), and
failure notices and the reply loop end to end with a Gateway and the SMSC simulator."""

from __future__ import annotations

import asyncio
import email
import logging
import smtplib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from omnigate.carriers.base import LinkState
from omnigate.config import MailConfig
from omnigate.delivery.email import Mailer, inbound_as_email
from omnigate.model import Inbound, MessageInfo, Status, StatusChange
from omnigate.sim.smpp import SmscSimulator
from tests.support import make_config

DOMAIN = "sms.example.com"
TIMEOUT = 5.0


class Sink:
    """A real SMTP server that keeps what it is given, with scripted refusals."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []
        self.data_replies: list[str] = []  # answers to the next DATA commands, then 250
        self.refuse_rcpt: set[str] = set()
        self.data_calls = 0
        self._changed = asyncio.Condition()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink", loop=loop), "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if address in self.refuse_rcpt:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_calls += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        msg = email.message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        async with self._changed:
            self._changed.notify_all()
        return "250 OK"

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.mails) >= count)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


def mail_config(port: int, **overrides: Any) -> MailConfig:
    return MailConfig.model_validate({"relay": f"127.0.0.1:{port}", "from": "sms@example.com",
                                      "retry_initial": 0.05, "retry_maximum": 0.2,
                                      "timeout": 5, **overrides})


@pytest.fixture
async def mailer_factory() -> AsyncIterator[Callable[..., Any]]:
    started: list[Mailer] = []

    async def make(config: MailConfig, **kwargs: Any) -> Mailer:
        m = Mailer(config, **kwargs)
        await m.start()
        started.append(m)
        return m

    yield make
    for m in started:
        await m.stop(grace=0.5)


INBOUND = Inbound(link="smsc1", sender="46701234567", recipient="4670000", text="Hej 😀 åäö\nrad 2",
                  received_at=datetime(2026, 3, 3, 10, 2, tzinfo=UTC))


def body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # CRLF as it came over SMTP


def change(status: Status, *, id: int = 7, origin: str = "smtp",
           account: str | None = "alice@example.com") -> StatusChange:
    info = MessageInfo(id=id, recipient="+46701234567", sender=None, account=account,
                       origin=origin, text="Pump 3 down")
    return StatusChange(info, status, "smsc1", "0x0000000b ESME_RINVDSTADR", 1_770_000_000.0)


# -- the mails -------------------------------------------------------------------


def test_inbound_sms_becomes_a_mail_that_replies_to_the_number() -> None:
    msg = inbound_as_email(INBOUND, to="bob@example.com", domain=DOMAIN)
    assert msg["From"].addresses[0].addr_spec == f"46701234567@{DOMAIN}"
    assert msg["Subject"] == "SMS from +46701234567"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"].datetime == INBOUND.received_at
    assert msg.get_content_charset() == "utf-8"
    assert max(map(len, msg.as_bytes().splitlines())) <= 78 and msg.as_bytes().isascii()
    assert body(msg).rstrip("\n") == INBOUND.text
    alpha = inbound_as_email(Inbound("l", "Bank AB", "1", "x", INBOUND.received_at),
                             to="b@x.se", domain=DOMAIN)
    assert alpha["Subject"] == "SMS from Bank AB"
    assert alpha["From"].addresses[0].addr_spec == f"Bank-AB@{DOMAIN}"


# -- the mailer against a real SMTP server ----------------------------------------


async def test_inbound_mail_reaches_the_relay(sink: Sink,
                                              mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(sink.port), sms_domain=DOMAIN)
    assert await asyncio.wait_for(mailer.send_inbound(INBOUND, "bob@example.com"),
                                  TIMEOUT) is None  # the relay took it
    mail_from, rcpts, msg = sink.mails[0]
    assert (mail_from, rcpts) == ("sms@example.com", ["bob@example.com"])
    assert body(msg).rstrip("\n") == INBOUND.text
    assert mailer.sent == 1


async def test_temporary_refusals_are_retried_until_accepted(
        sink: Sink, mailer_factory: Callable[..., Any]) -> None:
    sink.data_replies = ["451 4.3.0 try again later", "452 4.3.1 insufficient storage"]
    mailer = await mailer_factory(mail_config(sink.port), sms_domain=DOMAIN)
    assert await asyncio.wait_for(mailer.send_inbound(INBOUND, "bob@example.com"),
                                  TIMEOUT) is None
    assert len(sink.mails) == 1 and sink.data_calls == 3
    assert (mailer.sent, mailer.failed, mailer.pending) == (1, 0, 0)


async def test_relay_down_then_up(unused_tcp_port: int,
                                  mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(unused_tcp_port), sms_domain=DOMAIN)
    sending = asyncio.create_task(mailer.send_inbound(INBOUND, "bob@example.com"))
    late = Sink()
    await asyncio.sleep(0.1)  # let a few attempts meet the closed port (no event to await)
    assert (mailer.sent, mailer.failed, mailer.pending) == (0, 0, 1)
    await late.start(unused_tcp_port)
    try:
        await asyncio.wait_for(mailer.settled(), TIMEOUT)
    finally:
        await late.stop()
    assert len(late.mails) == 1 and mailer.sent == 1
    assert await sending is None


async def test_permanent_refusal_is_logged_and_not_retried(
        sink: Sink, mailer_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    sink.refuse_rcpt = {"nobody@example.com"}
    mailer = await mailer_factory(mail_config(sink.port), sms_domain=DOMAIN)
    with caplog.at_level(logging.ERROR, "omnigate.mail"):
        outcomes = await asyncio.wait_for(asyncio.gather(
            mailer.send_inbound(INBOUND, "nobody@example.com"),
            mailer.send_inbound(INBOUND, "bob@example.com")), TIMEOUT)  # same connection
    assert outcomes == ["550 5.1.1 no such user here", None]
    assert [r for _, r, _ in sink.mails] == [["bob@example.com"]]
    assert (mailer.sent, mailer.failed, mailer.pending) == (1, 1, 0)
    assert "550 5.1.1 no such user here" in caplog.text


async def test_attempts_are_bounded(unused_tcp_port: int,
                                    mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(unused_tcp_port, max_attempts=2,
                                              retry_initial=0.01), sms_domain=DOMAIN)
    outcome = await asyncio.wait_for(mailer.send_inbound(INBOUND, "bob@example.com"), TIMEOUT)
    assert outcome is not None and "gave up after 2 attempts" in outcome
    assert (mailer.sent, mailer.failed, mailer.pending) == (0, 1, 0)


async def test_one_notice_per_failed_mailed_message(
        sink: Sink, mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(sink.port), own_domains=frozenset({DOMAIN}))
    mailer.on_status(change(Status.SENT))  # not final
    mailer.on_status(change(Status.FAILED, origin="http"))  # not mailed
    mailer.on_status(change(Status.FAILED, account="alarms"))  # no address
    mailer.on_status(change(Status.FAILED, account=f"4670@{DOMAIN}"))  # our own domain
    mailer.on_status(change(Status.FAILED))
    mailer.on_status(change(Status.FAILED))  # the same message again
    mailer.on_status(change(Status.EXPIRED, id=8))
    mailer.on_status(change(Status.UNDELIVERED, id=9))
    mailer.on_link_state("smsc1", "down", "connection refused")  # no error address: nothing
    await asyncio.wait_for(mailer.settled(), TIMEOUT)
    assert len(sink.mails) == 3 and mailer.sent == 3
    subjects = [m["Subject"] for _, _, m in sink.mails]
    assert subjects == ["SMS to +46701234567 failed", "SMS to +46701234567 expired",
                        "SMS to +46701234567 undelivered"]
    _, rcpts, first = sink.mails[0]
    assert rcpts == ["alice@example.com"]
    text = body(first)
    assert "+46701234567" in text and "Pump 3 down" in text and "ESME_RINVDSTADR" in text


async def test_an_accounts_notice_address_gets_its_notices_from_any_ingress(
        sink: Sink, mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(sink.port),
                                  notice_addresses={"alarms": "ops@example.com"})
    mailer.on_status(change(Status.FAILED, origin="http", account="alarms"))
    mailer.on_status(change(Status.FAILED, origin="http", account="other", id=8))  # none set
    await asyncio.wait_for(mailer.settled(), TIMEOUT)
    assert [(r, m["Subject"]) for _, r, m in sink.mails] == [
        (["ops@example.com"], "SMS to +46701234567 failed")]


async def test_link_alarms_go_to_the_error_address(
        sink: Sink, mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(sink.port, error_address="noc@example.com"))
    mailer.on_link_state("smsc1", "down", "connection refused")
    mailer.on_link_state("smsc1", "up")
    await asyncio.wait_for(mailer.settled(), TIMEOUT)
    assert [(r, m["Subject"]) for _, r, m in sink.mails] == [
        (["noc@example.com"], "omnigate: link smsc1 down"),
        (["noc@example.com"], "omnigate: link smsc1 up")]
    assert "connection refused" in body(sink.mails[0][2])


async def test_link_alarms_only_for_a_change_of_service(
        sink: Sink, mailer_factory: Callable[..., Any]) -> None:
    mailer = await mailer_factory(mail_config(sink.port, error_address="noc@example.com"))
    alarms = mailer.link_alarms()
    for state in (LinkState.CONNECTING, LinkState.DOWN,  # never up yet: no alarm
                  LinkState.CONNECTING, LinkState.UP, LinkState.DOWN, LinkState.CONNECTING,
                  LinkState.DOWN, LinkState.UP, LinkState.UP):
        alarms("smsc1", state)
    await asyncio.wait_for(mailer.settled(), TIMEOUT)
    assert [m["Subject"] for _, _, m in sink.mails] == [
        "omnigate: link smsc1 down", "omnigate: link smsc1 up"]


# -- end to end with a gateway ------------------------------------------------------


def gateway_config(tmp_path: Path, smsc_port: int, relay: int) -> Any:
    return make_config(f"sqlite+aiosqlite:///{tmp_path}/omnigate.db", smsc_port, tmp_path,
                       smtp={"listen": "127.0.0.1:0", "domains": [DOMAIN]},
                       mail={"relay": f"127.0.0.1:{relay}", "from": "sms@example.com",
                             "retry_initial": 0.05})


async def test_mailed_sms_that_fails_brings_a_notice_to_its_sender(
        sink: Sink, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    sim = SmscSimulator(system_id="omnigate", password="secret", fail_every=1)
    await sim.start()
    try:
        gw = await gateway_factory(gateway_config(tmp_path, sim.port, sink.port))

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", gw.smtp.port, timeout=TIMEOUT) as s:
                s.sendmail("alice@example.com", [f"0701234567@{DOMAIN}"],
                           b"Subject: Doomed\r\n\r\nthis will fail\r\n")

        await asyncio.to_thread(send)
        await sink.wait_for(1, timeout=10)
    finally:
        await sim.stop()
    _, rcpts, notice = sink.mails[0]
    assert rcpts == ["alice@example.com"]
    assert notice["Subject"] == "SMS to +46701234567 failed"
    text = body(notice)
    assert "Doomed - this will fail" in text
    assert "0x0000000b" in text.lower() or "invdstadr" in text.lower()


async def test_reply_round_trip_inbound_mail_then_reply_mail_to_the_number(
        sink: Sink, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    """Inbound SMS -> mail -> Reply in a mail client -> SMS to the same number.

    The MO -> mail routing is the Inbound issue's; here the gateway's mailer is
    handed the inbound SMS directly.
    """
    gw = await gateway_factory(gateway_config(tmp_path, smsc.port, sink.port))
    assert await gw.mailer.send_inbound(INBOUND, "bob@example.com") is None
    await sink.wait_for(1)
    original = sink.mails[0][2]
    reply = EmailMessage()
    reply["From"] = "bob@example.com"
    reply["To"] = original["From"]
    reply["Subject"] = "Re: " + original["Subject"]
    reply["In-Reply-To"] = original["Message-ID"]
    quoted = "\n".join("> " + line for line in body(original).splitlines())
    reply.set_content(f"Ok, on my way.\n\nOn Tue, 3 Mar 2026 {original['From']} wrote:\n{quoted}\n")

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", gw.smtp.port, timeout=TIMEOUT) as s:
            s.send_message(reply)

    await asyncio.to_thread(send)
    await smsc.wait_for(1, timeout=TIMEOUT)
    assert [(dest, text) for dest, _, text in smsc.messages()] == [
        ("46701234567", "Ok, on my way.")]
