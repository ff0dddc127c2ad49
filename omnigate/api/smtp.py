"""SMTP ingress (aiosmtpd): a mail to NUMBER@sms.example.com becomes an SMS to NUMBER.

Protocol apart from policy (STYLE §6): aiosmtpd's `SMTP` speaks the protocol
and answers syntax and sequence errors itself; `SmtpHandler` holds the policy
in aiosmtpd's hooks (`handle_MAIL`, `handle_RCPT`, `handle_DATA`, `auth_*`),
each returning the reply line. The text rules (`mail_text`) are pure
functions of the mail's bytes. The only way in is the `submit` function the
ingress is given; "250" after DATA is said only once it has returned, that is
after the messages are committed (a crash after 250 loses nothing).

Every refusal is given at the earliest SMTP stage that knows it, with the
reply code of RFC 5321 §4.2 and the enhanced status code of RFC 3463:

=====  ==========  ====================================================
stage  reply       why
=====  ==========  ====================================================
greet  554 5.7.1   client address outside `allow` (RFC 5321 §3.1: 554 in
                   place of 220; we then answer 503 until QUIT)
MAIL   530 5.7.0   `auth_required` and no AUTH yet (RFC 4954 §6)
MAIL   550 5.7.1   envelope sender not in `senders`
MAIL   552         SIZE= over `max_size` (RFC 1870 §6; aiosmtpd)
RCPT   550 5.7.1   a domain not in `domains`: no open relay
RCPT   550 5.1.1   a name in our domain that is neither a number nor a group
RCPT   553 5.1.3   an invalid number, named in the reply (RFC 5321 §4.2.2)
RCPT   452 4.5.3   numbers beyond `max_recipients` (RFC 5321 §4.5.3.1.10:
                   the client sends those later in another mail)
DATA   552         more than `max_size` octets (aiosmtpd, RFC 1870 §6)
DATA   550 5.7.1   an auto-submitted mail (RFC 3834 §2): no SMS loops
DATA   554 5.6.0   no text left in subject or body
DATA   552 5.3.4   text over [messages].max_parts with too_long = "reject"
DATA   451 4.3.0   the store cannot take it now: the client retries
AUTH   535 5.7.8   wrong credentials (RFC 4954 §6)
=====  ==========  ====================================================

Line and command limits are aiosmtpd's (RFC 5321 §4.5.3.1), its AUTH lines
never reach a log, and its per-command info logging is turned down to
warnings: a mail must not cost a log line (DESIGN "the hot path").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import fnmatch
import logging
import re
import socket
import ssl
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from html.parser import HTMLParser
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from omnigate import __version__
from omnigate.api.auth import Authenticator, Credentials
from omnigate.config import (
    AccountConfig,
    Config,
    ConfigError,
    MessagesConfig,
    NumbersConfig,
    SmtpConfig,
    split_hostport,
)
from omnigate.model import Origin, Submit, SubmitError, SubmitRequest
from omnigate.sms.numbers import NumberError, normalise_msisdn, parse_sender
from omnigate.sms.segment import GSM7_SINGLE, TooLong, segment

log = logging.getLogger("omnigate.smtp")

# -- the text of the SMS: pure functions of the mail --------------------------

ELLIPSIS = "..."  # three GSM 03.38 characters; U+2026 would force UCS-2 (half the room)
# RFC 3676 §4.3: the signature separator is "-- " alone on a line; many clients
# strip the trailing space, so a bare "--" counts too.
_SIGNATURE = frozenset({"-- ", "--"})
# Where a client starts quoting the mail being answered (Outlook, Lotus, Apple).
_QUOTE_START = re.compile(r"^\s*(-{3,}\s*(original message|ursprüngliches nachricht|"
                          r"ursprungligt meddelande|forwarded message)\s*-{3,}|_{20,})\s*$",
                          re.IGNORECASE)
# "On Tue, 3 Mar 2026, Alice <a@x> wrote:" and its translations, before quoted lines.
_ATTRIBUTION = re.compile(r"\b(wrote|schrieb|skrev|kirjoitti|a écrit|escribió|scrisse|schreef)"
                          r"\s*:\s*$", re.IGNORECASE)
# A reply to our own "SMS from +46..." mail: its subject carries no text.
_OUR_SUBJECT = re.compile(r"^\s*((re|sv|aw|vs|antw|ref|fw|fwd|tr|vl)\s*:\s*)*sms from\b",
                          re.IGNORECASE)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# WHATWG Encoding Standard §4.2: mail and web clients label windows-1252 as
# ISO-8859-1 or US-ASCII; decoding those as cp1252 keeps € and curly quotes.
_CP1252_LABELS = frozenset({"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso8859-1"})


@dataclass(frozen=True, slots=True)
class TextRules:
    """How a mail becomes a text; from [smtp] and [messages]."""

    source: str = "both"  # subject | body | both
    separator: str = " - "
    disclaimers: tuple[re.Pattern[str], ...] = ()
    too_long: str = "truncate"  # truncate | reject
    max_parts: int = 10
    transliterate: bool = False

    @classmethod
    def from_config(cls, smtp: SmtpConfig, messages: MessagesConfig) -> TextRules:
        return cls(source=smtp.text, separator=smtp.separator,
                   disclaimers=tuple(re.compile(p, re.IGNORECASE | re.DOTALL)
                                     for p in smtp.disclaimers),
                   too_long=smtp.too_long, max_parts=messages.max_parts,
                   transliterate=messages.transliterate)


@dataclass(frozen=True, slots=True)
class MailText:
    text: str
    attachments: tuple[str, ...] = ()  # file names (or types) left out of the SMS
    truncated: bool = False


class TextTooLong(ValueError):
    """The text needs more parts than allowed and the rules say reject."""


class _HtmlText(HTMLParser):
    """HTML -> text: block elements become line breaks, invisible and quoted parts go.

    `<blockquote>` is what mail clients wrap a quoted original in, so it is
    dropped like '>' lines in plain text.
    """

    _SKIP = frozenset({"script", "style", "head", "title", "blockquote", "template"})
    _BREAK = frozenset({"br", "p", "div", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5",
                        "h6", "hr", "pre", "ul", "ol", "dl", "dt", "dd", "section", "article"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BREAK:
            self.out.append("\n")

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        if tag in self._BREAK:  # <br/>: one break, and never a skip that is not closed
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BREAK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return "".join(parser.out)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in the declared charset; undeclared or wrong labels fall back to UTF-8, cp1252."""
    candidates: list[str] = []
    if charset:
        label = charset.strip().strip('"').lower()
        candidates.append("cp1252" if label in _CP1252_LABELS else label)
    candidates += ["utf-8", "cp1252"]
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")  # every byte is a character: never fails


