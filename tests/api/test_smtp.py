"""SMTP ingress: real smtplib (and swaks) clients -> aiosmtpd -> Gateway -> SMPP -> simulator.

The text rules are also tested directly (`mail_text`), since they are pure.
Blocking smtplib runs in a thread; the gateway runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from omnigate.api.auth import hash_secret
from omnigate.api.smtp import (
    ELLIPSIS,
    TextRules,
    TextTooLong,
    _reply_for,
    collapse,
    config_problems,
    html_to_text,
    mail_text,
)
from omnigate.config import ConfigError, parse
from omnigate.gateway import Gateway
from omnigate.model import SubmitError
from omnigate.sim.smpp import SmscSimulator
from omnigate.store import schema
from tests.support import make_config

DOMAIN = "sms.example.com"
SENDER = "alice@example.com"
TIMEOUT = 5.0

# -- helpers --------------------------------------------------------------------


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"


async def start(gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
                store_url: str | None = None, **smtp: Any) -> Gateway:
    overrides = {k: smtp.pop(k) for k in ("accounts", "messages") if k in smtp}
    config = make_config(store_url or sqlite(tmp_path), smsc.port, tmp_path,
                         smtp={"listen": "127.0.0.1:0", "domains": [DOMAIN], **smtp}, **overrides)
    gw = await gateway_factory(config)
    assert gw.smtp is not None
    return gw


def client(gw: Gateway) -> smtplib.SMTP:
    assert gw.smtp is not None
    return smtplib.SMTP("127.0.0.1", gw.smtp.port, timeout=TIMEOUT)


def mail(subject: str, body: str, *, to: str = f"0701234567@{DOMAIN}",
         sender: str = SENDER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def wire(msg: Any) -> bytes:
    """A message as SMTP carries it: CRLF line ends (RFC 5321 §2.3.8)."""
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def transaction(gw: Gateway, rcpts: list[str], msg: Any, sender: str = SENDER,
                ) -> tuple[list[tuple[int, bytes]], tuple[int, bytes]]:
    """MAIL, each RCPT, DATA over one connection: every reply, in order (blocking)."""
    with client(gw) as s:
        s.ehlo()
        code, reply = s.mail(sender)
        assert code == 250, reply
        answers = [s.rcpt(r) for r in rcpts]
        if not any(c == 250 for c, _ in answers):
            return answers, (0, b"")
        return answers, s.data(wire(msg))


async def stored(gw: Gateway) -> list[Any]:
    assert gw.store is not None
    async with gw.store.engine.connect() as conn:
        return list((await conn.execute(
            select(schema.messages.c.recipient, schema.messages.c.text,
                   schema.messages.c.account, schema.messages.c.origin))).all())


def texts_by_number(smsc: SmscSimulator) -> dict[str, str]:
    return {dest: text for dest, _, text in smsc.messages()}


# -- end to end -----------------------------------------------------------------


async def test_mail_to_numbers_and_a_group_becomes_one_sms_per_number(
        store_url: str, smsc: SmscSimulator, gateway_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, store_url,
                     groups=[{"name": "IT-Ops", "numbers": ["0707654321", "+46708111222"]}])
    rcpts = [f"0701234567@{DOMAIN}", f"+46707654321@{DOMAIN.upper()}", f"it-ops@{DOMAIN}"]
    answers, (code, reply) = await asyncio.to_thread(
        transaction, gw, rcpts, mail("Pump 3", "Pressure low.\n\nCheck   valve 7."))
    assert [c for c, _ in answers] == [250, 250, 250]
    assert code == 250 and re.match(rb"2\.0\.0 OK: queued as \d+ and 2 more", reply), reply
    # 250 after DATA means committed: the rows are there before anything else happens
    rows = await stored(gw)
    assert sorted(r.recipient for r in rows) == ["+46701234567", "+46707654321", "+46708111222"]
    assert {(r.account, r.origin) for r in rows} == {(SENDER, "smtp")}
    await smsc.wait_for(3, timeout=TIMEOUT)
    assert texts_by_number(smsc) == dict.fromkeys(
        ["46701234567", "46707654321", "46708111222"], "Pump 3 - Pressure low. Check valve 7.")


async def test_mime_mails_are_decoded_to_their_text(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, text="body",
                     disclaimers=[r"This e-mail is confidential.*"])
    mails: dict[str, Any] = {}

    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText("plain wins", "plain", "utf-8"))
    alt.attach(MIMEText("<p>html loses</p>", "html", "utf-8"))
    mails["0701000001"] = (alt, "plain wins")

    html = MIMEText("<html><head><style>p{color:red}</style></head><body><p>Server&nbsp;"
                    "<b>db1</b> down</p><script>x()</script><br>since 10:02 &amp; "
                    "counting<blockquote>old mail</blockquote></body></html>", "html", "utf-8")
    mails["0701000002"] = (html, "Server db1 down since 10:02 & counting")

    # ISO-8859-1 in quoted-printable, with Windows' dash and euro as mislabelled clients send
    latin = MIMEText("x", "plain", "iso-8859-1")
    assert latin["Content-Transfer-Encoding"] == "quoted-printable"
    latin.set_payload("H=E4lsningar fr=E5n Malm=F6 =96 =805")
    mails["0701000003"] = (latin, "Hälsningar från Malmö – €5")

    b64 = MIMEText("Grüße 😀 und Tschüss", "plain", "utf-8")  # utf-8 MIMEText is base64
    assert b64["Content-Transfer-Encoding"] == "base64"
    mails["0701000004"] = (b64, "Grüße 😀 und Tschüss")

    mixed = MIMEMultipart("mixed")
    mixed.attach(MIMEText("See the report.\n-- \nAlice, IT\nThis e-mail is confidential. "
                          "Really.", "plain", "utf-8"))
    mixed.attach(MIMEApplication(b"%PDF-1.4 binary", Name="report.pdf"))
    mails["0701000005"] = (mixed, "See the report.")

    reply = MIMEText("Yes, restart it.\n\nOn Tue, 3 Mar 2026, Bob <bob@x> wrote:\n> Restart?\n"
                     "> Or not?\n", "plain", "us-ascii")
    mails["0701000006"] = (reply, "Yes, restart it.")

    def send_all() -> None:
        with client(gw) as s:
            for number, (msg, _) in mails.items():
                msg["Subject"] = "ignored in body mode"
                s.send_message(msg, SENDER, [f"{number}@{DOMAIN}"])

    await asyncio.to_thread(send_all)
    await smsc.wait_for(len(mails), timeout=TIMEOUT)
    got = texts_by_number(smsc)
    for number, (_, text) in mails.items():
        assert got["46" + number[1:]] == text, number
    base = f"http://127.0.0.1:{gw.http_port}/api/v1/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(base, params={"to": "0701000005"}) as resp:
            [row] = (await resp.json())["messages"]
        async with http.get(f"{base}/{row['id']}") as resp:
            events = (await resp.json())["events"]
    assert "attachments left out: report.pdf" in [e["reason"] for e in events]


async def test_every_refusal_has_its_code_and_nothing_is_stored(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, senders=["*@example.com"],
                     max_recipients=3, max_size=4096, too_long="reject",
                     groups=[{"name": "pair", "numbers": ["0701111111", "0702222222"]}],
                     messages={"max_parts": 1})

    def refusals() -> dict[str, tuple[int, bytes]]:
        out = {}
        with client(gw) as s:
            s.ehlo()
            out["sender"] = s.mail("eve@evil.test")
            s.rset()
            s.mail(SENDER)
            out["foreign"] = s.rcpt("0701234567@gmail.com")
            out["bad_number"] = s.rcpt(f"0701@{DOMAIN}")
            out["landline"] = s.rcpt(f"+4681234567@{DOMAIN}")
            out["unknown"] = s.rcpt(f"postmaster@{DOMAIN}")
            assert s.rcpt(f"pair@{DOMAIN}")[0] == 250
            assert s.rcpt(f"0703333333@{DOMAIN}")[0] == 250
            out["too_many"] = s.rcpt(f"0704444444@{DOMAIN}")
            out["size"] = s.data(wire(mail("big", "x" * 5000)))
            s.mail(SENDER)  # smtplib would add SIZE=; test it too
            s.rset()
            out["size_at_mail"] = s.mail(SENDER, ["SIZE=100000"])
            s.rset()
            for key, msg in (("empty", mail("", "   \n-- \nsig")),
                             ("too_long", mail("", "word " * 100)),
                             ("auto", mail("Out of office", "away"))):
                if key == "auto":
                    msg["Auto-Submitted"] = "auto-replied"
                s.mail(SENDER)
                s.rcpt(f"0701234567@{DOMAIN}")
                out[key] = s.data(wire(msg))
        return out

    got = await asyncio.to_thread(refusals)
    expected = {"sender": 550, "foreign": 550, "bad_number": 553, "landline": 553,
                "unknown": 550, "too_many": 452, "size": 552, "size_at_mail": 552,
                "empty": 554, "too_long": 552, "auto": 550}
    assert {k: c for k, (c, _) in got.items()} == expected, got
    assert got["sender"][1].startswith(b"5.7.1")
    assert got["foreign"][1].startswith(b"5.7.1") and b"relay" in got["foreign"][1]
    assert b"'0701'" in got["bad_number"][1] and got["bad_number"][1].startswith(b"5.1.3")
    assert b"not a mobile number" in got["landline"][1]
    assert got["too_many"][1].startswith(b"4.5.3")
    assert got["too_long"][1].startswith(b"5.3.4")
    assert await stored(gw) == []
    assert smsc.submit_count == 0


async def test_client_outside_the_allowlist_gets_554_at_connect(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, allow=["192.0.2.0/24"])

    def connect() -> tuple[int, bytes, tuple[int, bytes]]:
        with pytest.raises(smtplib.SMTPConnectError) as exc:
            client(gw)
        # RFC 5321 §3.1: after 554 the server answers 503 until QUIT
        import socket
        assert gw.smtp is not None
        with socket.create_connection(("127.0.0.1", gw.smtp.port), timeout=TIMEOUT) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"EHLO me\r\n")
            ehlo = f.readline()
            sock.sendall(b"QUIT\r\n")
            quit_ = f.readline()
        return exc.value.smtp_code, exc.value.smtp_error, (int(ehlo[:3]), quit_)

    code, text, (ehlo, quit_) = await asyncio.to_thread(connect)
    assert code == 554 and b"127.0.0.1" in text
    assert ehlo == 503 and quit_.startswith(b"221")


async def test_auth_plain_and_login_against_accounts(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    accounts = [{"name": "alarms", "password_hash": hash_secret("s3cret")}]
    gw = await start(gateway_factory, smsc, tmp_path, auth_required=True,
                     auth_require_tls=False, accounts=accounts)

    def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with client(gw) as s:
            s.ehlo()
            out["no_auth"] = s.mail(SENDER)
            s.user, s.password = "alarms", "wrong"
            try:
                s.auth("PLAIN", s.auth_plain)
            except smtplib.SMTPAuthenticationError as e:
                out["bad"] = e.smtp_code
            s.user, s.password = "alarms", "s3cret"
            out["plain"] = s.auth("PLAIN", s.auth_plain)
            s.send_message(mail("via plain", "p"))
        with client(gw) as s:
            s.ehlo()
            s.user, s.password = "alarms", "s3cret"
            out["login"] = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            s.send_message(mail("via login", "l", to=f"0707654321@{DOMAIN}"))
        return out

    out = await asyncio.to_thread(run)
    assert out["no_auth"][0] == 530
    assert out["bad"] == 535
    assert out["plain"][0] == 235 and out["login"][0] == 235
    await smsc.wait_for(2, timeout=TIMEOUT)
    assert texts_by_number(smsc) == {"46701234567": "via plain - p", "46707654321": "via login - l"}


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    assert shutil.which("openssl"), "openssl (Debian package; .ci/run installs it) makes the cert"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


async def test_starttls_then_auth_plain(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    gw = await start(gateway_factory, smsc, tmp_path, tls_cert=str(cert), tls_key=str(key),
                     require_starttls=True, auth_required=True,
                     accounts=[{"name": "ops", "password_hash": hash_secret("pw")}])

    def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with client(gw) as s:
            s.ehlo()
            out["features_before"] = dict(s.esmtp_features)
            out["mail_before"] = s.mail(SENDER)
            s.starttls(context=context)
            s.ehlo()
            out["features_after"] = dict(s.esmtp_features)
            out["cipher"] = s.sock.cipher()  # type: ignore[union-attr]
            out["auth"] = s.login("ops", "pw")
            s.send_message(mail("over TLS", "ok"))
        return out

    out = await asyncio.to_thread(run)
    assert "starttls" in out["features_before"] and "auth" not in out["features_before"]
    assert out["mail_before"][0] == 530
    assert "PLAIN" in out["features_after"]["auth"] and out["cipher"]
    assert out["auth"][0] == 235
    await smsc.wait_for(1, timeout=TIMEOUT)
    assert texts_by_number(smsc) == {"46701234567": "over TLS - ok"}


async def test_too_long_text_is_truncated_to_max_parts(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, text="subject",
                     messages={"max_parts": 2})
    subject = " ".join(f"w{i}" for i in range(200))
    _, (code, _) = await asyncio.to_thread(
        transaction, gw, [f"0701234567@{DOMAIN}"], mail(subject, "body unused"))
    assert code == 250
    await smsc.wait_for(2, timeout=TIMEOUT)
    (text,) = texts_by_number(smsc).values()
    assert text.endswith(ELLIPSIS) and subject.startswith(text[:-len(ELLIPSIS)])
    assert 306 - 10 < len(text) <= 306  # two GSM parts of 153


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks is not installed")
async def test_swaks_sends_an_sms(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path)
    assert gw.smtp is not None
    proc = await asyncio.create_subprocess_exec(
        "swaks", "--server", f"127.0.0.1:{gw.smtp.port}", "--from", SENDER,
        "--to", f"0701234567@{DOMAIN}", "--header", "Subject: swaks says",
        "--body", "hello from swaks", "--timeout", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()
    assert re.search(rb"<-  250 2\.0\.0 OK: queued as \d+\n", out), out.decode()
    await smsc.wait_for(1, timeout=TIMEOUT)
    assert texts_by_number(smsc) == {"46701234567": "swaks says - hello from swaks"}


async def test_stopping_gateway_refuses_with_a_temporary_code(
        smsc: SmscSimulator, gateway_factory: Callable[..., Any], tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path)
    s = await asyncio.to_thread(client, gw)
    try:
        await asyncio.to_thread(s.ehlo)
        await gw.stop(grace=1.0)
        # RFC 5321 §3.8: 421 on shutdown, then the channel is closed
        code, _ = await asyncio.to_thread(s.mail, SENDER)
        assert code == 421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            await asyncio.to_thread(s.noop)
    finally:
        s.close()


async def test_bad_group_number_is_a_config_error(smsc: SmscSimulator, tmp_path: Path) -> None:
    config = make_config(sqlite(tmp_path), smsc.port, tmp_path,
                         smtp={"domains": [DOMAIN],
                               "groups": [{"name": "g", "numbers": ["0701234567", "12"]}]})
    with pytest.raises(ConfigError) as exc:
        Gateway(config)
    assert exc.value.problems[0].startswith("smtp.groups[0].numbers[1]: '12'")
    assert config_problems(config) == exc.value.problems  # for check-config
    tls = config.model_copy(update={"smtp": config.smtp.model_copy(update={  # type: ignore[union-attr]
        "groups": [], "tls_cert": str(tmp_path / "none.pem"), "tls_key": str(tmp_path / "none.key")})})
    assert config_problems(tls)[0].startswith("smtp.tls_cert: cannot load")


# -- the text rules, directly ---------------------------------------------------


RULES = TextRules()


def test_subject_body_both_and_separator() -> None:
    msg = mail("  Alarm\t pump ", "Line one\nline   two\n")
    assert mail_text(msg, TextRules(source="subject")).text == "Alarm pump"
    assert mail_text(msg, TextRules(source="body")).text == "Line one line two"
    assert mail_text(msg, TextRules(separator=": ")).text == "Alarm pump: Line one line two"
    assert mail_text(mail("", "only body"), RULES).text == "only body"
    assert mail_text(mail("Re: SMS from +46701234567", "yes"), RULES).text == "yes"


def test_rfc2047_subject_and_raw_8bit_headers() -> None:
    raw = (b"Subject: =?iso-8859-1?q?V=E4rmepump?= =?utf-8?b?w6RyIGtsYXI=?=\r\n"
           b"From: a@b.c\r\n\r\nok\r\n")
    assert mail_text(raw, RULES).text == "Värmepumpär klar - ok"
    raw8 = "Subject: Gr\u00fc\u00dfe\r\nFrom: a@b.c\r\n\r\nok\r\n".encode()
    assert mail_text(raw8, RULES).text == "Grüße - ok"


def test_undeclared_8bit_body_is_read_as_utf8_then_cp1252() -> None:
    head = b"Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    assert mail_text(head + "Smörgås".encode(), TextRules(source="body")).text == "Smörgås"
    assert mail_text(head + "Smörgås".encode("cp1252"), TextRules(source="body")).text == "Smörgås"
    bogus = head.replace(b"text/plain", b"text/plain; charset=x-unknown") + b"plain"
    assert mail_text(bogus, TextRules(source="body")).text == "plain"


def test_html_to_text_and_collapse() -> None:
    text = html_to_text("<div>a<br/>b</div><!-- c --><title>t</title><ul><li>x</li></ul>")
    assert collapse(text) == "a b x"
    assert collapse("a\u200b b\u00a0\u00a0c\r\n\r\nd") == "a b c d"


def test_signature_quotes_and_disclaimers() -> None:
    rules = TextRules(source="body", disclaimers=(re.compile(r"^CONFIDENTIAL:.*?$",
                                                              re.I | re.S | re.M),))
    body = ("CONFIDENTIAL: do not forward\nDisk full\n\n-----Original Message-----\n"
            "From: x\nold text\n")
    assert mail_text(mail("", body), rules).text == "Disk full"
    assert mail_text(mail("", "ok\n--\nBob"), rules).text == "ok"
    assert mail_text(mail("", "> quoted\nnew"), rules).text == "new"


def test_fit_truncates_or_rejects() -> None:
    long = "x" * 400
    text = mail_text(mail(long, ""), TextRules(max_parts=2)).text
    assert text == "x" * (306 - 3) + ELLIPSIS
    ucs2 = mail_text(mail("ж" * 200, ""), TextRules(max_parts=1)).text
    assert ucs2 == "ж" * 67 + ELLIPSIS  # 70 UTF-16 units in one part
    with pytest.raises(TextTooLong):
        mail_text(mail(long, ""), TextRules(max_parts=2, too_long="reject"))
    short = mail_text(mail("fits", ""), TextRules(max_parts=1))
    assert (short.text, short.truncated) == ("fits", False)


def test_attachments_are_listed_not_sent() -> None:
    msg = mail("s", "body")
    msg.add_attachment(b"\x00\x01", maintype="image", subtype="png", filename="cam.png")
    built = mail_text(msg, RULES)
    assert built.text == "s - body" and built.attachments == ("cam.png",)


def test_submit_refusals_in_smtp_terms() -> None:
    assert _reply_for(SubmitError("store", "down; nothing was stored", "unavailable")) \
        .startswith("451 4.3.0 ")  # temporary: the client keeps the mail and retries
    assert _reply_for(SubmitError("text", "text needs 3 parts, at most 2 allowed")) \
        .startswith("552 5.3.4 ")
    assert _reply_for(SubmitError("to", "no route for +1555")).startswith("550 5.1.3 ")
    assert _reply_for(SubmitError("from", "bad\nsender")) == "554 5.6.0 from: bad sender"


def test_config_mistakes_name_their_path() -> None:
    cases = [({"smtp": {"domains": ["x"], "tls_cert": "c.pem"}}, "smtp: Value error, tls_cert and tls_key"),
             ({"smtp": {"domains": []}}, "smtp.domains: "),
             ({"smtp": {"domains": ["x"], "disclaimers": ["("]}}, "smtp.disclaimers: "),
             ({"smtp": {"domains": ["x"], "groups": [{"name": "a", "numbers": ["1"]},
                                                     {"name": "A", "numbers": ["1"]}]}},
              "smtp.groups: Value error, group name 'a' is used twice"),
             ({"mail": {"relay": "x:25", "from": "nobody"}}, "mail.from: "),
             ({"mail": {"relay": "x", "from": "a@b"}}, "mail.relay: ")]
    for data, problem in cases:
        with pytest.raises(ConfigError) as exc:
            parse(data)
        assert exc.value.problems[0].startswith(problem), exc.value.problems
    assert parse({}).smtp is None and parse({}).mail is None  # absent = off
