"""One SMPP 3.4 session as a sans-I/O state machine: bytes and time in, events and bytes out.

Shaped like aioquic's QuicConnection (STYLE §4): the owner feeds what the socket read
with `feed(data, now)`, sends whatever `data_to_send()` returns, and calls
`handle_timer(now)` at `next_deadline()`. Nothing here touches a socket, a clock or
the event loop, so every path is tested in memory with an injected `now`.

The session owns what SMPP makes per-connection: the bind state (§2.2), sequence
numbers (§3.2: 1..0x7FFFFFFF), the window of outstanding requests keyed by sequence
number, keep-alive (enquire_link, §4.11) and response deadlines. It answers the
SMSC's enquire_link, unbind and deliver_sm itself, nacks what it does not know
(generic_nack ESME_RINVCMDID, §4.3) and carries on. Policy - what a timeout or an
unbind means for the parts, reconnecting, rate - belongs to the link.

Requests carry an opaque `token` (the link passes its Part); it comes back in the
event that settles the request and from `close()` when the connection ends first.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnigate.carriers.sessionbase import SessionBase, SessionError
from omnigate.carriers.window import Window
from omnigate.model import FailureKind

from . import codec
from .codec import (
    BIND_RECEIVER,
    BIND_TRANSCEIVER,
    BIND_TRANSMITTER,
    DELIVER_SM,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    HEADER,
    HEADER_LENGTH,
    MAX_PDU_LENGTH,
    MESSAGE_ID_MAX,
    RESPONSE_BIT,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    UNBIND,
    UNBIND_RESP,
)

_pack_header = HEADER.pack

MAX_SEQUENCE = 0x7FFFFFFF  # §3.2: sequence_number 0x00000001 to 0x7FFFFFFF

BIND_MODES = {"transmitter": BIND_TRANSMITTER, "receiver": BIND_RECEIVER,
              "transceiver": BIND_TRANSCEIVER}


class State(enum.Enum):
    OPEN = "open"  # connected, not bound (§2.2)
    BINDING = "binding"  # bind sent, waiting for bind_resp
    BOUND = "bound"
    UNBINDING = "unbinding"  # unbind sent, waiting for unbind_resp
    CLOSED = "closed"  # unbound, refused, broken or lost: the connection is done


# Module-level aliases for the hot paths: attribute access on an Enum class costs
# 100-200 ns in CPython 3.11, a global lookup a tenth of that.
_BOUND = State.BOUND
_CLOSED = State.CLOSED

_TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.BINDING, State.CLOSED}),
    State.BINDING: frozenset({State.BOUND, State.CLOSED}),
    State.BOUND: frozenset({State.UNBINDING, State.CLOSED}),
    State.UNBINDING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


# --- events ---------------------------------------------------------------------------


@dataclass(slots=True)
class Bound:
    system_id: str  # the SMSC's, from bind_resp


@dataclass(slots=True)
class BindFailed:
    status: int
    reason: str  # 'ESME_RINVPASWD (0x0000000E)'


@dataclass(slots=True)
class SubmitOk:
    token: Any
    message_id: str


@dataclass(slots=True)
class SubmitFailed:
    token: Any
    status: int
    kind: FailureKind
    reason: str


@dataclass(slots=True)
class ResponseTimeout:
    """No answer to a request within `response_timeout`; the request is forgotten
    (its token, if any, is here) and a late answer will be ignored."""

    command_id: int
    sequence: int
    token: Any


@dataclass(slots=True)
class MoReceived:
    pdu: codec.DeliverSm


@dataclass(slots=True)
class ReceiptReceived:
    receipt: codec.Receipt
    pdu: codec.DeliverSm


@dataclass(slots=True)
class Unbound:
    by_peer: bool  # the SMSC sent unbind (we answered) rather than answering ours


@dataclass(slots=True)
class ProtocolError:
    """The byte stream cannot be framed any more: the session is CLOSED."""

    reason: str


@dataclass(slots=True)
class Unexpected:
    """Something odd that the session survived (late response, nack of nothing,
    undecodable deliver_sm that we answered with an error); worth a log line."""

    reason: str


Event = (Bound | BindFailed | SubmitOk | SubmitFailed | ResponseTimeout | MoReceived
         | ReceiptReceived | Unbound | ProtocolError | Unexpected)


class Peer(SessionBase):
    """What both ends of an SMPP connection share: the states, sequence numbers and the
    framing of the byte stream. The client (`Session`) and the SMPP server's session
    (`omnigate.api.smppsession`) add what their role answers, in `_on_pdu`."""

    PROTOCOL = "SMPP"
    TRANSITIONS = _TRANSITIONS
    CLOSED = _CLOSED
    _next_seq: int

    @property
    def bound(self) -> bool:
        return self.state is _BOUND

    def _sequence(self) -> int:
        seq = self._next_seq
        self._next_seq = 1 if seq >= MAX_SEQUENCE else seq + 1
        return seq

    # Each role's handler of one framed PDU: (command_id, status, sequence, body, events).
    _on_pdu: Callable[[int, int, int, bytes, list[Any]], None]

    def feed(self, data: bytes, now: float) -> list[Any]:
        """Take bytes read from the socket; return what they mean, in order."""
        events: list[Any] = []
        if self.state is _CLOSED:
            return events
        buf = self._buf + data if self._buf else data
        n = len(buf)
        pos = 0
        unpack = HEADER.unpack_from
        win = self._win
        on_pdu = self._on_pdu
        while n - pos >= HEADER_LENGTH:
            length, command_id, status, seq = unpack(buf, pos)
            if length < HEADER_LENGTH or length > MAX_PDU_LENGTH:
                # §3.2: nothing after a bad command_length can be framed again.
                self._protocol_error(
                    events, f"command_length {length} outside {HEADER_LENGTH}..{MAX_PDU_LENGTH}"
                    f" ({codec.command_name(command_id)}, sequence {seq})")
                return events
            end = pos + length
            if end > n:
                break
            body = buf[pos + HEADER_LENGTH:end]
            pos = end
            win.last = now
            on_pdu(command_id, status, seq, body, events)
            if self.state is _CLOSED:
                return events
        if n - pos >= 4:
            # Refuse an absurd length as soon as it is readable, not after buffering it.
            length = int.from_bytes(buf[pos:pos + 4], "big")
            if length < HEADER_LENGTH or length > MAX_PDU_LENGTH:
                self._protocol_error(
                    events, f"command_length {length} outside {HEADER_LENGTH}..{MAX_PDU_LENGTH}")
                return events
        self._buf = buf[pos:] if pos < n else b""
        return events

    def _protocol_error(self, events: list[Any], reason: str) -> None:
        self._set_state(_CLOSED)
        self._buf = b""
        events.append(ProtocolError(reason))


class Session(Peer):
    """SMPP client session on one connection; see the module docstring."""

    def __init__(self, *, mode: str, system_id: str, password: str, system_type: str = "",
                 window: int = 10, enquire_link: float = 30.0,
                 response_timeout: float = 10.0) -> None:
        if mode not in BIND_MODES:
            raise ValueError(f"bind mode must be one of {sorted(BIND_MODES)}, not {mode!r}")
        if window < 1:
            raise ValueError("window must be at least 1")
        self.mode = mode
        self.can_submit = mode != "receiver"
        self.window = window
        self.enquire_link = enquire_link
        self.response_timeout = response_timeout
        self._bind_id = BIND_MODES[mode]
        self._credentials = (system_id, password, system_type)
        self.peer_system_id = ""
        self._next_seq = 1
        # Outstanding requests by sequence number; `last` is the last PDU from the SMSC.
        self._open(State.OPEN, Window(response_timeout=response_timeout, keepalive=enquire_link,
                                      submit_op=SUBMIT_SM, probe_op=ENQUIRE_LINK))

    # --- state ------------------------------------------------------------------------

    @property
    def window_room(self) -> int:
        if self.state is not _BOUND or not self.can_submit:
            return 0
        return self.window - self._win.submits

    # --- requests from the owner -----------------------------------------------------

    def bind(self, now: float) -> int:
        self._set_state(State.BINDING)
        seq = self._sequence()
        system_id, password, system_type = self._credentials
        self._out.append(codec.bind(self._bind_id, seq, system_id, password, system_type))
        self._win.add(seq, self._bind_id, None, now)
        self._win.last = now
        return seq

    def submit(self, body: bytes, token: Any, now: float) -> int:
        """Queue a submit_sm with this body (codec.submit_sm_body) and return its sequence
        number. Raises SessionError when not bound for sending or the window is full:
        the owner checks `window_room` first."""
        if self.state is not _BOUND or not self.can_submit:
            raise SessionError(f"submit_sm while {self.state.value} as {self.mode}")
        win = self._win
        if win.submits >= self.window:
            raise SessionError(f"submit_sm with the window full ({self.window})")
        seq = self._next_seq
        self._next_seq = 1 if seq >= MAX_SEQUENCE else seq + 1
        self._out.append(_pack_header(HEADER_LENGTH + len(body), SUBMIT_SM, 0, seq) + body)
        win.add_submit(seq, token, now)
        return seq

    def unbind(self, now: float) -> int:
        """Start a graceful unbind (§4.2); `Unbound(by_peer=False)` follows the answer.
        Submits still outstanding keep their deadlines and may still be answered."""
        self._set_state(State.UNBINDING)
        seq = self._sequence()
        self._out.append(codec.header_only(UNBIND, seq))
        self._win.add(seq, UNBIND, None, now)
        return seq

    # --- time -----------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timer` next has something to do, or None."""
        return self._win.next_deadline(self.state is _BOUND)

    def handle_timer(self, now: float) -> list[Event]:
        """Expire requests past their deadline; after `enquire_link` seconds without a
        PDU from the SMSC, send enquire_link (its answer is due like any other)."""
        win = self._win
        events: list[Event] = [ResponseTimeout(p[0], seq, p[2]) for seq, p in win.expire(now)]
        if win.probe_due(now, self.state is _BOUND):
            seq = self._sequence()
            self._out.append(codec.header_only(ENQUIRE_LINK, seq))
            win.add(seq, ENQUIRE_LINK, None, now)
        return events

    # --- bytes from the SMSC ----------------------------------------------------------

    def _on_pdu(self, command_id: int, status: int, seq: int, body: bytes,
                events: list[Any]) -> None:
        if command_id == SUBMIT_SM_RESP:
            self._on_submit_resp(status, seq, body, events)
        elif command_id == DELIVER_SM:
            self._on_deliver_sm(seq, body, events)
        else:
            self._on_other(command_id, status, seq, body, events)

    def _on_submit_resp(self, status: int, seq: int, body: bytes, events: list[Event]) -> None:
        p = self._win.take_submit(seq)  # another request's sequence number keeps waiting
        if p is None:
            events.append(Unexpected(f"submit_sm_resp for sequence {seq}, which is not in "
                                     "the window (answered late, after its timeout?)"))
            return
        if status == 0:
            end = body.find(b"\x00")  # codec.message_id, inlined: once per part
            events.append(SubmitOk(p[2], (body if end < 0 else body[:end])[:MESSAGE_ID_MAX]
                                   .decode("latin-1")))
        else:
            events.append(SubmitFailed(p[2], status, codec.status_kind(status),
                                       codec.status_text(status)))

    def _on_deliver_sm(self, seq: int, body: bytes, events: list[Event]) -> None:
        try:
            dsm = codec.decode_deliver_sm(body)
        except codec.CodecError as exc:
            # Answer with an error so the SMSC keeps it (and may retry); the session goes on.
            self._out.append(codec.deliver_sm_resp(seq, exc.status))
            events.append(Unexpected(f"undecodable deliver_sm (sequence {seq}), answered "
                                     f"{codec.status_text(exc.status)}: {exc.reason}"))
            return
        self._out.append(codec.deliver_sm_resp(seq))
        if dsm.is_receipt:
            receipt = codec.parse_receipt(dsm)
            if receipt is None:
                events.append(Unexpected(f"delivery receipt (sequence {seq}) names no message"))
            else:
                events.append(ReceiptReceived(receipt, dsm))
        else:
            events.append(MoReceived(dsm))

    def _on_other(self, command_id: int, status: int, seq: int, body: bytes,
                  events: list[Event]) -> None:
        state = self.state
        if command_id == ENQUIRE_LINK:
            self._out.append(codec.header_only(ENQUIRE_LINK_RESP, seq))
        elif command_id == ENQUIRE_LINK_RESP:
            self._win.take(seq, ENQUIRE_LINK)
        elif command_id == codec.BIND_RESPONSE[self._bind_id]:
            if state is not State.BINDING or self._win.take(seq, self._bind_id) is None:
                events.append(Unexpected(f"{codec.command_name(command_id)} while {state.value}"))
            elif status == 0:
                self._set_state(_BOUND)
                self.peer_system_id = codec.bind_resp_system_id(body)
                events.append(Bound(self.peer_system_id))
            else:
                self._set_state(_CLOSED)
                events.append(BindFailed(status, codec.status_text(status)))
        elif command_id == UNBIND:
            # §4.2: answer, and the session is over; held parts are the owner's to settle.
            self._out.append(codec.header_only(UNBIND_RESP, seq))
            self._set_state(_CLOSED)
            events.append(Unbound(by_peer=True))
        elif command_id == UNBIND_RESP:
            if state is State.UNBINDING and self._win.take(seq, UNBIND) is not None:
                self._set_state(_CLOSED)
                events.append(Unbound(by_peer=False))
            else:
                events.append(Unexpected(f"unbind_resp while {state.value}"))
        elif command_id == GENERIC_NACK:
            self._on_nack(status, seq, events)
        elif command_id & RESPONSE_BIT:
            events.append(Unexpected(f"{codec.command_name(command_id)} (sequence {seq}) "
                                     "answers nothing we sent"))
        elif command_id in codec.NO_RESPONSE:
            events.append(Unexpected(f"ignored {codec.command_name(command_id)}"))
        else:
            # §4.3.1: a request we do not support gets generic_nack ESME_RINVCMDID.
            self._out.append(codec.header_only(GENERIC_NACK, seq, codec.ESME_RINVCMDID))
            events.append(Unexpected(f"answered {codec.command_name(command_id)} (sequence "
                                     f"{seq}) with generic_nack ESME_RINVCMDID"))

    def _on_nack(self, status: int, seq: int, events: list[Event]) -> None:
        """generic_nack (§4.3): the SMSC could not read one of our requests."""
        p = self._win.pop(seq)
        if p is None:
            events.append(Unexpected(f"generic_nack {codec.status_text(status)} for sequence "
                                     f"{seq}, which we are not waiting for"))
            return
        command_id, _, token, _ = p
        if command_id == SUBMIT_SM:
            events.append(SubmitFailed(token, status, codec.status_kind(status),
                                       "generic_nack " + codec.status_text(status)))
        elif command_id == self._bind_id:
            self._set_state(_CLOSED)
            events.append(BindFailed(status, "generic_nack " + codec.status_text(status)))
        # ENQUIRE_LINK: some SMSCs nack it (Kannel tolerates it too): still proof of life.
        elif command_id == UNBIND:
            self._set_state(_CLOSED)
            events.append(Unbound(by_peer=False))
