"""The telnet-style TCP line protocol: scripts send SMS, operators watch and steer.

One line per command, one line per answer: `+OK ...` or `-ERR <code> <reason>`;
the multi-line answers (HELP, LINKS, QUEUE, RETRY FAILED, TRACE) end with a
line holding a single dot, dot-stuffed as in POP3. A person in `telnet` or
`nc` and a script that pipelines commands both work: commands are
case-insensitive, lines end with LF or CRLF, telnet negotiation is ignored
(`tcpproto`), and answers come in the order of the commands. Consecutive
pipelined one-line SENDs are submitted together, so their commits share a
group commit; their answers still come in order.

`+OK <id> <number>` is said once `submit` has returned, that is after the
commit, one line per number the client listed (in its order). Every refusal
names a stable code, so a script can branch on it:

===========  =========================================================
code         when
===========  =========================================================
syntax       missing or malformed arguments
unknown      no such command
auth         AUTH needed, or wrong credentials (answered ever slower)
forbidden    client address not allowed; the command needs the admin role
number       a recipient is not a valid number or has no route
text         empty text, or more parts than [messages].max_parts
sender       FROM is not a valid sender
invalid      any other refused input
unavailable  the store cannot take it now, or omnigate is stopping
not-found    no such message or link
sequence     DATA without SEND <numbers> before it
conflict     RETRY of a message that did not fail
timeout      no command within idle_timeout; WAIT ran out of time
too-long     a line or a DATA text over max_line bytes
encoding     a line that is not valid in [tcp].charset
busy         max_sessions reached
===========  =========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from omnigate import __version__
from omnigate.api.auth import Authenticator, Credentials
from omnigate.api.console import (
    FINAL,
    RETRYABLE,
    StatusWatch,
    copy_request,
    link_lines,
    status_counts,
)
from omnigate.api.http import MessageReader
from omnigate.api.tcpproto import (
    LineFramer,
    Overflow,
    multiline,
    one_line,
    parse_numbers,
    parse_since,
    split_command,
    stuffed,
    unstuff,
)
from omnigate.carriers.base import Link
from omnigate.config import AccountConfig, NumbersConfig, TcpConfig, split_hostport
from omnigate.metrics import Metrics
from omnigate.model import Accepted, Origin, Submit, SubmitError, SubmitRequest
from omnigate.sms.numbers import NumberError, normalise_msisdn, parse_sender
from omnigate.store import Store
from omnigate.store.db import iso
from omnigate.store.writer import StoreUnavailable

log = logging.getLogger("omnigate.tcp")

_READ_SIZE = 65536
_PIPELINE = 64  # pipelined one-line SENDs submitted together at most
_WAIT_DEFAULT = 30.0  # seconds WAIT blocks without an argument
_WAIT_MAX = 3600.0
_AUTH_TRIES = 3  # wrong AUTHs in one session before it is closed
_AUTH_DELAY_MAX = 30.0
_AUTH_FORGET = 900.0  # seconds after which an address's wrong AUTHs are forgotten
_AUTH_ADDRESSES = 10_000  # addresses remembered with their failures
_QUEUE_SINCE = "24h"  # what QUEUE counts of messages no longer queued
_RETRY_MAX = 1000  # messages RETRY FAILED copies in one command
_RETRY_TOGETHER = 50  # copies submitted at once (they share group commits)
_BUSY_LOG_EVERY = 10.0  # seconds between log lines about refused connections
_ECHO_MAX = 40  # characters of a client's word repeated in an answer

_SUBMIT_CODES = {"unavailable": "unavailable", "auth": "auth", "forbidden": "forbidden",
                 "too_large": "too-long"}
_FIELD_CODES = {"to": "number", "text": "text", "from": "sender"}


def refusal(exc: SubmitError) -> str:
    """The -ERR line for a refused submission (or operator read): code, field, reason."""
    code = _SUBMIT_CODES.get(exc.kind) or _FIELD_CODES.get(exc.field, "invalid")
    return f"-ERR {code} {exc.field}: {one_line(exc.reason)}"


class _Refused(Exception):
    """A command refused by the session; carries its code and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.line = f"-ERR {code} {reason}"


