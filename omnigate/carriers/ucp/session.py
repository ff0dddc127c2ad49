"""One UCP/EMI session as a sans-I/O state machine: bytes and time in, events and bytes out.

The same shape as the SMPP session (STYLE §4, aioquic's QuicConnection): the owner
feeds what the socket read with `feed(data, now)`, writes `data_to_send()`, and calls
`handle_timer(now)` at `next_deadline()`; nothing here touches a socket or a clock.

What the session owns, per EMI 4.x:

- Login: OT 60 open session first; nothing is submitted before its positive result.
- TRN: our operations are numbered 00, 01, ... 99, 00 in the order sent (EMI §2); a
  number is never reused while its operation waits for a result, so the window is
  also bounded by the distance to the oldest outstanding TRN.
- The window of outstanding OT 51 (its size is the SMSC's to allow, agreed out of
  band), response deadlines, and keep-alive: after `keepalive` seconds without a
  frame from the SMSC, an OT 31 alert, whose result is due like any other.
- The SMSC's operations: OT 52 (MO) and OT 53 (delivery notification) are answered
  with a positive result carrying "AdC:SCTS" in SM, or a negative one with the EC of
  what could not be read, so the SMSC keeps the message; OT 31 is answered too; any
  other operation gets EC 03 and the session carries on. A frame with a wrong LEN or
  checksum that is an operation gets EC 02 / 01; a damaged result is logged and left
  to its deadline.

Requests carry an opaque `token` (the link passes its Part); it comes back in the
event that settles them, or from `close()` when the connection ends first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from omnigate.carriers.sessionbase import SessionBase, SessionError
from omnigate.carriers.window import Window
from omnigate.model import FailureKind

from . import codec
from .codec import ALERT, DELIVER, MAX_FRAME, NOTIFY, SESSION, SUBMIT, TRN_MODULO, CodecError

_frame = codec.frame
_read_frame = codec.read_frame


class State(enum.Enum):
    OPEN = "open"  # connected, not logged in
    LOGGING_IN = "logging in"  # OT 60 sent, waiting for its result
    READY = "ready"  # logged in: submits go
    CLOSED = "closed"  # refused, broken or lost: the connection is done


_READY = State.READY  # Enum class attribute access is slow in CPython 3.11
_CLOSED = State.CLOSED

_TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.LOGGING_IN, State.CLOSED}),
    State.LOGGING_IN: frozenset({State.READY, State.CLOSED}),
    State.READY: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


# --- events ---------------------------------------------------------------------------


@dataclass(slots=True)
class LoggedIn:
    pass


@dataclass(slots=True)
class LoginFailed:
    ec: str
    reason: str  # 'EC 07 (authentication failure)'


@dataclass(slots=True)
class SubmitOk:
    token: Any
    sm: str  # the SMSC's "AdC:SCTS", the carrier reference


@dataclass(slots=True)
class SubmitFailed:
    token: Any
    ec: str
    kind: FailureKind
    reason: str


@dataclass(slots=True)
class ResponseTimeout:
    """No result within `response_timeout`; the request is forgotten (its token, if any,
    is here) and a late result will be reported as Unexpected."""

    ot: int
    trn: int
    token: Any


@dataclass(slots=True)
class MoReceived:
    deliver: codec.Deliver


@dataclass(slots=True)
class NotificationReceived:
    notification: codec.Notification


@dataclass(slots=True)
class ProtocolError:
    """The byte stream cannot be framed any more: the session is CLOSED."""

    reason: str


@dataclass(slots=True)
class Unexpected:
    """Something odd the session survived; worth a log line."""

    reason: str


Event = (LoggedIn | LoginFailed | SubmitOk | SubmitFailed | ResponseTimeout | MoReceived
         | NotificationReceived | ProtocolError | Unexpected)


class Session(SessionBase):
    """UCP/EMI client session on one connection; see the module docstring."""

    PROTOCOL = "UCP"
    TRANSITIONS = _TRANSITIONS
    CLOSED = _CLOSED

    def __init__(self, *, user: str, password: str, window: int = 10,
                 keepalive: float = 30.0, response_timeout: float = 10.0,
                 login_ton: str = "6", login_npi: str = "5",
                 alert_pid: str = codec.PID_PC_TCPIP) -> None:
        if not 1 <= window < TRN_MODULO:
            raise ValueError(f"window must be 1-{TRN_MODULO - 1} (TRN is two digits, one "
                             "kept for the alert)")
        self.window = window
        self.keepalive = keepalive
        self.response_timeout = response_timeout
        self.user = user
        self._login = codec.login_data(user, password, login_ton, login_npi)
        self._alert = codec.alert_data(user, alert_pid)
        self._next_trn = 0
        # Outstanding operations by TRN, in the order sent: the oldest is the oldest TRN
        # still in use. `last` is the last frame from the SMSC.
        self._open(State.OPEN, Window(response_timeout=response_timeout, keepalive=keepalive,
                                      submit_op=SUBMIT, probe_op=ALERT))

    # --- state ------------------------------------------------------------------------

    @property
    def window_room(self) -> int:
        """Submits that may go now: window room, and TRNs up to the oldest one in use."""
        if self.state is not _READY:
            return 0
        win = self._win
        room = self.window - win.submits
        if win.pending:
            free = (next(iter(win.pending)) - self._next_trn) % TRN_MODULO
            if free < room:
                return free
        return room

    def _send(self, ot: int, data: bytes, token: Any, now: float) -> int:
        trn = self._next_trn
        win = self._win
        if trn in win.pending:
            raise SessionError(f"TRN {trn:02d} is still in use")
        self._next_trn = (trn + 1) % TRN_MODULO
        self._out.append(_frame(trn, b"O", ot, data))
        if ot == SUBMIT:
            win.add_submit(trn, token, now)
        else:
            win.add(trn, ot, token, now)
        return trn

    # --- requests from the owner -----------------------------------------------------

    def login(self, now: float) -> int:
        """Send OT 60 (open session); LoggedIn or LoginFailed follows."""
        self._set_state(State.LOGGING_IN)
        self._win.last = now
        return self._send(SESSION, self._login, None, now)

    def submit(self, body: bytes, token: Any, now: float) -> int:
        """Send an OT 51 with these fields (codec.submit_data); returns its TRN. Raises
        SessionError unless `window_room` says there is room: the owner checks first."""
        if self.state is not _READY:
            raise SessionError(f"OT 51 while {self.state.value}")
        if self._win.submits >= self.window:
            raise SessionError(f"OT 51 with the window full ({self.window})")
        return self._send(SUBMIT, body, token, now)

    # --- time -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._win.next_deadline(self.state is _READY)

    def handle_timer(self, now: float) -> list[Event]:
        """Expire operations past their deadline; after `keepalive` seconds without a
        frame from the SMSC, send an OT 31 alert (if a TRN is free: if none is, we are
        waiting for results anyway)."""
        win = self._win
        events: list[Event] = [ResponseTimeout(p[0], trn, p[2]) for trn, p in win.expire(now)]
        if win.probe_due(now, self.state is _READY) and self._next_trn not in win.pending:
            self._send(ALERT, self._alert, None, now)
        return events

    # --- bytes from the SMSC ----------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Event]:
        """Take bytes read from the socket; return what they mean, in order."""
        events: list[Event] = []
        if self.state is _CLOSED:
            return events
        buf = self._buf + data if self._buf else data
        n = len(buf)
        pos = 0
        win = self._win
        while pos < n:
            start = buf.find(b"\x02", pos)
            if start < 0:
                events.append(Unexpected(f"{n - pos} octets outside any frame skipped"))
                pos = n
                break
            if start > pos:
                events.append(Unexpected(f"{start - pos} octets outside any frame skipped"))
            end = buf.find(b"\x03", start + 1)
            if end < 0:
                if n - start > MAX_FRAME + 2:
                    self._set_state(_CLOSED)
                    self._buf = b""
                    events.append(ProtocolError(f"no ETX within {MAX_FRAME + 2} octets"))
                    return events
                pos = start
                break
            restart = buf.rfind(b"\x02", start + 1, end)
            if restart >= 0:
                # A frame cut short by another STX: resynchronise on the later one.
                events.append(Unexpected(f"frame without ETX skipped: {buf[start:restart]!r}"[:200]))
                start = restart
            pos = end + 1
            win.last = now
            self._on_frame(buf[start + 1:end], events)
            if self.state is _CLOSED:
                return events
        self._buf = buf[pos:] if pos < n else b""
        return events

    def _on_frame(self, inner: bytes, events: list[Event]) -> None:
        try:
            trn, kind, ot, fields = _read_frame(inner)
        except codec.HeaderError as exc:
            if exc.kind == b"O":
                self._out.append(_frame(exc.trn, b"R", exc.ot, codec.nack_data(exc.ec)))
                events.append(Unexpected(f"{codec.op_name(exc.ot)} TRN {exc.trn:02d} "
                                         f"answered EC {exc.ec}: {exc.reason}"))
            else:
                events.append(Unexpected(f"damaged result for TRN {exc.trn:02d} ignored: "
                                         f"{exc.reason}"))
            return
        except CodecError as exc:
            events.append(Unexpected(f"unreadable frame ignored: {exc.reason}"))
            return
        if kind == b"R":
            self._on_result(trn, ot, fields, events)
        else:
            self._on_operation(trn, ot, fields, events)

    def _on_result(self, trn: int, result_ot: int, f: list[bytes], events: list[Event]) -> None:
        p = self._win.take(trn, result_ot)  # the TRN of another operation keeps waiting
        if p is None:
            events.append(Unexpected(f"result {codec.op_name(result_ot)} for TRN {trn:02d}, "
                                     "which we are not waiting for (late, after its "
                                     "timeout?)"))
            return
        ot, _, token, _ = p
        ack = f[0] == b"A"
        ec = sm = ""
        if not ack:  # N/EC/SM
            ec = f[1].decode("latin-1") if len(f) > 1 else ""
            sm = f[2].decode("latin-1") if len(f) > 2 else ""
        if ot == SUBMIT:
            if ack:
                # A/MVP/SM: SM is "AdC:SCTS". Read it from the end, so an SMSC that
                # leaves MVP out still gives its reference.
                events.append(SubmitOk(token, f[-1].decode("latin-1") if len(f) > 1 else ""))
            else:
                events.append(SubmitFailed(token, ec, codec.error_kind(ec),
                                           codec.error_text(ec, sm)))
        elif ot == SESSION:
            if ack:
                self._set_state(_READY)
                events.append(LoggedIn())
            else:
                self._set_state(_CLOSED)
                events.append(LoginFailed(ec, codec.error_text(ec, sm)))
        # ALERT: a negative result is proof of life too (`take` ended the probe).

    def _on_operation(self, trn: int, ot: int, f: list[bytes], events: list[Event]) -> None:
        if ot in (DELIVER, NOTIFY):
            try:
                if len(f) != codec.N_5X:
                    raise CodecError("02", f"{len(f)} fields where {codec.N_5X} belong")
                event: Event = (MoReceived(codec.parse_deliver(f)) if ot == DELIVER
                                else NotificationReceived(codec.parse_notification(f)))
            except CodecError as exc:
                # Refused, so the SMSC keeps the message (and may try again).
                self._out.append(_frame(trn, b"R", ot, codec.nack_data(exc.ec, exc.reason)))
                events.append(Unexpected(f"{codec.op_name(ot)} TRN {trn:02d} answered "
                                         f"EC {exc.ec}: {exc.reason}"))
                return
            adc = f[codec.I_ADC].decode("latin-1")
            scts = f[codec.I_SCTS].decode("latin-1")
            self._out.append(_frame(trn, b"R", ot, codec.ack_data(ot, f"{adc}:{scts}")))
            events.append(event)
        elif ot == ALERT:
            self._out.append(_frame(trn, b"R", ot, codec.ack_data(ALERT)))
        else:
            self._out.append(_frame(trn, b"R", ot, codec.nack_data("03")))
            events.append(Unexpected(f"answered {codec.op_name(ot)} TRN {trn:02d} with "
                                     "EC 03 (operation not supported)"))