def _part_text(part: Message) -> str:
    """A text part decoded: transfer encoding (RFC 2045 §6: base64, quoted-printable,
    8bit) then charset (RFC 2046 §4.1.2), forgiving wrong and missing labels."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return _decode_bytes(payload, part.get_content_charset())


def _header_text(value: object) -> str:
    """A decoded header (RFC 2047 words are decoded by policy.default); raw 8-bit
    octets (RFC 6532, or plain misbehaviour) arrive as surrogates and are re-read."""
    text = str(value or "")
    if any("\udc80" <= c <= "\udcff" for c in text):
        text = _decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return text


def _strip_body(body: str, disclaimers: Sequence[re.Pattern[str]]) -> str:
    """Remove disclaimers, then cut at a signature or quoted original, drop '>' lines."""
    for pattern in disclaimers:
        body = pattern.sub("\n", body)
    kept: list[str] = []
    for line in body.splitlines():
        if line.rstrip("\r") in _SIGNATURE or _QUOTE_START.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    # "On ..., X wrote:" belongs to a quote that is gone now
    while kept and (not kept[-1].strip() or _ATTRIBUTION.search(kept[-1])):
        kept.pop()
    return "\n".join(kept)


def collapse(text: str) -> str:
    """Every run of whitespace (line breaks included) -> one space: SMS room is dear."""
    return " ".join(text.translate(_INVISIBLE).split())


def fit(text: str, rules: TextRules) -> tuple[str, bool]:
    """(text, truncated): the text as it is, or cut to fit `max_parts` with '...' at the end."""
    try:
        segment(text, max_parts=rules.max_parts, transliterate=rules.transliterate)
        return text, False
    except TooLong as exc:
        if rules.too_long == "reject":
            raise TextTooLong(str(exc)) from None
    # No part holds more than 160 characters: cut the search space first.
    text = text[:rules.max_parts * GSM7_SINGLE]
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        try:
            segment(text[:mid].rstrip() + ELLIPSIS, max_parts=rules.max_parts,
                    transliterate=rules.transliterate)
            lo = mid
        except TooLong:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS, True


def mail_text(content: bytes | Message, rules: TextRules) -> MailText:
    """The SMS text of a mail (RFC 5322 + MIME, RFC 2045-2047).

    multipart/alternative prefers text/plain; an HTML-only mail is turned into
    text; every charset and transfer encoding is decoded; attachments are left
    out (and listed); quoted originals, signatures and `disclaimers` go;
    whitespace collapses; the subject, the body or both make the text. Raises
    TextTooLong when the text is too long and the rules say reject.
    """
    if isinstance(content, EmailMessage):
        msg = content
    else:  # bytes, or a compat32 Message: read it with the modern API (get_body & co.)
        raw = content if isinstance(content, bytes) else content.as_bytes()
        parsed = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        msg = parsed
    subject = "" if rules.source == "body" else collapse(_header_text(msg.get("subject")))
    if _OUR_SUBJECT.match(subject):
        subject = ""
    body = ""
    if rules.source != "subject":
        part = msg.get_body(preferencelist=("plain", "html"))
        if part is not None:
            raw = _part_text(part)
            if part.get_content_subtype() == "html":
                raw = html_to_text(raw)
            body = collapse(_strip_body(raw, rules.disclaimers))
    attachments = tuple(a.get_filename() or a.get_content_type()
                        for a in msg.iter_attachments()) if msg.is_multipart() else ()
    text = rules.separator.join(t for t in (subject, body) if t)
    if not text:
        return MailText("", attachments)
    text, truncated = fit(text, rules)
    return MailText(text, attachments, truncated)


# -- who may send to whom -----------------------------------------------------


class Refused(Exception):
    """A policy refusal carrying its SMTP reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Recipients:
    """RCPT addresses -> E.164 numbers: our domains, numbers and groups only."""

    def __init__(self, config: SmtpConfig, numbers: NumbersConfig) -> None:
        self.domains = frozenset(config.domains)
        self._region = numbers.default_region
        self._mobile_only = numbers.mobile_only
        self.groups: dict[str, dict[str, str]] = {}  # name -> E.164 -> spelling
        # on-call schedule names (set by the gateway): NAME@domain -> schedule:NAME, which
        # Gateway.submit resolves at send time (omnigate/oncall/)
        self.schedules: frozenset[str] = frozenset()
        problems = []
        for g, group in enumerate(config.groups):
            members: dict[str, str] = {}
            for i, raw in enumerate(group.numbers):
                try:
                    members.setdefault(self.number(raw), raw)
                except NumberError as exc:
                    problems.append(f"smtp.groups[{g}].numbers[{i}]: {exc.reason}")
            self.groups[group.name] = members
        if problems:
            raise ConfigError(problems)

    def number(self, raw: str) -> str:
        return normalise_msisdn(raw, self._region, mobile_only=self._mobile_only)

    def resolve(self, address: str) -> dict[str, str]:
        """{E.164: spelling} for one RCPT address; raises Refused with the reply."""
        local, at, domain = address.rpartition("@")
        if not at or domain.lower().rstrip(".") not in self.domains:
            raise Refused(f"550 5.7.1 <{address}>: relay access denied; this server takes "
                          f"mail for {', '.join(sorted(self.domains))} only")
        group = self.groups.get(local.lower())
        if group is not None:
            return group
        if local.lower() in self.schedules:
            return {f"schedule:{local.lower()}": f"schedule:{local.lower()}"}
        if any(c.isalpha() for c in local):
            raise Refused(f"550 5.1.1 <{address}>: no such group, and not a phone number")
        try:
            return {self.number(local): local}
        except NumberError as exc:
            raise Refused(f"553 5.1.3 <{address}>: {exc.reason}") from None


