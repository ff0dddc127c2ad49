"""The SMSC's side of one SMPP 3.4 session, sans-I/O: bytes and time in, events and bytes out.

The mirror of `omnigate.carriers.smpp.session.Session` (the client), built on the same
`Peer`: states, sequence numbers and framing are shared, as are the codec and the
`Window` that here holds our deliver_sm awaiting deliver_sm_resp. What differs is who
asks: the client binds and submits, and this session reports that (`BindRequested`,
`SubmitRequested`) and waits for its owner's verdict (`accept_bind`, `answer_submit`,
...), because authenticating and committing are asynchronous and are policy.

A client's submit_sm are answered in the order their commits finish, each with its
own sequence number (§2.6 allows any order). At most `window` of them may wait for an
answer; one more is refused with ESME_RMSGQFUL at once, so a client that ignores its
own window cannot pile work up in the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnigate.carriers.smpp import codec
from omnigate.carriers.smpp.codec import (
    BIND_RECEIVER,
    BIND_TRANSCEIVER,
    BIND_TRANSMITTER,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ENQUIRE_LINK,
    ENQUIRE_LINK_RESP,
    GENERIC_NACK,
    HEADER,
    HEADER_LENGTH,
    RESPONSE_BIT,
    SUBMIT_SM,
    UNBIND,
    UNBIND_RESP,
)
from omnigate.carriers.smpp.session import (
    Peer,
    ProtocolError,
    ResponseTimeout,
    SessionError,
    State,
    Unbound,
    Unexpected,
)
from omnigate.carriers.window import Window

__all__ = ["BindRequested", "DeliverAnswered", "Inactive", "ProtocolError", "ResponseTimeout",
           "ServerSession", "SubmitRequested", "Unbound", "Unexpected"]

_pack_header = HEADER.pack
_BOUND = State.BOUND
_WATCHED = frozenset({State.OPEN, State.BINDING, State.BOUND})  # the inactivity timer runs

BIND_MODES = {BIND_TRANSMITTER: "transmitter", BIND_RECEIVER: "receiver",
              BIND_TRANSCEIVER: "transceiver"}


@dataclass(slots=True)
class BindRequested:
    """A bind to authenticate; answer with `accept_bind` or `refuse_bind`."""

    mode: str  # transmitter, receiver, transceiver
    system_id: str
    password: str  # never logged
    system_type: str


@dataclass(slots=True)
class SubmitRequested:
    """A decoded submit_sm; answer with `answer_submit` or `refuse_submit` (any order)."""

    sequence: int
    sm: codec.DeliverSm


@dataclass(slots=True)
class DeliverAnswered:
    """The client answered a deliver_sm (status 0: taken), or nacked it."""

    token: Any
    status: int


@dataclass(slots=True)
class Inactive:
    """No PDU from the client for `inactivity` seconds."""

    idle: float


Event = (BindRequested | SubmitRequested | DeliverAnswered | Inactive | ResponseTimeout
         | Unbound | ProtocolError | Unexpected)


class ServerSession(Peer):
    """One client connection to the SMPP server; see the module docstring."""

    def __init__(self, *, system_id: str, window: int = 10, inactivity: float = 120.0,
                 response_timeout: float = 10.0, now: float = 0.0) -> None:
        self.system_id = system_id
        self.window = window
        self.inactivity = inactivity
        self.mode = ""
        self.submits_open = 0  # submit_sm decoded and not answered yet
        self._bind_id = 0
        self._bind_seq = 0
        self._next_seq = 1
        # Our deliver_sm are the window's "submits"; the keep-alive idle time is the
        # inactivity timer (we never probe: the client keeps its session alive).
        self._open(State.OPEN, Window(response_timeout=response_timeout, keepalive=inactivity,
                                      submit_op=DELIVER_SM, probe_op=ENQUIRE_LINK))
        self._win.last = now

    # --- state ------------------------------------------------------------------------

    @property
    def receives(self) -> bool:
        """Bound as receiver or transceiver: receipts and MO may go to it."""
        return self.state is _BOUND and self.mode != "transmitter"

    @property
    def window_room(self) -> int:
        """deliver_sm that may be sent now."""
        return self.window - self._win.submits if self.receives else 0

    # --- answers from the owner --------------------------------------------------------

    def accept_bind(self) -> None:
        self._set_state(_BOUND)
        self.mode = BIND_MODES[self._bind_id]
        self._out.append(codec.bind_resp(self._bind_id, self._bind_seq, self.system_id))

    def refuse_bind(self, status: int) -> None:
        """Answer the bind with `status`; the session is over (the owner closes it after
        writing `data_to_send()`)."""
        self._out.append(codec.bind_resp(self._bind_id, self._bind_seq, "", status))
        self._set_state(State.CLOSED)

    def answer_submit(self, sequence: int, message_id: str) -> None:
        self.submits_open -= 1
        if self.state is not State.CLOSED:
            self._out.append(codec.submit_sm_resp(sequence, message_id))

    def refuse_submit(self, sequence: int, status: int) -> None:
        self.submits_open -= 1
        if self.state is not State.CLOSED:
            self._out.append(codec.submit_sm_resp(sequence, "", status))

    # --- requests to the client ----------------------------------------------------------

    def deliver(self, body: bytes, token: Any, now: float) -> int:
        """Send a deliver_sm with this body; SessionError without `window_room`."""
        if self.window_room <= 0:
            raise SessionError(f"deliver_sm while {self.state.value} as {self.mode or '-'} "
                               "or with the window full")
        seq = self._sequence()
        self._out.append(_pack_header(HEADER_LENGTH + len(body), DELIVER_SM, 0, seq) + body)
        self._win.add_submit(seq, token, now)
        return seq

    def unbind(self, now: float) -> None:
        """Ask the client to unbind (stopping, or inactive); it answers, then we close."""
        self._set_state(State.UNBINDING)
        seq = self._sequence()
        self._out.append(codec.header_only(UNBIND, seq))
        self._win.add(seq, UNBIND, None, now)

    # --- time ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._win.next_deadline(self.state in _WATCHED)

    def handle_timer(self, now: float) -> list[Event]:
        win = self._win
        events: list[Event] = [ResponseTimeout(p[0], seq, p[2]) for seq, p in win.expire(now)]
        idle = now - win.last
        if self.state in _WATCHED and idle >= self.inactivity:
            events.append(Inactive(idle))
        return events

    # --- bytes from the client ---------------------------------------------------------

    def _on_pdu(self, command_id: int, status: int, seq: int, body: bytes,
                events: list[Any]) -> None:
        if command_id == SUBMIT_SM:
            self._on_submit(seq, body, events)
        elif command_id == DELIVER_SM_RESP:
            p = self._win.take_submit(seq)
            if p is None:
                events.append(Unexpected(f"deliver_sm_resp for sequence {seq}, which is not "
                                         "waiting (answered after its timeout?)"))
            else:
                events.append(DeliverAnswered(p[2], status))
        elif command_id in BIND_MODES:
            self._on_bind(command_id, seq, body, events)
        elif command_id == ENQUIRE_LINK:
            self._out.append(codec.header_only(ENQUIRE_LINK_RESP, seq))
        elif command_id == UNBIND:
            self._out.append(codec.header_only(UNBIND_RESP, seq))
            self._set_state(State.CLOSED)
            events.append(Unbound(by_peer=True))
        elif command_id == UNBIND_RESP:
            if self.state is State.UNBINDING and self._win.take(seq, UNBIND) is not None:
                self._set_state(State.CLOSED)
                events.append(Unbound(by_peer=False))
            else:
                events.append(Unexpected(f"unbind_resp while {self.state.value}"))
        elif command_id == GENERIC_NACK:
            p = self._win.pop(seq)
            if p is not None and p[0] == DELIVER_SM:
                events.append(DeliverAnswered(p[2], status or codec.ESME_RUNKNOWNERR))
            else:
                events.append(Unexpected(f"generic_nack {codec.status_text(status)} "
                                         f"(sequence {seq})"))
        elif command_id & RESPONSE_BIT:
            if command_id != ENQUIRE_LINK_RESP:
                events.append(Unexpected(f"{codec.command_name(command_id)} (sequence {seq}) "
                                         "answers nothing we sent"))
        elif command_id not in codec.NO_RESPONSE:
            # §4.3.1: what we do not serve (query_sm, data_sm, submit_multi, ...) or do not
            # know gets generic_nack ESME_RINVCMDID, and the session goes on.
            self._out.append(codec.header_only(GENERIC_NACK, seq, codec.ESME_RINVCMDID))
            events.append(Unexpected(f"answered {codec.command_name(command_id)} (sequence "
                                     f"{seq}) with generic_nack ESME_RINVCMDID"))

    def _on_bind(self, command_id: int, seq: int, body: bytes, events: list[Any]) -> None:
        if self.state is not State.OPEN:
            # §4.1: a second bind on a session is ESME_RALYBND; the session stays as it is.
            self._out.append(codec.bind_resp(command_id, seq, "", codec.ESME_RALYBND))
            return
        self._bind_id = command_id
        self._bind_seq = seq
        self._set_state(State.BINDING)
        try:
            bind = codec.decode_bind(body)
        except codec.CodecError as exc:
            events.append(Unexpected(f"unreadable {codec.command_name(command_id)}: "
                                     f"{exc.reason}"))
            self.refuse_bind(exc.status)
            return
        events.append(BindRequested(BIND_MODES[command_id], bind.system_id, bind.password,
                                    bind.system_type))

    def _on_submit(self, seq: int, body: bytes, events: list[Any]) -> None:
        out = self._out
        if self.state is not _BOUND or self.mode == "receiver":
            out.append(codec.submit_sm_resp(seq, "", codec.ESME_RINVBNDSTS))
            return
        if self.submits_open >= self.window:
            out.append(codec.submit_sm_resp(seq, "", codec.ESME_RMSGQFUL))
            return
        try:
            sm = codec.decode_submit_sm(body)
        except codec.CodecError as exc:
            out.append(codec.submit_sm_resp(seq, "", exc.status))
            events.append(Unexpected(f"unreadable submit_sm (sequence {seq}), answered "
                                     f"{codec.status_text(exc.status)}: {exc.reason}"))
            return
        self.submits_open += 1
        events.append(SubmitRequested(seq, sm))