def _echo(word: str) -> str:
    return repr(word[:_ECHO_MAX] + ("..." if len(word) > _ECHO_MAX else ""))


# -- who may do what -----------------------------------------------------------

ANYONE, USER, ADMIN = range(3)


@dataclass(frozen=True, slots=True)
class Command:
    method: str
    access: int
    usage: str


# The one list of commands: dispatch, access and HELP all read it.
COMMANDS: dict[str, Command] = {
    "AUTH": Command("auth", ANYONE, "AUTH <user> <password>  log in with an account"),
    "FROM": Command("sender", USER, "FROM <sender>  sender of the next messages"),
    "FLASH": Command("flash", USER, "FLASH ON|OFF  flash SMS (shown at once, not stored)"),
    "SEND": Command("send", USER, "SEND <numbers> <text>  numbers comma-separated; "
                                  "one +OK <id> <number> per number"),
    "DATA": Command("data", USER, "SEND <numbers>, then DATA: text lines up to a line holding ."),
    "STATUS": Command("status", USER, "STATUS <id>  status of a message"),
    "WAIT": Command("wait", USER, "WAIT <id> [seconds]  until the status is final "
                                  f"(default {_WAIT_DEFAULT:g}s)"),
    "HELP": Command("help", ANYONE, "HELP  this list"),
    "QUIT": Command("quit", ANYONE, "QUIT  close the session"),
    "LINKS": Command("links", ADMIN, "LINKS  each link: state, hosts, window, rate, counts"),
    "QUEUE": Command("queue", ADMIN, "QUEUE [since]  messages per status and link "
                                     f"(queued ones, others since {_QUEUE_SINCE})"),
    "SUSPEND": Command("suspend", ADMIN, "SUSPEND <link>  take no new messages on a link"),
    "RESUME": Command("resume", ADMIN, "RESUME <link>  end a SUSPEND"),
    "RETRY": Command("retry", ADMIN, "RETRY <id> | RETRY FAILED [since]  send failed "
                                     "messages again (as copies)"),
    "TRACE": Command("trace", ADMIN, "TRACE  status changes and link states live, until ."),
}


class AuthThrottle:
    """Wrong AUTHs from one address are answered ever slower: `base` seconds doubling per
    failure, capped, forgotten after a quiet while. Keyed by address, not session, so a
    script that reconnects after each try gains nothing."""

    def __init__(self, base: float) -> None:
        self.base = base
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failed(self, address: str) -> tuple[int, float]:
        """(failures in a row from this address, seconds to wait before answering)."""
        now = time.monotonic()
        count, last = self._failures.pop(address, (0, now))
        count = 1 if now - last > _AUTH_FORGET else count + 1
        self._failures[address] = (count, now)
        if len(self._failures) > _AUTH_ADDRESSES:
            self._failures.popitem(last=False)
        return count, min(_AUTH_DELAY_MAX, self.base * 2 ** (count - 1))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


@dataclass(frozen=True, slots=True)
class Operations:
    """What the commands read and steer besides `submit`; exists once the gateway runs."""

    reader: MessageReader
    store: Store
    links: Mapping[str, Link]
    view: Callable[[], list[dict[str, Any]]]
    metrics: Metrics
    suspend: Callable[[str, bool], None]


# -- one session -----------------------------------------------------------------