# -- the protocol: aiosmtpd's, with a refusal in place of the greeting ---------


class _Envelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        # E.164 -> the spelling to submit (groups expanded, no duplicates). Submitting the
        # spelling the client used hits the number cache its check at RCPT filled.
        self.numbers: dict[str, str] = {}


class _Smtp(SMTP):
    """aiosmtpd's SMTP plus: 554 at connect for refused networks, live-session tracking.

    `_handle_client` and `_create_envelope` are aiosmtpd internals (1.4); the
    greeting has no public hook.
    """

    def __init__(self, handler: SmtpHandler, sessions: set[_Smtp], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions

    def _create_envelope(self) -> Envelope:
        return _Envelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        assert self.session is not None
        handler: SmtpHandler = self.event_handler
        if not handler.allowed(self.session.peer):
            await self._refuse_session()
            return
        await super()._handle_client()

    async def _refuse_session(self) -> None:
        """RFC 5321 §3.1: 554 instead of the greeting, then 503 to all but QUIT."""
        assert self.session is not None
        await self.push(f"554 5.7.1 {self.hostname} no SMTP service for "
                        f"{_host(self.session.peer)}")
        for _ in range(_REFUSED_COMMANDS):
            try:
                line = await self._reader.readuntil()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            if line[:4].upper() == b"QUIT":
                await self.push("221 2.0.0 Bye")
                break
            await self.push("503 5.5.1 bad sequence of commands: no service for you")
        if self.transport is not None:
            self.transport.close()

    def say_goodbye(self) -> None:
        """RFC 5321 §3.8: 421 to a client when we shut down, then close."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"421 4.3.2 service shutting down, try again later\r\n")
            self.transport.close()


_REFUSED_COMMANDS = 10  # commands a refused client may send before we hang up


def _host(peer: Any) -> str | None:
    return peer[0] if isinstance(peer, tuple) and peer else None


# -- the policy: aiosmtpd hooks returning reply lines --------------------------


class SmtpHandler:
    """aiosmtpd handler: senders, recipients, AUTH and DATA -> `submit`.

    Attribute names matter to aiosmtpd: `handle_*` are hooks and `auth_*` are
    SASL mechanisms, so nothing else here may start with those prefixes.
    """

    def __init__(self, config: SmtpConfig, *, accounts: Iterable[AccountConfig],
                 numbers: NumbersConfig, messages: MessagesConfig, submit: Submit) -> None:
        self.config = config
        self.recipients = Recipients(config, numbers)
        self.rules = TextRules.from_config(config, messages)
        self._submit = submit
        self._senders = tuple(p.lower() for p in config.senders)
        self._authenticator = Authenticator(config.allow, accounts)
        if config.sender:
            try:
                parse_sender(config.sender, numbers.default_region)
            except NumberError as exc:
                raise ConfigError([f"smtp.sender: {exc.reason}"]) from None
        self.in_data = 0  # DATA commands waiting for `submit`
        self.idle = asyncio.Event()
        self.idle.set()

    def allowed(self, peer: Any) -> bool:
        return _host(peer) in self._authenticator.allow

    # MAIL FROM

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self._senders:
            lowered = address.lower()
            if not any(fnmatch.fnmatchcase(lowered, p) for p in self._senders):
                return f"550 5.7.1 <{address}>: this sender may not send SMS"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    # RCPT TO

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        assert isinstance(envelope, _Envelope)
        try:
            numbers = self.recipients.resolve(address)
        except Refused as r:
            return r.reply
        new = {n: raw for n, raw in numbers.items() if n not in envelope.numbers}
        if len(envelope.numbers) + len(new) > self.config.max_recipients:
            return (f"452 4.5.3 too many recipients: at most {self.config.max_recipients} "
                    "numbers per mail; send the rest in another mail")
        envelope.numbers.update(new)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    # DATA

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, _Envelope)
        content = envelope.original_content or b""
        msg = email.message_from_bytes(content, policy=policy.default)
        auto = str(msg.get("auto-submitted", "no")).strip().lower()
        if not auto.startswith("no"):
            return f"550 5.7.1 auto-submitted mail ({auto}) is not sent as SMS (RFC 3834)"
        try:
            built = mail_text(msg, self.rules)
        except TextTooLong as exc:
            return f"552 5.3.4 {exc}; shorten the mail"
        except Exception:
            # Our bug or a mail the email package chokes on: temporary, so the client
            # keeps the mail (and retries) instead of bouncing it (RFC 5321 §4.2.2 451).
            log.exception("SMTP: cannot build a text from a mail from %s", envelope.mail_from)
            return "451 4.3.0 local error in processing this mail; try again later"
        if not built.text:
            return "554 5.6.0 no text for an SMS in the subject or the body"
        # the account: the AUTH login, else the envelope sender (Gateway.submit resolves it)
        request = SubmitRequest(to=list(envelope.numbers.values()), text=built.text, origin=Origin.SMTP,
                                sender=self.config.sender,
                                account=session.auth_data or envelope.mail_from,
                                mail_from=envelope.mail_from, client=_host(session.peer),
                                note="attachments left out: " + ", ".join(built.attachments)
                                if built.attachments else None)
        self.in_data += 1
        self.idle.clear()
        try:
            accepted = await self._submit(request)
        except SubmitError as exc:
            return _reply_for(exc)
        finally:
            self.in_data -= 1
            if not self.in_data:
                self.idle.set()
        first = accepted[0].id if accepted else 0
        more = f" and {len(accepted) - 1} more" if len(accepted) > 1 else ""
        return f"250 2.0.0 OK: queued as {first}{more}"

    # AUTH (RFC 4954) against [[accounts]] password hashes; scrypt runs off the loop

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 4616: base64("authzid NUL authcid NUL passwd"), inline or after a 334."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 cannot decode base64")
                return AuthResult(success=False)
        fields = blob.split(b"\0") if isinstance(blob, bytes) else []
        if len(fields) != 3:
            await server.push("501 5.5.2 expected authzid NUL authcid NUL password")
            return AuthResult(success=False)
        return await self._login(server, fields[1], fields[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """draft-murchison-sasl-login: user name and password, each base64 after a 334."""
        if len(args) == 1:
            user = await server.challenge_auth("Username:")
        else:
            try:
                user = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 cannot decode base64")
                return AuthResult(success=False)
        if user is MISSING:
            return AuthResult(success=False)
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False)
        assert isinstance(user, bytes) and isinstance(password, bytes)
        return await self._login(server, user, password)

    async def _login(self, server: SMTP, user: bytes, password: bytes) -> AuthResult:
        assert server.session is not None
        try:
            name = await self._authenticator.authenticate(
                Credentials(username=user.decode("utf-8", "replace"),
                            password=password.decode("utf-8", "replace")),
                _host(server.session.peer))
        except SubmitError:
            return AuthResult(success=False, handled=False,
                              message="535 5.7.8 authentication credentials invalid")
        return AuthResult(success=True, auth_data=name)


# SubmitError.kind/field -> reply line (RFC 5321 §4.2.2, RFC 3463 §3)
def _reply_for(exc: SubmitError) -> str:
    reason = " ".join(exc.reason.split())
    if exc.kind == "unavailable":
        return f"451 4.3.0 {reason}"
    if exc.kind in ("auth", "forbidden"):
        return f"550 5.7.1 {exc.field}: {reason}"
    if exc.field == "text" and "parts" in reason:
        return f"552 5.3.4 {reason}"
    if exc.field == "to":
        return f"550 5.1.3 {reason}"
    return f"554 5.6.0 {exc.field}: {reason}"


# -- lifecycle -----------------------------------------------------------------


class SmtpIngress:
    """The listening socket and its sessions; `start` binds, `stop` drains and closes."""

    def __init__(self, config: SmtpConfig, *, accounts: Iterable[AccountConfig],
                 numbers: NumbersConfig, messages: MessagesConfig, submit: Submit) -> None:
        self.config = config
        self.handler = SmtpHandler(config, accounts=accounts, numbers=numbers,
                                   messages=messages, submit=submit)
        self._tls = _tls_context(config)
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[_Smtp] = set()
        self.host, self.port = split_hostport(config.listen)
        self._hostname = config.hostname or socket.gethostname()  # not getfqdn: no DNS wait

    def _protocol(self) -> _Smtp:
        cfg = self.config
        return _Smtp(self.handler, self._sessions, data_size_limit=cfg.max_size,
                     hostname=self._hostname, ident=f"omnigate {__version__} ESMTP",
                     tls_context=self._tls, require_starttls=cfg.require_starttls,
                     auth_required=cfg.auth_required, auth_require_tls=cfg.auth_require_tls,
                     timeout=cfg.timeout, loop=asyncio.get_running_loop())

    async def start(self) -> None:
        _quiet_aiosmtpd()
        if self.config.auth_required and not self.config.auth_require_tls:
            log.warning("SMTP: AUTH is required but allowed without TLS: passwords cross "
                        "the network in the clear")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port,
                                                reuse_address=True, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("SMTP ingress on %s:%d for %s%s", self.host, self.port,
                 ", ".join(self.config.domains), " (STARTTLS)" if self._tls else "")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let mails in DATA finish (up to `grace`), then close with 421."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), grace)
        except TimeoutError:
            log.warning("SMTP: %d mail(s) still in DATA after %.0fs; closing",
                        self.handler.in_data, grace)
        for session in list(self._sessions):
            session.say_goodbye()
        await self._server.wait_closed()
        self._server = None


class _DropPerConnectionNoise(logging.Filter):
    """aiosmtpd warns on every connection about a setting (we say it once at start) and
    on every AUTH about an attribute it sets itself."""

    _NOISE = ("auth_required == True but auth_require_tls", "Session.login_data is deprecated")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._NOISE)


def _quiet_aiosmtpd() -> None:
    """aiosmtpd logs every command at info (not our budget: DESIGN "the hot path") and
    repeats two warnings per connection (see `_DropPerConnectionNoise`)."""
    aiosmtpd_log = logging.getLogger("mail.log")
    if not logging.getLogger("omnigate").isEnabledFor(logging.DEBUG):
        aiosmtpd_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropPerConnectionNoise) for f in aiosmtpd_log.filters):
        aiosmtpd_log.addFilter(_DropPerConnectionNoise())
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)


def _tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    """Server context for STARTTLS (RFC 3207); client certificates are not asked for."""
    if not config.tls_cert or not config.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"smtp.tls_cert: cannot load {config.tls_cert} / {config.tls_key}: "
                           f"{exc}"]) from None
    return context


def config_problems(config: Config) -> list[str]:
    """What only building the ingress finds ([smtp] group numbers, sender, TLS files),
    as 'path: reason', for `omnigate check-config`; [] without an [smtp] section."""
    if config.smtp is None:
        return []
    try:
        SmtpHandler(config.smtp, accounts=config.accounts, numbers=config.numbers,
                    messages=config.messages, submit=_never_submit)
        _tls_context(config.smtp)
    except ConfigError as exc:
        return exc.problems
    return []


async def _never_submit(request: SubmitRequest) -> list[Any]:
    raise SubmitError("service", "checking the config only", kind="unavailable")
