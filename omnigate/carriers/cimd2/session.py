"""One CIMD2 session as a sans-I/O state machine: bytes and time in, events and bytes out.

Shaped like the SMPP session (STYLE §4, aioquic's QuicConnection): the owner feeds what
the socket read with `feed(data, now)`, writes whatever `data_to_send()` returns and
calls `handle_timer(now)` at `next_deadline()`. Nothing here touches a socket or a clock.

The session owns what CIMD2 makes per connection: the login state, the application's
packet numbers (odd, 001..255 wrapping, §4), the window of requests awaiting their
response keyed by packet number, keep-alive (alive, 40) and response deadlines. It
answers the SMS Center's deliver message (20), deliver status report (23) and alive
itself; a request it does not know gets a general error response (98, error 1
"unexpected operation") and a packet with a wrong checksum a NACK (99), and the session
carries on. A NACK of one of our own packets resends it once with the same number
(the SMS Center could not read it: a line fault, not the part's); a second NACK fails it.
Policy - what a timeout or a refusal means for the parts, reconnecting, rate - is the link's.

Requests carry an opaque `token` (the link passes its Part); it comes back in the event
that settles the request, or from `close()` when the connection ends first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from omnigate.carriers.sessionbase import SessionBase, SessionError
from omnigate.carriers.window import Request, Window
from omnigate.model import FailureKind

from . import codec
from .codec import (
    ALIVE,
    ALIVE_RESP,
    DELIVER_MESSAGE,
    DELIVER_MESSAGE_RESP,
    DELIVER_STATUS_REPORT,
    DELIVER_STATUS_REPORT_RESP,
    ERROR_CODE,
    ERROR_TEXT,
    GENERAL_ERROR_RESP,
    LOGIN,
    LOGIN_RESP,
    LOGOUT,
    LOGOUT_RESP,
    MAX_PACKET,
    NACK,
    SUBMIT,
    SUBMIT_RESP,
    FrameError,
    Packet,
)

# Headers of submit packets by number, with the sum of their bytes: the checksum of a
# submit is then one sum() over its body (the hot path).
_SUBMIT_HEADS = {n: (b"\x02%02d:%03d\t" % (SUBMIT, n), sum(b"\x02%02d:%03d\t" % (SUBMIT, n)))
                 for n in range(codec.FIRST_NUMBER, codec.LAST_NUMBER + 1, 2)}


# Bodiless answers (deliver responses, alive response) by (op, number, checksum).
_ANSWERS: dict[tuple[int, int, bool], bytes] = {}


class State(enum.Enum):
    OPEN = "open"  # connected, not logged in
    LOGGING_IN = "logging in"  # login sent, waiting for its response
    READY = "ready"  # logged in
    LOGGING_OUT = "logging out"  # logout sent, waiting for its response
    CLOSED = "closed"  # logged out, refused, broken or lost: the connection is done


_READY = State.READY  # Enum class attribute access is slow in CPython 3.11
_CLOSED = State.CLOSED

_TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.LOGGING_IN, State.CLOSED}),
    State.LOGGING_IN: frozenset({State.READY, State.CLOSED}),
    State.READY: frozenset({State.LOGGING_OUT, State.CLOSED}),
    State.LOGGING_OUT: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


# --- events ------------------------------------------------------------------------------


@dataclass(slots=True)
class LoggedIn:
    pass


@dataclass(slots=True)
class LoginFailed:
    code: int | None  # error code (900), or None for a NACK or a general error response
    reason: str


@dataclass(slots=True)
class SubmitOk:
    token: Any
    timestamp: str  # service centre time stamp (060): with the address, names the message
    destination: str  # destination address (021) as the SMS Center wrote it, or ""


@dataclass(slots=True)
class SubmitFailed:
    token: Any
    code: int | None
    kind: FailureKind
    reason: str


@dataclass(slots=True)
class ResponseTimeout:
    """No response within `response_timeout`; the request is forgotten (its token, if
    any, is here) and a late response is ignored."""

    op: int
    number: int
    token: Any


@dataclass(slots=True)
class MoReceived:
    packet: Packet  # a deliver message (20), already answered


@dataclass(slots=True)
class ReportReceived:
    packet: Packet  # a deliver status report (23), already answered


@dataclass(slots=True)
class LoggedOut:
    by_peer: bool  # the SMS Center sent logout (we answered) rather than answering ours


@dataclass(slots=True)
class ProtocolError:
    """The byte stream cannot be framed any more: the session is CLOSED."""

    reason: str


@dataclass(slots=True)
class Unexpected:
    """Something odd the session survived (late response, bad checksum, unknown
    operation); worth a log line."""

    reason: str


Event = (LoggedIn | LoginFailed | SubmitOk | SubmitFailed | ResponseTimeout | MoReceived
         | ReportReceived | LoggedOut | ProtocolError | Unexpected)


class Session(SessionBase):
    """CIMD2 client session on one connection; see the module docstring."""

    PROTOCOL = "CIMD2"
    TRANSITIONS = _TRANSITIONS
    CLOSED = _CLOSED

    def __init__(self, *, user: str, password: str, window: int = 1, keepalive: float = 60.0,
                 response_timeout: float = 10.0, checksum: bool = True,
                 send_window_size: bool | None = None) -> None:
        if not 1 <= window < codec.NUMBERS:
            raise ValueError(f"window must be 1..{codec.NUMBERS - 1}: one packet number is "
                             "kept for alive and logout")
        self.window = window
        self.keepalive = keepalive
        self.response_timeout = response_timeout
        self.checksum = checksum
        self._credentials = (user, password)
        # Ask for the window at login (parameter 019) only when it is not the default 1:
        # an SMS Center that does not allow it then says so (error 104 or 105).
        self._send_window = window > 1 if send_window_size is None else send_window_size
        self._next = codec.FIRST_NUMBER
        # Outstanding requests by packet number. A request's `extra` is its packet, kept
        # for one resend after a NACK, and None once resent. `last` is the last packet in
        # either direction, for keep-alive.
        self._open(State.OPEN, Window(response_timeout=response_timeout, keepalive=keepalive,
                                      submit_op=SUBMIT, probe_op=ALIVE))

    # --- state -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state is _READY

    @property
    def window_room(self) -> int:
        if self.state is not _READY:
            return 0
        return self.window - self._win.submits

    def _number(self) -> int:
        n = self._next
        if n in self._win.pending:
            raise SessionError(f"packet number {n:03d} is still awaiting its response")
        self._next = n + 2 if n < codec.LAST_NUMBER else codec.FIRST_NUMBER
        return n

    def _request(self, op: int, body: bytes, token: Any, now: float) -> int:
        n = self._number()
        data = codec.packet(op, n, body, self.checksum)
        self._out.append(data)
        self._win.add(n, op, token, now, data)
        self._win.last = now
        return n

    # --- requests from the owner ------------------------------------------------------

    def login(self, now: float) -> int:
        self._set_state(State.LOGGING_IN)
        user, password = self._credentials
        body = codec.param(codec.USER_IDENTITY, user) + codec.param(codec.PASSWORD, password)
        if self._send_window:
            body += codec.param(codec.WINDOW_SIZE, self.window)
        return self._request(LOGIN, body, None, now)

    def submit(self, body: bytes, token: Any, now: float) -> int:
        """Send a submit message with these parameters (from the codec) and return its
        packet number. SessionError when not logged in or the window is full: the owner
        checks `window_room` first."""
        if self.state is not _READY:
            raise SessionError(f"submit while {self.state.value}")
        win = self._win
        if win.submits >= self.window:
            raise SessionError(f"submit with the window full ({self.window})")
        n = self._next
        if n in win.pending:
            raise SessionError(f"packet number {n:03d} is still awaiting its response")
        self._next = n + 2 if n < 255 else 1
        head, head_sum = _SUBMIT_HEADS[n]
        if self.checksum:
            data = b"%s%s%02X\x03" % (head, body, (head_sum + sum(body)) & 0xFF)
        else:
            data = head + body + b"\x03"
        self._out.append(data)
        win.add_submit(n, token, now, data)
        win.last = now
        return n

    def logout(self, now: float) -> int:
        """Start a graceful logout; `LoggedOut(by_peer=False)` follows its response.
        Submits still outstanding keep their deadlines and may still be answered."""
        self._set_state(State.LOGGING_OUT)
        return self._request(LOGOUT, b"", None, now)

    # --- time ----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timer` next has something to do, or None."""
        return self._win.next_deadline(self.state is _READY)

    def handle_timer(self, now: float) -> list[Event]:
        """Expire requests past their deadline; after `keepalive` seconds without a packet
        either way, send alive (40), whose response is due like any other."""
        win = self._win
        events: list[Event] = [ResponseTimeout(p[0], n, p[2]) for n, p in win.expire(now)]
        if win.probe_due(now, self.state is _READY) and len(win.pending) < codec.NUMBERS:
            self._request(ALIVE, b"", None, now)
        return events

    # --- bytes from the SMS Center --------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Event]:
        """Take bytes read from the socket; return what they mean, in order."""
        events: list[Event] = []
        if self.state is _CLOSED:
            return events
        buf = self._buf + data if self._buf else data
        pos = 0
        n = len(buf)
        win = self._win
        while pos < n:
            start = buf.find(b"\x02", pos)
            if start < 0:
                events.append(Unexpected(f"{n - pos} bytes outside any packet ignored"))
                pos = n
                break
            if start > pos:
                events.append(Unexpected(f"{start - pos} bytes before STX ignored"))
            end = buf.find(b"\x03", start + 1)
            if end < 0:
                if n - start > MAX_PACKET:
                    self._protocol_error(events, f"no ETX within {MAX_PACKET} bytes of STX")
                    return events
                pos = start
                break
            pos = end + 1
            nested = buf.rfind(b"\x02", start + 1, end)
            if nested >= 0:  # a packet cut short by a new STX: resynchronise on the last
                events.append(Unexpected(f"{nested - start} bytes of a packet without ETX "
                                         "ignored"))
                start = nested
            win.last = now
            self._on_frame(buf[start + 1:end], events)
            if self.state is _CLOSED:
                return events
        self._buf = buf[pos:] if pos < n else b""
        return events

    def _protocol_error(self, events: list[Event], reason: str) -> None:
        self._set_state(_CLOSED)
        self._buf = b""
        events.append(ProtocolError(reason))

    def _answer(self, op: int, number: int, body: bytes = b"") -> None:
        if body:
            self._out.append(codec.packet(op, number, body, self.checksum))
            return
        key = (op, number, self.checksum)
        data = _ANSWERS.get(key)
        if data is None:  # the SMS Center numbers 000..254: few distinct answers
            data = codec.packet(op, number, b"", self.checksum)
            if len(_ANSWERS) < 4096:
                _ANSWERS[key] = data
        self._out.append(data)

    def _on_frame(self, frame: bytes, events: list[Event]) -> None:
        try:
            pkt = codec.parse(frame)
        except FrameError as exc:
            number = frame[3:6]
            if exc.nack and number.isdigit():
                # §4: a packet with a wrong checksum is answered by NACK, so the SMS
                # Center sends it again.
                self._answer(NACK, int(number))
                events.append(Unexpected(f"NACK sent: {exc.reason}"))
            elif frame[:2].isdigit() and number.isdigit():
                self._answer(GENERAL_ERROR_RESP, int(number),
                             codec.param(ERROR_CODE, exc.code))
                events.append(Unexpected(f"unreadable packet answered with general error "
                                         f"response, error {exc.code}: {exc.reason}"))
            else:
                events.append(Unexpected(f"unreadable packet ignored: {exc.reason}"))
            return
        op = pkt.op
        if op == SUBMIT_RESP:
            self._on_submit_resp(pkt, events)
        elif op == DELIVER_STATUS_REPORT:
            self._answer(DELIVER_STATUS_REPORT_RESP, pkt.number)
            events.append(ReportReceived(pkt))
        elif op == DELIVER_MESSAGE:
            self._answer(DELIVER_MESSAGE_RESP, pkt.number)
            events.append(MoReceived(pkt))
        else:
            self._on_other(pkt, events)

    def _take(self, pkt: Packet, op: int, events: list[Event]) -> Request | None:
        """The request `pkt` answers, removed from the window; None (and an Unexpected
        event) if no request of that operation awaits that packet number."""
        p = self._win.take_submit(pkt.number) if op == SUBMIT else self._win.take(pkt.number, op)
        if p is None:
            events.append(Unexpected(f"{pkt.name} {pkt.number:03d} answers nothing we are "
                                     "waiting for (answered late, after its timeout?)"))
        return p

    def _on_submit_resp(self, pkt: Packet, events: list[Event]) -> None:
        p = self._take(pkt, SUBMIT, events)
        if p is None:
            return
        params = pkt.params
        code = params.get(ERROR_CODE)
        if code is None:
            ts = params.get(codec.SERVICE_CENTRE_TIME_STAMP)
            if ts is None:
                events.append(SubmitFailed(p[2], None, FailureKind.TEMPORARY,
                                           "submit response without error code or service "
                                           "centre time stamp"))
                return
            dest = params.get(codec.DESTINATION_ADDRESS, b"")
            events.append(SubmitOk(p[2], ts.decode("latin-1"), dest.decode("latin-1")))
            return
        events.append(self._failed(p[2], pkt))

    @staticmethod
    def _failed(token: Any, pkt: Packet) -> SubmitFailed:
        code = pkt.error
        if code is None:
            return SubmitFailed(token, None, FailureKind.TEMPORARY,
                                f"error code {pkt.text(ERROR_CODE)!r} unreadable")
        return SubmitFailed(token, code, codec.error_kind(code),
                            codec.error_text(code, pkt.text(ERROR_TEXT)))

    def _on_other(self, pkt: Packet, events: list[Event]) -> None:
        op = pkt.op
        state = self.state
        if op == ALIVE_RESP:
            self._take(pkt, ALIVE, events)
        elif op == LOGIN_RESP:
            if state is not State.LOGGING_IN or self._take(pkt, LOGIN, events) is None:
                return
            code = pkt.error
            if code is None and ERROR_CODE not in pkt.params:
                self._set_state(_READY)
                events.append(LoggedIn())
            else:
                self._set_state(_CLOSED)
                events.append(LoginFailed(code, codec.error_text(
                    code if code is not None else -1, pkt.text(ERROR_TEXT))))
        elif op == LOGOUT_RESP:
            if state is State.LOGGING_OUT and self._take(pkt, LOGOUT, events) is not None:
                self._set_state(_CLOSED)
                events.append(LoggedOut(by_peer=False))
        elif op == NACK:
            self._on_nack(pkt, events)
        elif op == GENERAL_ERROR_RESP:
            self._on_general_error(pkt, events)
        elif op == ALIVE:
            self._answer(ALIVE_RESP, pkt.number)
        elif op == LOGOUT:
            self._answer(LOGOUT_RESP, pkt.number)
            self._set_state(_CLOSED)
            events.append(LoggedOut(by_peer=True))
        elif op >= codec.RESPONSE:
            events.append(Unexpected(f"{pkt.name} {pkt.number:03d} answers nothing we sent"))
        else:
            # A request we do not serve: general error response, "unexpected operation".
            self._answer(GENERAL_ERROR_RESP, pkt.number,
                         codec.param(ERROR_CODE, codec.ERR_UNEXPECTED_OPERATION))
            events.append(Unexpected(f"answered {pkt.name} {pkt.number:03d} with general "
                                     "error response, error 1 unexpected operation"))

    def _on_nack(self, pkt: Packet, events: list[Event]) -> None:
        """The SMS Center could not read our packet (checksum or packet number): send it
        again, once, with the same number; a second NACK fails the request."""
        win = self._win
        p = win.pending.get(pkt.number)
        if p is None:
            events.append(Unexpected(f"NACK {pkt.number:03d} for a packet we are not "
                                     "waiting for"))
            return
        if p[3] is not None:  # its packet, kept until the first resend
            win.renew(pkt.number, win.last)  # a fresh deadline; None: resent
            self._out.append(p[3])
            events.append(Unexpected(f"NACK for {codec.operation_name(p[0])} "
                                     f"{pkt.number:03d}; sent again"))
            return
        win.pop(pkt.number)
        self._settle_refused(p, None, f"NACK twice for packet {pkt.number:03d}", events)

    def _on_general_error(self, pkt: Packet, events: list[Event]) -> None:
        """A general error response (98) refuses one of our packets outright."""
        p = self._win.pop(pkt.number)
        code = pkt.error
        reason = "general error response, " + codec.error_text(
            code if code is not None else -1, pkt.text(ERROR_TEXT))
        if p is None:
            events.append(Unexpected(f"{reason} for packet {pkt.number:03d}, which we are "
                                     "not waiting for"))
            return
        self._settle_refused(p, code, reason, events)

    def _settle_refused(self, p: Request, code: int | None, reason: str,
                        events: list[Event]) -> None:
        op = p[0]
        if op == SUBMIT:
            kind = codec.error_kind(code) if code is not None else FailureKind.TEMPORARY
            events.append(SubmitFailed(p[2], code, kind, reason))
        elif op == LOGIN:
            self._set_state(_CLOSED)
            events.append(LoginFailed(code, reason))
        # ALIVE refused is an answer too: the SMS Center is there (`pop` ended the probe).
        elif op == LOGOUT:
            self._set_state(_CLOSED)
            events.append(LoggedOut(by_peer=False))