class TcpSession:
    """One client: reads lines, runs one `cmd_*` method per command, writes answers."""

    def __init__(self, ingress: TcpIngress, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, address: str) -> None:
        self.ingress = ingress
        self.reader = reader
        self.writer = writer
        self.address = address
        self.charset = ingress.config.charset
        self.framer = LineFramer(ingress.config.max_line)
        self._lines: deque[bytes | Overflow] = deque()
        self._eof = False
        self.open = ingress.authenticator.open
        self.account: str | None = None
        self.admin = self.open  # no accounts: the allowed networks are trusted
        self.sender: str | None = None
        self.flash = False
        self._numbers: list[str] | None = None  # from SEND <numbers>, for DATA
        self._auth_failures = 0
        self._closing = False

    # -- I/O --------------------------------------------------------------

    def write(self, text: str) -> None:
        self.writer.write(text.encode(self.charset, "replace"))

    def answer(self, line: str) -> None:
        self.write(line + "\r\n")

    async def _next(self, idle: float | None) -> bytes | Overflow | None:
        """The next line (or overflow); None at end of input. TimeoutError when idle."""
        while not self._lines:
            if self._eof:
                return None
            async with asyncio.timeout(idle):
                data = await self.reader.read(_READ_SIZE)
            if not data:
                self._eof = True
                continue
            self._lines.extend(self.framer.feed(data))
        return self._lines.popleft()

    async def _flush(self) -> None:
        async with asyncio.timeout(self.ingress.config.idle_timeout):
            await self.writer.drain()

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.charset)
        except UnicodeDecodeError as exc:
            raise _Refused("encoding", f"the line is not valid {self.charset} (byte "
                                       f"0x{raw[exc.start]:02x} at {exc.start}); "
                                       "nothing done") from None

    # -- the loop ------------------------------------------------------------

    async def run(self) -> None:
        cfg = self.ingress.config
        self.answer(f"+OK omnigate {__version__} ready")
        while not self._closing:
            try:
                line = await self._next(cfg.idle_timeout)
                if line is None:
                    break
                await self._handle(line)
            except _Refused as r:
                self.answer(r.line)
            except TimeoutError:  # silent within a command (DATA) too, or not reading
                self.answer(f"-ERR timeout no command for {cfg.idle_timeout:g}s; closing")
                log.info("TCP: %s idle for %gs; closed", self.address, cfg.idle_timeout)
                break
            except (SQLAlchemyError, StoreUnavailable) as exc:
                log.warning("TCP: store read for %s failed: %s", self.address, exc)
                self.answer("-ERR unavailable the store cannot be read now; try again later")
            if not self._lines:
                await self._flush()

    async def _handle(self, line: bytes | Overflow) -> None:
        if isinstance(line, Overflow):
            raise _Refused("too-long", f"line longer than {line.limit} bytes; ignored")
        text = self._decode(line)
        verb, rest = split_command(text)
        if not verb:
            return  # an empty line is no command (a person pressing Enter)
        command = COMMANDS.get(verb)
        if command is None:
            raise _Refused("unknown", f"no command {_echo(verb)}; HELP lists them")
        if command.access > ANYONE and not self.open and self.account is None:
            raise _Refused("auth", "log in first: AUTH <user> <password>")
        if command.access == ADMIN and not self.admin:
            raise _Refused("forbidden", f"{verb} needs an account with the admin role")
        await getattr(self, f"cmd_{command.method}")(rest)

    # -- commands anyone may give -----------------------------------------------

    async def cmd_auth(self, rest: str) -> None:
        user, _, password = rest.strip().partition(" ")
        if not user or not password:
            raise _Refused("syntax", "AUTH <user> <password>")
        auth = self.ingress.authenticator
        if auth.open:
            self.answer("+OK no accounts are configured: no login needed")
            return
        try:
            name = await auth.authenticate(Credentials(username=user, password=password),
                                           self.address)
        except SubmitError as exc:
            await self._auth_failed(user, exc)
            return
        self.ingress.throttle.succeeded(self.address)
        self.account = name
        self.admin = self.ingress.roles.get(name) == "admin"
        self.answer(f"+OK logged in as {name}{' (admin)' if self.admin else ''}")
        log.info("TCP: %s logged in from %s", name, self.address)

    async def _auth_failed(self, user: str, exc: SubmitError) -> None:
        self._auth_failures += 1
        count, delay = self.ingress.throttle.failed(self.address)
        log.warning("TCP: AUTH as %r from %s refused (%s); %d in a row from there, "
                    "answering after %.1fs", user[:64], self.address, exc.reason, count, delay)
        await asyncio.sleep(delay)
        if exc.kind == "forbidden":
            self.answer(refusal(exc))
        else:
            self.answer("-ERR auth wrong user or password")
        if self._auth_failures >= _AUTH_TRIES:
            self.answer(f"-ERR auth {_AUTH_TRIES} wrong tries; closing")
            self._closing = True

    async def cmd_help(self, rest: str) -> None:
        lines = [c.usage for c in COMMANDS.values() if c.access < ADMIN or self.admin]
        self.write(multiline("commands (case-insensitive)", lines))

    async def cmd_quit(self, rest: str) -> None:
        self.answer("+OK bye")
        self._closing = True

    # -- sending ---------------------------------------------------------------

    async def cmd_sender(self, rest: str) -> None:
        sender = rest.strip()
        if not sender or " " in sender:
            raise _Refused("syntax", "FROM <sender>: a number, or up to 11 letters and digits")
        try:
            parse_sender(sender, self.ingress.numbers.default_region)
        except NumberError as exc:
            raise _Refused("sender", f"from: {exc.reason}") from None
        self.sender = sender
        self.answer(f"+OK sender {sender}")

    async def cmd_flash(self, rest: str) -> None:
        word = rest.strip().upper()
        if word not in ("ON", "OFF"):
            raise _Refused("syntax", "FLASH ON|OFF")
        self.flash = word == "ON"
        self.answer(f"+OK flash {word.lower()}")

    def _numbers_of(self, word: str) -> list[str]:
        try:
            numbers = parse_numbers(word)
        except ValueError as exc:
            raise _Refused("syntax", str(exc)) from None
        most = self.ingress.config.max_recipients
        if len(numbers) > most:
            raise _Refused("syntax", f"{len(numbers)} numbers; at most {most} in one SEND")
        return numbers

    def _request(self, numbers: list[str], text: str) -> SubmitRequest:
        return SubmitRequest(to=numbers, text=text, origin=Origin.TCP, sender=self.sender,
                             account=self.account, flash=self.flash)

    async def cmd_send(self, rest: str) -> None:
        parts = rest.split(None, 1)
        if not parts:
            raise _Refused("syntax", "SEND <numbers> <text>, or SEND <numbers> then DATA")
        numbers = self._numbers_of(parts[0])
        if len(parts) == 1:
            self._numbers = numbers
            self.answer(f"+OK {len(numbers)} number{'s' if len(numbers) > 1 else ''}; "
                        "now DATA")
            return
        first = (self._request(numbers, parts[1]), numbers)
        batch: list[tuple[SubmitRequest, list[str]] | _Refused] = [first]
        while len(batch) < _PIPELINE and self._lines and _one_line_send(self._lines[0]):
            batch.append(self._pipelined_send(self._lines.popleft()))
        if len(batch) == 1:
            self.write(await self._submit(*first))
            return
        results = iter(await asyncio.gather(
            *(self._submit(*item) for item in batch if isinstance(item, tuple))))
        self.write("".join(next(results) if isinstance(item, tuple) else f"{item.line}\r\n"
                           for item in batch))

    def _pipelined_send(self, raw: bytes | Overflow) -> tuple[SubmitRequest, list[str]] | _Refused:
        assert isinstance(raw, bytes)
        try:
            _, rest = split_command(self._decode(raw))
            word, text = rest.split(None, 1)
            numbers = self._numbers_of(word)
        except _Refused as r:
            return r
        return self._request(numbers, text), numbers

    async def cmd_data(self, rest: str) -> None:
        numbers, self._numbers = self._numbers, None
        if numbers is None:
            raise _Refused("sequence", "DATA needs SEND <numbers> before it")
        self.answer("+OK send the text; end it with a line holding .")
        await self._flush()
        limit = self.ingress.config.max_line
        lines: list[str] = []
        size = 0
        problem: str | None = None  # the first one; said after the closing dot
        while True:
            raw = await self._next(self.ingress.config.idle_timeout)
            if raw is None:
                self._closing = True
                return
            if raw == b".":
                break
            if problem:
                continue
            if isinstance(raw, Overflow):
                problem = f"-ERR too-long a text line longer than {limit} bytes; nothing sent"
                continue
            size += len(raw) + 1
            if size > limit:
                problem = f"-ERR too-long the text is over {limit} bytes; nothing sent"
                continue
            try:
                lines.append(unstuff(self._decode(raw)))
            except _Refused as r:
                problem = r.line
        if problem:
            self.answer(problem)
            return
        self.write(await self._submit(self._request(numbers, "\n".join(lines)), numbers))

    async def _submit(self, request: SubmitRequest, numbers: list[str]) -> str:
        """The answer lines: one +OK per number as listed, or the -ERR."""
        ingress = self.ingress
        ingress.submitting += 1
        ingress.idle.clear()
        try:
            accepted = await ingress.submit(request)
        except SubmitError as exc:
            return refusal(exc) + "\r\n"
        finally:
            ingress.submitting -= 1
            if not ingress.submitting:
                ingress.idle.set()
        return "".join(f"+OK {a.id} {a.to}\r\n" for a in self._per_number(accepted, numbers))

    def _per_number(self, accepted: list[Accepted], numbers: list[str]) -> Iterable[Accepted]:
        """The accepted message of each number as the client listed it: numbers written
        twice (or two ways) are one message, answered on both lines."""
        if len(accepted) == len(numbers):
            return accepted
        cfg = self.ingress.numbers
        by_number = {a.to: a for a in accepted}
        return [by_number[normalise_msisdn(n, cfg.default_region, mobile_only=cfg.mobile_only)]
                for n in numbers]

    # -- reading statuses --------------------------------------------------------

    def _id(self, word: str) -> int:
        # ids are BIGINT: below 2**63 (19 digits at most)
        if not (word.isascii() and word.isdigit() and len(word) <= 19 and int(word) < 1 << 63):
            raise _Refused("syntax", f"a message id is a number, not {_echo(word)}")
        return int(word)

    async def _message(self, id: int) -> dict[str, Any]:
        msg = await self.ingress.ops.reader.get_message(id)
        if msg is None:
            raise _Refused("not-found", f"no message {id}")
        return msg

    async def cmd_status(self, rest: str) -> None:
        words = rest.split()
        if len(words) != 1:
            raise _Refused("syntax", "STATUS <id>")
        msg = await self._message(self._id(words[0]))
        self.answer(_status_line(msg["id"], msg["status"], msg["to"], msg["link"],
                                 msg["updated_at"], msg["error"]))

    async def cmd_wait(self, rest: str) -> None:
        words = rest.split()
        if not 1 <= len(words) <= 2:
            raise _Refused("syntax", "WAIT <id> [seconds]")
        id = self._id(words[0])
        seconds = _WAIT_DEFAULT
        if len(words) == 2:
            try:
                seconds = float(words[1])
            except ValueError:
                seconds = -1
            if not 0 <= seconds <= _WAIT_MAX:
                raise _Refused("syntax", f"seconds: 0 to {_WAIT_MAX:g}")
        await self._flush()  # earlier answers go out before we block
        # Listen first, then read: a change between the two is not missed. Listeners
        # hear of a change before the store has it: the empty commit is a barrier after
        # which every change told before we listened is in the store.
        with self.ingress.watch.final_status(id) as final:
            await self.ingress.ops.store.writer.commit({})
            msg = await self._message(id)
            if msg["status"] not in FINAL:
                try:
                    async with asyncio.timeout(seconds):
                        change = await final
                except TimeoutError:
                    msg = await self._message(id)  # the store may know what we were not told
                else:
                    self.answer(_status_line(id, change.status.value, change.message.recipient,
                                             change.link, iso(change.at), change.reason))
                    return
        if msg["status"] not in FINAL:
            raise _Refused("timeout", f"message {id} is still {msg['status']} after {seconds:g}s")
        self.answer(_status_line(msg["id"], msg["status"], msg["to"], msg["link"],
                                 msg["updated_at"], msg["error"]))

    # -- operator commands ---------------------------------------------------------

    async def cmd_links(self, rest: str) -> None:
        ops = self.ingress.ops
        lines = link_lines(ops.links, ops.view, ops.metrics)
        self.write(multiline(f"{len(lines)} link{'' if len(lines) == 1 else 's'}", lines))

    async def cmd_queue(self, rest: str) -> None:
        words = rest.split()
        if len(words) > 1:
            raise _Refused("syntax", "QUEUE [since]")
        since = self._since(words[0] if words else _QUEUE_SINCE)
        counts = await status_counts(self.ingress.ops.store, since)
        self.write(multiline(f"messages per status and link: queued ones, others since "
                             f"{iso(since)}", [f"{s} {link} {n}" for s, link, n in counts]))

    def _since(self, word: str) -> float:
        try:
            return parse_since(word, time.time())
        except ValueError as exc:
            raise _Refused("syntax", f"since: {exc}") from None

    async def cmd_suspend(self, rest: str) -> None:
        await self._suspend(rest, True)

    async def cmd_resume(self, rest: str) -> None:
        await self._suspend(rest, False)

    async def _suspend(self, rest: str, suspended: bool) -> None:
        words = rest.split()
        verb = "SUSPEND" if suspended else "RESUME"
        if len(words) != 1:
            raise _Refused("syntax", f"{verb} <link>")
        try:
            self.ingress.ops.suspend(words[0], suspended)
        except KeyError:
            raise _Refused("not-found", f"no link named {_echo(words[0])}") from None
        word = "suspended" if suspended else "resumed"
        log.info("TCP: link %s %s by %s from %s", words[0], word, self.account or "-",
                    self.address)
        self.answer(f"+OK link {words[0]} {word}")

    async def cmd_retry(self, rest: str) -> None:
        words = rest.split()
        if words and words[0].upper() == "FAILED" and len(words) <= 2:
            await self._retry_failed(words[1] if len(words) == 2 else None)
            return
        if len(words) != 1:
            raise _Refused("syntax", "RETRY <id> or RETRY FAILED [since]")
        msg = await self._message(self._id(words[0]))
        if msg["status"] not in RETRYABLE:
            raise _Refused("conflict", f"message {msg['id']} is {msg['status']}; only "
                                       f"{', '.join(sorted(RETRYABLE))} messages are sent again")
        self.write(await self._submit(copy_request(msg), [msg["to"]]))
        log.info("TCP: message %d sent again by %s", msg["id"], self.account or self.address)

    async def _retry_failed(self, since_word: str | None) -> None:
        since = self._since(since_word) if since_word else None
        failed = await self.ingress.ops.reader.list_messages(
            status="failed", to=None, limit=_RETRY_MAX,
            since=datetime.fromtimestamp(since, UTC) if since is not None else None)
        lines: list[str] = []
        for i in range(0, len(failed), _RETRY_TOGETHER):
            chunk = failed[i:i + _RETRY_TOGETHER]
            answers = await asyncio.gather(*(self._submit(copy_request(m), [m["to"]])
                                             for m in chunk))
            lines += [f"{a.strip()} (copy of {m['id']})"
                      for m, a in zip(chunk, answers, strict=True)]
        log.info("TCP: %d failed messages sent again by %s", len(failed),
                 self.account or self.address)
        more = "; there are more: run it again" if len(failed) == _RETRY_MAX else ""
        self.write(multiline(f"{len(failed)} failed message{'' if len(failed) == 1 else 's'} "
                             f"sent again{more}", lines))

    async def cmd_trace(self, rest: str) -> None:
        """Stream until the client sends '.' (other lines are ignored) or goes away."""
        self.write("+OK tracing; a line holding . ends it\r\n")
        await self._flush()
        with self.ingress.watch.trace() as trace:
            reading = asyncio.ensure_future(self._next(None))
            try:
                while True:
                    waiting = asyncio.ensure_future(trace.ready.wait())
                    await asyncio.wait((reading, waiting), return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    lines = trace.take()
                    if lines:
                        self.write(stuffed(lines))
                        await self._flush()
                    if reading.done():
                        line = reading.result()
                        if line is None:
                            self._closing = True
                            return
                        if line == b".":
                            break
                        reading = asyncio.ensure_future(self._next(None))
            finally:
                reading.cancel()
        self.write(".\r\n")


def _one_line_send(raw: bytes | Overflow) -> bool:
    """Is this buffered line a SEND with its text (pipelinable)? A cheap look at bytes."""
    return (isinstance(raw, bytes) and raw[:5].upper() == b"SEND "
            and len(raw.split(None, 2)) == 3)


def _status_line(id: int, status: str, to: str, link: str | None, at: str | None,
                 error: str | None) -> str:
    line = f"+OK {id} {status} {to} link={link or '-'} at={at or '-'}"
    return f"{line} error: {one_line(error)}" if error else line


# -- the listener ------------------------------------------------------------------


class TcpIngress:
    """The listening socket and its sessions; `start` binds, `stop` drains and closes."""

    def __init__(self, config: TcpConfig, *, accounts: Iterable[AccountConfig],
                 numbers: NumbersConfig, submit: Submit) -> None:
        accounts = list(accounts)
        self.config = config
        self.numbers = numbers
        self.submit = submit
        self.authenticator = Authenticator(config.allow, accounts)
        self.roles = {a.name: a.role for a in accounts}
        self.throttle = AuthThrottle(config.auth_delay)
        self.watch = StatusWatch()  # a dispatcher listener from the gateway's start
        self.host, self.port = split_hostport(config.listen)
        self._ops: Operations | None = None
        self._server: asyncio.AbstractServer | None = None
        self._sessions: dict[TcpSession, asyncio.Task[Any]] = {}
        self.submitting = 0  # submits awaiting their commit
        self.idle = asyncio.Event()
        self.idle.set()
        self._refused = 0
        self._refused_logged = 0.0

    @property
    def ops(self) -> Operations:
        assert self._ops is not None, "TcpIngress.start() binds the operations"
        return self._ops

    async def start(self, *, reader: MessageReader, store: Store, links: Mapping[str, Link],
                    view: Callable[[], list[dict[str, Any]]], metrics: Metrics,
                    suspend: Callable[[str, bool], None]) -> None:
        self._ops = Operations(reader, store, links, view, metrics, suspend)
        self._server = await asyncio.start_server(self._connected, self.host, self.port,
                                                  reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("TCP line protocol on %s:%d%s", self.host, self.port,
                 "" if self.authenticator.open else " (AUTH required)")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let submits finish (up to `grace`), then close every session."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.idle.wait(), grace)
        except TimeoutError:
            log.warning("TCP: %d submission(s) still waiting after %.0fs; closing",
                        self.submitting, grace)
        for session, task in list(self._sessions.items()):
            with contextlib.suppress(Exception):
                session.answer("-ERR unavailable omnigate is stopping; try again later")
            task.cancel()
        if self._sessions:
            await asyncio.gather(*self._sessions.values(), return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connected(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else ""
        if self._server is None or not self._server.is_serving():
            await _refuse(writer, "-ERR unavailable omnigate is stopping; try again later")
            return
        if address not in self.authenticator.allow:
            log.warning("TCP: connection from %s refused: not in [tcp].allow", address)
            await _refuse(writer, f"-ERR forbidden client address {address} is not allowed")
            return
        if len(self._sessions) >= self.config.max_sessions:
            self._note_busy()
            await _refuse(writer, f"-ERR busy {self.config.max_sessions} sessions already; "
                                  "try again later")
            return
        session = TcpSession(self, reader, writer, address)
        task = asyncio.current_task()
        assert task is not None
        self._sessions[session] = task
        log.debug("TCP: session from %s opened", address)
        try:
            await session.run()
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # the client went away, would not read, or we are stopping
        except Exception:
            log.exception("TCP: session with %s failed", address)
        finally:
            del self._sessions[session]
            await _close(writer)
            log.debug("TCP: session from %s (%s) closed", address, session.account or "-")

    def _note_busy(self) -> None:
        """Refusals for max_sessions, logged at most every few seconds with a count."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= _BUSY_LOG_EVERY:
            log.warning("TCP: %d connection(s) refused: max_sessions (%d) reached",
                        self._refused, self.config.max_sessions)
            self._refused = 0
            self._refused_logged = now


async def _refuse(writer: asyncio.StreamWriter, line: str) -> None:
    with contextlib.suppress(ConnectionError):
        writer.write(line.encode() + b"\r\n")
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()

