"""The AT dialogue with a GSM modem, sans-I/O (STYLE §4): bytes in, events and bytes
out, time passed in as `now`.

A modem takes one command at a time (3GPP TS 27.007 §5.1: a new command line before
the final result code is an error), so this is a queue, not a window: each command
is written when the previous one has its final result code - OK, ERROR, +CME ERROR:
<n>, +CMS ERROR: <n> - or has timed out. AT+CMGS is two-step (TS 27.005 §3.5.1):
the command line, the prompt "> ", then the PDU in hex ended by Ctrl-Z, then
"+CMGS: <mr>" and OK.

Lines the modem sends on its own (unsolicited result codes) may come between any two
lines and are handled wherever they arrive: +CMTI / +CDSI (a message or status report
stored at an index: read it with AT+CMGR), +CMT / +CDS (one delivered directly: a
header line, then the PDU line), +CREG (registration changed), RING and its kin
(ignored: this is no phone). The echo of our own command line (before ATE0 takes
effect) is ignored.

The start-up script: the `init` commands (ATZ, ATE0, AT+CMEE=1), the SIM PIN
(AT+CPIN?; AT+CPINR to see how many attempts are left, since a SIM locks itself
after three wrong ones; then AT+CPIN=<pin>), AT+CMGF=0 (PDU mode), the `setup`
commands (AT+CNMI, AT+CPMS, AT+CREG=1), AT+CNUM for the SIM's own number, and
AT+CREG? until registered (or `register_timeout`). Then `Ready`, the stored-message
sweep (AT+CMGL=4: everything received while we were away) and polling of AT+CSQ,
AT+CREG? and AT+COPS? every `poll_interval`.

SessionBase and Window fit windowed protocols keyed by a sequence number; an AT
dialogue has neither, so this class keeps its own small queue.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from omnigate.model import FailureKind
from omnigate.sms import pdu as tpdu

from . import codes

CTRL_Z = b"\x1a"
MAX_LINE = 1024  # a PDU line is at most 2 * 176 hex digits; anything longer is noise
REGISTER_RETRY = 1.0  # seconds between AT+CREG? while waiting to register

_FINAL_ERROR = re.compile(r"^(ERROR|\+CME ERROR:.*|\+CMS ERROR:.*)$")
_INDICATION = re.compile(r'^\+(CMTI|CDSI): *"?([A-Z]{2})"?, *(\d+)$')
_IGNORED = ("RING", "+CRING", "+CLIP", "NO CARRIER", "+CUSD", "^", "+CIEV", "+CGREG",
            "+CEREG")


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    CLOSED = "closed"


class Kind(enum.Enum):
    """What a command is for: decides what its answer means."""

    INIT = "init"
    PIN_QUERY = "pin-query"
    PIN_RETRIES = "pin-retries"
    PIN_ENTRY = "pin-entry"
    SETUP = "setup"
    NUMBER = "number"
    REGISTER = "register"
    LIST = "list"
    READ = "read"
    DELETE = "delete"
    SEND = "send"
    SIGNAL = "signal"
    REGISTRATION = "registration"
    OPERATOR = "operator"


@dataclass(slots=True, eq=False)
class Command:
    kind: Kind
    line: str
    token: Any = None  # the part, for SEND
    arg: Any = None  # SEND: the PDU hex; READ/DELETE: the index
    lines: list[str] = field(default_factory=list)  # information responses
    deadline: float = 0.0


# --- events ---------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Ready:
    """Started: PIN accepted, PDU mode, registered."""

    number: str  # the SIM's own number (AT+CNUM), or ""


@dataclass(slots=True, frozen=True)
class StartFailed:
    reason: str
    pin_refused: bool = False  # the SIM said the PIN is wrong: never send it again


@dataclass(slots=True, frozen=True)
class Sent:
    token: Any
    mr: int


@dataclass(slots=True, frozen=True)
class SendFailed:
    token: Any
    kind: FailureKind
    reason: str


@dataclass(slots=True, frozen=True)
class Received:
    """A decoded MO (`tpdu.Deliver`) or status report; `index` is where the modem stored
    it (delete it once handed on), None if it came directly (+CMT, +CDS)."""

    message: tpdu.Deliver | tpdu.StatusReport
    index: int | None


@dataclass(slots=True, frozen=True)
class Undecodable:
    index: int | None
    pdu: str
    reason: str


@dataclass(slots=True, frozen=True)
class Signal:
    rssi: int  # +CSQ: 0-31, 99 unknown
    ber: int


@dataclass(slots=True, frozen=True)
class Registration:
    stat: int  # +CREG <stat>

    @property
    def registered(self) -> bool:
        return self.stat in codes.REGISTERED


@dataclass(slots=True, frozen=True)
class Operator:
    name: str


@dataclass(slots=True, frozen=True)
class Timeout:
    token: Any  # the part, if the command was AT+CMGS
    line: str
    seconds: float


@dataclass(slots=True, frozen=True)
class Notice:
    """Something worth a log line and nothing more (RING, an unexpected line, a failed
    poll)."""

    text: str


# --- the session -------------------------------------------------------------------------


class Session:
    """One modem, one dialogue; see the module docstring."""

    def __init__(self, *, pin: str | None = None, pin_refused: bool = False,
                 init: list[str], setup: list[str], command_timeout: float,
                 response_timeout: float, poll_interval: float,
                 register_timeout: float) -> None:
        self.pin = pin
        self.pin_refused = pin_refused  # a PIN this link sent was refused before
        self.init = init
        self.setup = setup
        self.command_timeout = command_timeout
        self.response_timeout = response_timeout
        self.poll_interval = poll_interval
        self.register_timeout = register_timeout
        self.state = State.STARTING
        self.number = ""
        self._queue: deque[Command] = deque()
        self._current: Command | None = None
        self._prompt = False  # AT+CMGS written, waiting for "> "
        self._header: str | None = None  # a +CMT/+CDS/+CMGR/+CMGL line awaiting its PDU
        self._buf = b""
        self._out: list[bytes] = []
        self._sends = 0  # AT+CMGS queued or in progress
        self._register_until = 0.0
        self._retry_at: float | None = None  # next AT+CREG? while waiting to register
        self._poll_at: float | None = None
        self._polling = False

    # --- what the link reads --------------------------------------------------------

    @property
    def window_room(self) -> int:
        """One submit at a time, only when started."""
        return 1 if self.state is State.READY and not self._sends else 0

    @property
    def in_window(self) -> int:
        return self._sends

    @property
    def idle(self) -> bool:
        """No command waiting for its answer, none queued."""
        return self._current is None and not self._queue

    def next_deadline(self) -> float | None:
        times = [t for t in (self._current.deadline if self._current else None,
                             self._retry_at, self._poll_at) if t is not None]
        return min(times) if times else None

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    # --- what the link does ----------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the start-up script."""
        for line in self.init:
            self._queue.append(Command(Kind.INIT, line))
        self._queue.append(Command(Kind.PIN_QUERY, "AT+CPIN?"))
        self._next(now)

    def submit(self, body: tuple[str, int], token: Any, now: float) -> None:
        """Queue AT+CMGS for a PDU: `body` is (hex with the SMSC field, TPDU length)."""
        hex_pdu, length = body
        self._sends += 1
        self._queue.append(Command(Kind.SEND, f"AT+CMGS={length}", token, hex_pdu))
        self._next(now)

    def delete(self, index: int, now: float) -> None:
        """Delete a stored message we have handed on (AT+CMGD)."""
        self._queue.append(Command(Kind.DELETE, f"AT+CMGD={index}", arg=index))
        self._next(now)

    def close(self) -> list[Any]:
        """Closed: the parts still held (in progress first, then queued)."""
        held = [c.token for c in ([self._current] if self._current else []) + list(self._queue)
                if c.kind is Kind.SEND]
        self.state = State.CLOSED
        self._queue.clear()
        self._current = None
        self._sends = 0
        self._out.clear()
        self._buf = b""
        self._retry_at = self._poll_at = None
        return held

    # --- bytes in ----------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Any]:
        if self.state is State.CLOSED:
            return []
        events: list[Any] = []
        buf = self._buf + data
        while buf:
            if self._prompt:
                stripped = buf.lstrip(b"\r\n")
                if stripped.startswith(b">"):
                    buf = stripped[2:] if stripped.startswith(b"> ") else stripped[1:]
                    self._prompt = False
                    assert self._current is not None
                    self._out.append(self._current.arg.encode("ascii") + CTRL_Z)
                    continue
            cut = _line_end(buf)
            if cut < 0:
                break
            line = buf[:cut].decode("latin-1").strip()
            buf = buf[cut + 1:]
            if line:
                self._line(line, now, events)
        if len(buf) > MAX_LINE:
            events.append(Notice(f"dropped {len(buf)} octets without a line end"))
            buf = b""
        self._buf = buf
        if self.state is not State.CLOSED:
            self._next(now)
        return events

    def _line(self, line: str, now: float, events: list[Any]) -> None:
        cmd = self._current
        if self._header is not None:
            self._pdu_line(self._header, line, events)
            self._header = None
            return
        if cmd is not None and (line == cmd.line or (cmd.kind is Kind.SEND and (
                line.lstrip("> ").rstrip("\x1a") == cmd.arg or line.startswith(cmd.line)))):
            return  # our echo
        if line == "OK":
            if cmd is not None:
                self._finish(cmd, None, now, events)
            else:
                events.append(Notice("OK without a command"))
            return
        if _FINAL_ERROR.match(line):
            if cmd is not None:
                self._finish(cmd, line, now, events)
            else:
                events.append(Notice(f"{line} without a command"))
            return
        if self._unsolicited(line, now, events):
            return
        if line.startswith(("+CMGR:", "+CMGL:")) and cmd is not None and cmd.kind in (
                Kind.READ, Kind.LIST):
            self._header = line
            return
        if cmd is not None:
            cmd.lines.append(line)
        else:
            events.append(Notice(f"unexpected line {line[:80]!r}"))

    def _unsolicited(self, line: str, now: float, events: list[Any]) -> bool:
        """Handle `line` if it is an unsolicited result code; False if it is not one."""
        m = _INDICATION.match(line)
        if m is not None:
            index = int(m.group(3))
            self._queue.append(Command(Kind.READ, f"AT+CMGR={index}", arg=index))
            return True
        if line.startswith(("+CMT:", "+CDS:")):
            self._header = line
            return True
        if line.startswith("+CREG:"):
            fields = [f.strip() for f in line[6:].split(",")]
            if len(fields) >= 2 and fields[1].isdigit():
                return False  # "+CREG: <n>,<stat>": the answer to AT+CREG?
            if fields[0].isdigit():
                events.append(Registration(int(fields[0])))
                return True
        if line.startswith(_IGNORED):
            events.append(Notice(f"ignored {line[:80]!r}"))
            return True
        return False

    def _pdu_line(self, header: str, line: str, events: list[Any]) -> None:
        index = None
        if header.startswith("+CMGL:"):
            first = header[6:].split(",")[0].strip()
            index = int(first) if first.isdigit() else None
        elif header.startswith("+CMGR:") and self._current is not None:
            index = self._current.arg
        try:
            message = tpdu.decode_hex(line)
        except tpdu.PduError as exc:
            events.append(Undecodable(index, line[:400], str(exc)))
            return
        if isinstance(message, tpdu.Submit):
            # An outgoing message stored on the SIM (a phone's draft): not ours to take.
            events.append(Notice(f"stored SMS-SUBMIT at index {index} left alone"))
            return
        events.append(Received(message, index))

    # --- final results ------------------------------------------------------------------

    def _finish(self, cmd: Command, error: str | None, now: float, events: list[Any]) -> None:
        self._current = None
        self._prompt = False
        kind = cmd.kind
        if kind is Kind.SEND:
            self._sends -= 1
            self._sent(cmd, error, events)
        elif kind in (Kind.LIST, Kind.READ, Kind.DELETE):
            if error is not None:  # worth a line; the message stays stored for the next sweep
                events.append(Notice(f"{cmd.line}: {codes.describe_error(error)}"))
        elif self.state is State.STARTING:
            self._start_step(cmd, error, now, events)
        elif kind is Kind.SIGNAL:
            self._read_signal(cmd, error, events)
        elif kind is Kind.REGISTRATION:
            self._read_registration(cmd, error, events)
        elif kind is Kind.OPERATOR:
            self._polling = False
            self._poll_at = now + self.poll_interval
            for line in cmd.lines:
                if line.startswith("+COPS:"):
                    parts = line[6:].split(",")
                    if len(parts) >= 3:
                        events.append(Operator(parts[2].strip().strip('"')))

    def _sent(self, cmd: Command, error: str | None, events: list[Any]) -> None:
        if error is None:
            for line in cmd.lines:
                if line.startswith("+CMGS:"):
                    mr = line[6:].split(",")[0].strip()
                    if mr.isdigit() and int(mr) <= 255:
                        events.append(Sent(cmd.token, int(mr)))
                        return
            events.append(SendFailed(cmd.token, FailureKind.TEMPORARY,
                                     "OK without +CMGS: <mr>; the modem may not have sent it"))
            return
        m = re.match(r"\+CMS ERROR: ?(\d+)$", error)
        kind = codes.cms_kind(int(m.group(1))) if m else FailureKind.TEMPORARY
        events.append(SendFailed(cmd.token, kind, f"AT+CMGS: {codes.describe_error(error)}"))

    def _start_step(self, cmd: Command, error: str | None, now: float,
                    events: list[Any]) -> None:
        kind = cmd.kind
        if kind is Kind.PIN_QUERY:
            if error is not None:
                return self._fail(events, f"AT+CPIN? answered {codes.describe_error(error)}")
            value = next((ln[6:].strip() for ln in cmd.lines if ln.startswith("+CPIN:")), "")
            if value == "READY":
                return self._after_pin(now)
            if value == "SIM PIN":
                if not self.pin:
                    return self._fail(events, "the SIM asks for its PIN and `pin` is not set")
                self._queue.appendleft(Command(Kind.PIN_RETRIES, 'AT+CPINR="SIM PIN"'))
                return None
            if value == "SIM PUK":
                return self._fail(events, "the SIM is locked and wants its PUK (too many "
                                          "wrong PINs): unlock it in a phone")
            return self._fail(events, f"the SIM is not ready: +CPIN: {value or '?'}")
        if kind is Kind.PIN_RETRIES:
            left = None
            for line in cmd.lines:
                m = re.match(r'\+CPINR: *"?SIM PIN"?, *(\d+)', line)
                if m:
                    left = int(m.group(1))
            if left is not None and left < 2:
                return self._fail(events, f"the SIM has {left} PIN attempt(s) left: not "
                                          "entering the PIN, a wrong one would lock the SIM; "
                                          "check `pin` and unlock the SIM in a phone")
            if left is None and self.pin_refused:
                return self._fail(events, "the SIM refused this PIN before and does not say "
                                          "how many attempts are left: not trying again, so "
                                          "the SIM does not lock; check `pin`")
            self._queue.appendleft(Command(Kind.PIN_ENTRY, f'AT+CPIN="{self.pin}"'))
            return None
        if kind is Kind.PIN_ENTRY:
            if error is None:
                return self._after_pin(now)
            refused = error == f"+CME ERROR: {codes.CME_INCORRECT_PASSWORD}"
            why = "the SIM refused the PIN" if refused else "PIN entry failed"
            return self._fail(events, f"{why}: {codes.describe_error(error)}; "
                                      "check `pin`", pin_refused=refused)
        if kind is Kind.NUMBER:
            for line in cmd.lines:
                fields = line[6:].split(",") if line.startswith("+CNUM:") else []
                if len(fields) >= 2 and fields[1].strip().strip('"'):
                    self.number = fields[1].strip().strip('"').lstrip("+")
                    break
            return None  # many SIMs do not know their number: not an error
        if kind is Kind.REGISTER:
            stat = _registration(cmd.lines)
            if error is None and stat in codes.REGISTERED:
                self._ready(now, events)
                return None
            if now >= self._register_until:
                what = (codes.describe_error(error) if error is not None
                        else f"+CREG stat {stat} ({codes.REGISTRATION.get(stat, '?')})")
                return self._fail(events, f"not registered to a network after "
                                          f"{self.register_timeout:g} s: {what}")
            self._retry_at = now + REGISTER_RETRY
            return None
        if error is not None:  # INIT, SETUP
            return self._fail(events, f"{cmd.line} answered {codes.describe_error(error)}")
        return None

    def _after_pin(self, now: float) -> None:
        self._queue.append(Command(Kind.SETUP, "AT+CMGF=0"))
        for line in self.setup:
            self._queue.append(Command(Kind.SETUP, line))
        self._queue.append(Command(Kind.NUMBER, "AT+CNUM"))
        self._register_until = now + self.register_timeout
        self._queue.append(Command(Kind.REGISTER, "AT+CREG?"))

    def _ready(self, now: float, events: list[Any]) -> None:
        self.state = State.READY
        events.append(Ready(self.number))
        # Everything stored while we were away (27.005 §3.4.2: 4 = all messages).
        self._queue.appendleft(Command(Kind.LIST, "AT+CMGL=4"))
        self._poll_at = now  # signal and operator at once, for describe()

    def _fail(self, events: list[Any], reason: str, pin_refused: bool = False) -> None:
        self.state = State.CLOSED
        self._queue.clear()
        events.append(StartFailed(reason, pin_refused))

    def _read_signal(self, cmd: Command, error: str | None, events: list[Any]) -> None:
        for line in cmd.lines:
            m = re.match(r"\+CSQ: *(\d+), *(\d+)", line)
            if m:
                events.append(Signal(int(m.group(1)), int(m.group(2))))
                return
        events.append(Notice(f"AT+CSQ: {codes.describe_error(error or 'no +CSQ line')}"))

    def _read_registration(self, cmd: Command, error: str | None, events: list[Any]) -> None:
        stat = _registration(cmd.lines)
        if error is None and stat is not None:
            events.append(Registration(stat))
        else:
            events.append(Notice(f"AT+CREG?: {codes.describe_error(error or 'no +CREG line')}"))

    # --- time ---------------------------------------------------------------------------

    def handle_timer(self, now: float) -> list[Any]:
        events: list[Any] = []
        cmd = self._current
        if cmd is not None and now >= cmd.deadline:
            # The part goes back with the event, so it is no longer held; the rest waits:
            # a modem that stops answering is reopened (the link closes us).
            self._current = None
            self._prompt = False
            send = cmd.kind is Kind.SEND
            if send:
                self._sends -= 1
            seconds = self.response_timeout if send else self.command_timeout
            events.append(Timeout(cmd.token if send else None, cmd.line, seconds))
            return events
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._queue.append(Command(Kind.REGISTER, "AT+CREG?"))
        if self._poll_at is not None and now >= self._poll_at and not self._polling:
            self._poll_at = None
            self._polling = True
            self._queue.append(Command(Kind.SIGNAL, "AT+CSQ"))
            self._queue.append(Command(Kind.REGISTRATION, "AT+CREG?"))
            self._queue.append(Command(Kind.OPERATOR, "AT+COPS?"))
        self._next(now)
        return events

    def _next(self, now: float) -> None:
        """Write the next command if none is waiting for its result."""
        if self._current is not None or not self._queue or self.state is State.CLOSED:
            return
        cmd = self._current = self._queue.popleft()
        if cmd.kind is Kind.SEND:
            self._prompt = True
            cmd.deadline = now + self.response_timeout
        else:
            cmd.deadline = now + self.command_timeout
        self._out.append(cmd.line.encode("latin-1") + b"\r")


def _line_end(buf: bytes) -> int:
    """Index of the first CR or LF, or -1."""
    cr, lf = buf.find(b"\r"), buf.find(b"\n")
    if cr < 0:
        return lf
    return cr if lf < 0 else min(cr, lf)


def _registration(lines: list[str]) -> int | None:
    """<stat> of an AT+CREG? answer, "+CREG: <n>,<stat>[,<lac>,<ci>]"."""
    for line in lines:
        if line.startswith("+CREG:"):
            fields = line[6:].split(",")
            if len(fields) >= 2 and fields[1].strip().isdigit():
                return int(fields[1].strip())
    return None
