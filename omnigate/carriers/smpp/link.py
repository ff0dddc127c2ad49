"""The SMPP 3.4 link: asyncio transport, reconnect and failover, window, rate, throttle.

Three layers (STYLE §4): `codec` packs and reads PDUs, `session` is the sans-I/O state
machine of one connection, and this module is the thin asyncio edge that owns sockets,
time and the Link contract of `carriers.base`. In the order of Kannel's drivers:
config, connection (asyncio Protocol around one Session), link state and helpers,
the supervisor (connect, bind, reconnect), then the contract methods.

How parts flow: `submit()` encodes the submit_sm body at once (a part that cannot be
encoded fails PERMANENT right there), queues it, and `_pump()` moves queued parts into
the session's window while there is window room, rate and no throttle back-off. PDUs
produced in one loop iteration go out in one `transport.write` (a `call_soon` flush),
and one TimerHandle per connection serves every deadline the session has.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from omnigate.carriers.base import Link, LinkConfig, LinkEvents, LinkState
from omnigate.config import split_hostport
from omnigate.model import DeliveryReport, FailureKind, Inbound, Part
from omnigate.sms.coding import Coding, decode
from omnigate.sms.numbers import Address
from omnigate.sms.segment import concat_udh, parse_concat

from . import codec
from .session import (
    BindFailed,
    Bound,
    MoReceived,
    ProtocolError,
    ReceiptReceived,
    ResponseTimeout,
    Session,
    State,
    SubmitFailed,
    SubmitOk,
    Unbound,
    Unexpected,
)

TEMPORARY = FailureKind.TEMPORARY
_UP = LinkState.UP  # Enum class attribute access is slow in CPython 3.11; hot paths use this
_NO_SENDER = object()  # "no sender cached yet", distinct from None (use the default)


class SmppConfig(LinkConfig):
    """One [[links]] entry of type "smpp". Limits cite SMPP 3.4 §5.2."""

    # Validation errors would otherwise echo the input, password included (STYLE §7).
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["smpp"] = "smpp"
    hosts: list[str] = Field(min_length=1, description="host:port, tried in order (failover)")
    system_id: str = Field(min_length=1, max_length=codec.SYSTEM_ID_MAX)
    password: SecretStr = Field(description="never logged; at most 8 characters (§5.2.2)")
    system_type: str = Field("", max_length=codec.SYSTEM_TYPE_MAX)
    bind: Literal["transceiver", "pair"] = Field(
        "transceiver", description="one transceiver bind, or a transmitter and a receiver")
    window: int = Field(10, ge=1, le=1000, description="submit_sm awaiting submit_sm_resp")
    queue: int = Field(10, ge=0, le=100_000,
                       description="parts held beyond the window (waiting for room or rate)")
    enquire_link: float = Field(30.0, gt=0, description="seconds of silence before enquire_link")
    response_timeout: float = Field(10.0, gt=0,
                                    description="seconds to wait for any response")
    concat: Literal["udh", "sar", "payload"] = Field(
        "udh", description="how parts of a long message are tied together")
    source_addr: str = Field("", max_length=codec.ADDR_MAX,
                             description="sender for parts that have none")
    source_ton: int | None = Field(None, ge=0, le=255, description="default: from source_addr")
    source_npi: int | None = Field(None, ge=0, le=255, description="default: from source_addr")
    throttle_backoff: float = Field(1.0, gt=0, description="seconds to pause after throttling")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for h in hosts:
            split_hostport(h)
        return hosts

    @field_validator("system_id", "system_type", "source_addr")
    @classmethod
    def _latin1(cls, value: str) -> str:
        # C-octet strings carry octets; what Latin-1 cannot hold cannot be sent (§3.1).
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("only Latin-1 characters can be sent in SMPP strings") from None
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if len(raw) > codec.PASSWORD_MAX:
            raise ValueError(f"at most {codec.PASSWORD_MAX} characters (SMPP 3.4 §5.2.2)")
        try:
            raw.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("only Latin-1 characters can be sent in SMPP strings") from None
        return value

    def default_source(self) -> Address | None:
        """`source_addr` with its TON/NPI: digits are international (1/1), anything else
        alphanumeric (5/0), unless source_ton/source_npi say otherwise."""
        if not self.source_addr:
            return None
        digits = self.source_addr.isdigit()
        ton = self.source_ton if self.source_ton is not None else (1 if digits else 5)
        npi = self.source_npi if self.source_npi is not None else (1 if digits else 0)
        return Address(self.source_addr, ton, npi)


class _Failed(Exception):
    """A connect or bind attempt did not work; the message says why, for the log."""


class _Connection(asyncio.Protocol):
    """One TCP connection carrying one Session; all decisions are the link's."""

    def __init__(self, link: SmppLink, session: Session, peer: str) -> None:
        self.link = link
        self.session = session
        self.peer = peer
        self.loop = link._loop
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.Handle | None = None
        self.timer_at = 0.0
        self.flush_handle: asyncio.Handle | None = None
        # Resolves with None once bound, or with the reason binding failed.
        self.ready: asyncio.Future[str | None] = self.loop.create_future()
        self.finished: asyncio.Future[None] = self.loop.create_future()  # unbound or lost
        self.dropped = False  # we closed it; connection_lost is then no news

    # asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's TCPTransport is not an asyncio.Transport subclass.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        events = self.session.feed(data, self.loop.time())
        if events:
            self.link._on_events(self, events)
        self.flush()

    def eof_received(self) -> bool:
        return False  # half-closed is closed: SMPP has no use for it

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_handles()
        if not self.finished.done():
            self.finished.set_result(None)
        if not self.dropped:
            self.dropped = True
            why = f"lost: {exc}" if exc else "closed by the SMSC"
            self.link._on_conn_failed(self, f"connection to {self.peer} {why}")

    # helpers -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write what the session produced, in one write, and re-arm the timer: done once
        per loop iteration for all parts submitted in it, not once per part."""
        self.flush_handle = None
        if self.dropped:
            return
        data = self.session.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        self.arm_timer()

    def want_flush(self) -> None:
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_soon(self.flush)

    def arm_timer(self) -> None:
        """Keep one TimerHandle at the session's next deadline. Deadlines only move later
        as requests are answered, so an early wake-up is harmless and rescheduling is
        rare: only when a deadline earlier than the armed one appears."""
        deadline = self.session.next_deadline()
        timer = self.timer
        if deadline is None:
            if timer is not None:
                timer.cancel()
                self.timer = None
            return
        if timer is not None:
            if self.timer_at <= deadline:
                return
            timer.cancel()
        # The deadline is kept beside the handle: uvloop hands back a plain Handle,
        # without when(), for a time already past.
        self.timer_at = deadline
        self.timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        events = self.session.handle_timer(self.loop.time())
        if events:
            self.link._on_events(self, events)
        self.flush()

    def _cancel_handles(self) -> None:
        for handle in (self.timer, self.flush_handle):
            if handle is not None:
                handle.cancel()
        self.timer = self.flush_handle = None

    def close(self, abort: bool) -> list[Any]:
        """Close (flushing what is written) or abort; returns the tokens still held."""
        if not self.dropped:
            self.flush()
            self.dropped = True
            if self.transport is not None:
                if abort:
                    self.transport.abort()
                else:
                    self.transport.close()
        self._cancel_handles()
        if not self.ready.done():
            self.ready.set_result("closed")
        return self.session.close()


class SmppLink(Link):
    """SMPP 3.4 client link; see the module docstring and `carriers.base` for the contract.

    Concatenation (`concat`):

    - ``udh``: esm_class 0x40 and the concatenation UDH (TS 23.040 §9.2.3.24.1) in
      front of each part's short_message. Works with every SMSC.
    - ``sar``: the part's data in short_message, and the sar_msg_ref_num,
      sar_total_segments and sar_segment_seqnum TLVs (§5.3.2.22-24); the SMSC builds
      the UDH.
    - ``payload``: the data in a message_payload TLV (§5.3.2.32) instead of
      short_message, the UDH in front of it (esm_class 0x40) when the part is one of
      several. SMPP lets message_payload carry up to 64K octets, so when the core
      hands a whole long message as a single part (no `concat`), it travels in one
      submit_sm and the SMSC segments it; parts it has already split travel each
      with its UDH, exactly as in ``udh`` mode but in the TLV. Sending split parts
      in message_payload *without* their UDH would lose the concatenation, so that
      is never done.

    A response timeout closes the connection and reconnects (Kannel's default
    `wait-ack-expire` behaviour): an SMSC that stops answering one PDU is rarely still
    answering others, and every held part goes back as temporary (contract rule 3).

    With ``bind = "pair"`` a transmitter and a receiver are bound to the same host; the
    link is UP only while both are, and losing either drops and reconnects both.
    """

    config_model = SmppConfig
    protocol = "smpp"

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        if not isinstance(config, SmppConfig):
            config = SmppConfig.model_validate(config.model_dump())
        super().__init__(config, events)
        self.config: SmppConfig = config
        c = config
        self._hosts = [split_hostport(h) for h in c.hosts]
        self._modes = ["transceiver"] if c.bind == "transceiver" else ["transmitter", "receiver"]
        self._limit = c.window + c.queue
        self._concat = c.concat
        self._default_source = c.default_source()
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._queue: deque[tuple[Part, bytes]] = deque()
        self._conns: list[_Connection] = []
        self._tx: _Connection | None = None  # the connection that takes submit_sm
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Future[str] | None = None  # resolves when an UP period ends
        self._stopping = False
        self._drained: asyncio.Event | None = None
        # Rate: a token bucket of max_rate parts/s holding at most 100 ms of parts, so
        # a burst never exceeds what the carrier's per-second counter can absorb.
        self._rate = c.max_rate
        self._burst = max(1.0, c.max_rate / 10)
        self._tokens = self._burst
        self._stamp = 0.0
        self._throttled_until = 0.0
        self._wake: asyncio.Handle | None = None
        self._wake_at_time = 0.0
        # Pure per-part work cached: source address blocks by sender, last validity.
        self._sources: dict[tuple[str, int, int] | None, bytes] = {}
        self._last_sender: Address | None = _NO_SENDER  # type: ignore[assignment]
        self._last_source = b""
        self._validity_key = -1
        self._validity = b""
        # What `describe()` shows.
        self._peer = ""
        self._peer_system_id = ""
        self._attempts = 0
        self._last_error = ""

    # --- part -> submit_sm ------------------------------------------------------------

    def _source(self, sender: Address | None) -> bytes:
        """The source address block of a sender, cached: hashing an Address costs more
        than packing it, so the same object in a row (a batch) skips even the dict."""
        if sender is self._last_sender:
            return self._last_source
        key = None if sender is None else (sender.value, sender.ton, sender.npi)
        block = self._sources.get(key)
        if block is None:
            addr = sender if sender is not None else self._default_source
            block = (codec.address(addr.ton, addr.npi, addr.value, "source address")
                     if addr is not None else b"\x00\x00\x00")
            if len(self._sources) >= 10_000:  # senders are few; bound it anyway
                self._sources.clear()
            self._sources[key] = block
        self._last_sender, self._last_source = sender, block
        return block

    def _encode(self, part: Part) -> bytes:
        """The submit_sm body for one part; ValueError if it cannot be sent at all."""
        source = self._source(part.sender)
        # E.164 digits without '+' (E.164 §6.1: at most 15): TON 1 international, NPI 1.
        recipient = part.recipient
        if not (recipient.isdigit() and recipient.isascii() and len(recipient) <= 15):
            raise ValueError(f"recipient {recipient!r} is not E.164 digits")
        destination = b"\x01\x01" + recipient.encode("ascii") + b"\x00"
        data = part.data
        esm_class = 0
        tlvs = b""
        concat = part.concat
        if concat is not None:
            if self._concat == "sar":
                tlvs = codec.sar_tlvs(*concat)
            else:
                data = concat_udh(*concat) + data
                esm_class = codec.ESM_UDHI
        if self._concat == "payload":
            tlvs = codec.payload_tlv(data)
            data = b""
        validity = b""
        if part.validity_until is not None:
            key = int(part.validity_until)
            if key != self._validity_key:
                self._validity_key, self._validity = key, codec.smpp_time(key)
            validity = self._validity
        data_coding = codec.outbound_coding(part.coding, True) if part.flash else part.coding
        return codec.submit_sm_body(source, destination, data, esm_class=esm_class,
                                    registered_delivery=1 if part.report else 0,
                                    data_coding=data_coding, validity_period=validity,
                                    tlvs=tlvs)

    def _pump(self) -> None:
        """Move queued parts into the window while room, rate and throttle allow."""
        queue = self._queue
        conn = self._tx
        if not queue or conn is None:
            return
        session = conn.session
        room = session.window_room
        if room <= 0:
            return
        now = self._loop.time()
        if self._throttled_until:
            if now < self._throttled_until:
                self._wake_at(self._throttled_until)
                return
            self._throttled_until = 0.0
        if len(queue) < room:
            room = len(queue)
        if self._rate:
            tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if tokens < 1.0:
                self._tokens = tokens
                self._wake_at(now + (1.0 - tokens) / self._rate)
                return
            if tokens < room:
                room = int(tokens)
            self._tokens = tokens - room
        submit = session.submit
        popleft = queue.popleft
        for _ in range(room):
            part, body = popleft()
            submit(body, part, now)
        if self._rate and queue and session.window_room:
            self._wake_at(now + (1.0 - self._tokens) / self._rate)
        if conn.flush_handle is None:
            conn.want_flush()

    def _wake_at(self, when: float) -> None:
        wake = self._wake
        if wake is not None:
            if self._wake_at_time <= when:
                return
            wake.cancel()
        self._wake_at_time = when
        self._wake = self._loop.call_at(when, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._pump()

    # --- what the sessions say ----------------------------------------------------------

    def _on_events(self, conn: _Connection, events: list[Any]) -> None:
        on_sent = self.events.on_sent
        for ev in events:
            t = type(ev)
            if t is SubmitOk:
                on_sent(ev.token, ev.message_id)
            elif t is ReceiptReceived:
                self._on_receipt(ev)
            elif t is SubmitFailed:
                self._on_submit_failed(ev)
            elif t is MoReceived:
                self._on_mo(ev.pdu)
            elif t is Bound:
                self._peer_system_id = ev.system_id
                if not conn.ready.done():
                    conn.ready.set_result(None)
            elif t is BindFailed:
                hint = (" - check system_id and password" if ev.status in (
                    codec.ESME_RINVPASWD, codec.ESME_RINVSYSID, codec.ESME_RBINDFAIL) else "")
                self._on_conn_failed(conn, f"bind_{conn.session.mode} to {conn.peer} refused: "
                                           f"{ev.reason}{hint}")
            elif t is ResponseTimeout:
                what = codec.command_name(ev.command_id)
                reason = (f"no {what}_resp from {conn.peer} within "
                          f"{conn.session.response_timeout:g} s")
                if ev.token is not None:
                    self.events.on_failed(ev.token, TEMPORARY, reason)
                self._on_conn_failed(conn, reason)
            elif t is Unbound:
                if ev.by_peer:
                    self._on_conn_failed(conn, f"{conn.peer} sent unbind")
                elif not conn.finished.done():
                    conn.finished.set_result(None)
            elif t is ProtocolError:
                self._on_conn_failed(conn, f"protocol error from {conn.peer}: {ev.reason}")
            elif t is Unexpected:
                self.log.warning("%s", ev.reason)
        if self._stopping and self._drained is not None and not self.in_flight:
            self._drained.set()
        if self._queue:
            self._pump()

    def _on_submit_failed(self, ev: SubmitFailed) -> None:
        if ev.kind is FailureKind.THROTTLED:
            now = self._loop.time()
            if now >= self._throttled_until:
                self.log.info("throttled by the SMSC (%s); pausing %g s", ev.reason,
                              self.config.throttle_backoff)
            self._throttled_until = now + self.config.throttle_backoff
            self._wake_at(self._throttled_until)
        self.events.on_failed(ev.token, ev.kind, ev.reason)

    def _on_receipt(self, ev: ReceiptReceived) -> None:
        r = ev.receipt
        if r.status is None:
            self.log.debug("receipt for %s not final (stat %s)", r.message_id, r.stat or "?")
            return
        self.events.on_report(DeliveryReport(self.name, r.message_id, r.status, r.error,
                                             r.done_at))

    def _on_mo(self, dsm: codec.DeliverSm) -> None:
        data = dsm.user_data
        concat = None
        if dsm.esm_class & codec.ESM_UDHI and data:
            end = 1 + data[0]
            concat = parse_concat(data[:end])
            data = data[end:]
        else:
            tlvs = dsm.tlvs
            ref = tlvs.get(codec.TAG_SAR_MSG_REF_NUM)
            total = tlvs.get(codec.TAG_SAR_TOTAL_SEGMENTS)
            seq = tlvs.get(codec.TAG_SAR_SEGMENT_SEQNUM)
            if ref and total and seq:
                concat = (int.from_bytes(ref, "big"), total[0], seq[0])
        coding = codec.inbound_coding(dsm.data_coding)
        if coding is None:
            # 8-bit data or compressed text: one character per octet, so nothing is lost.
            coding = Coding.LATIN1
        text = decode(data, coding)
        self.events.on_mo(Inbound(
            self.name, dsm.source_addr.decode("latin-1"), dsm.destination_addr.decode("latin-1"),
            text, datetime.now(UTC), coding, concat))

    def _on_conn_failed(self, conn: _Connection, reason: str) -> None:
        """A connection is unusable. While binding, that fails the attempt; while UP, it
        ends the UP period (the whole link: a pair stands or falls together)."""
        if not conn.ready.done():
            conn.ready.set_result(reason)
            conn.close(abort=True)
            return
        if conn not in self._conns:
            conn.close(abort=True)
        elif self._stopping:
            # Going down anyway: settle this connection alone, so the other half of a
            # pair can still finish its unbind.
            for part in conn.close(abort=True):
                self.events.on_failed(part, TEMPORARY, reason)
            if not conn.finished.done():
                conn.finished.set_result(None)
            if self._drained is not None and not self.in_flight:
                self._drained.set()
        else:
            self._drop(reason)

    def _drop(self, reason: str) -> None:
        """End the UP period: state first, so the core hands us nothing more; then every
        held part back as temporary (rule 3); the supervisor then reconnects."""
        self._last_error = reason
        if not self._stopping:
            self.set_state(LinkState.DOWN)
            self.log.warning("link down: %s", reason)
        held = self._close_all(abort=True)
        for part in held:
            self.events.on_failed(part, TEMPORARY, reason)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        if self._drained is not None:
            self._drained.set()

    def _close_all(self, abort: bool) -> list[Part]:
        """Close every connection; the parts held (window first, in order sent, then queue)."""
        held: list[Part] = []
        for conn in self._conns:
            held += conn.close(abort)
        self._conns = []
        self._tx = None
        held += [part for part, _ in self._queue]
        self._queue.clear()
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._throttled_until = 0.0
        return held

    # --- supervisor: connect, bind, wait, reconnect ----------------------------------

    async def _run(self) -> None:
        failed_rounds = 0
        c = self.config
        while not self._stopping:
            for host, port in self._hosts:
                peer = f"{host}:{port}"
                try:
                    await self._connect(host, port, peer)
                except Exception as exc:
                    # _Failed says why in words; anything else is a bug, but the link
                    # must keep trying rather than die quietly with its task.
                    if not isinstance(exc, _Failed):
                        self.log.exception("unexpected error connecting to %s", peer)
                    self._attempts += 1
                    self._last_error = str(exc)
                    self.set_state(LinkState.DOWN)
                    self.log.warning("%s", exc)
                    continue
                failed_rounds = 0
                self._attempts = 0
                self._peer = peer
                self._lost = self._loop.create_future()
                self._tokens, self._stamp = self._burst, self._loop.time()
                self.set_state(LinkState.UP)
                self.log.info("bound as %s to %s (SMSC system_id %r)",
                              " + ".join(self._modes), peer, self._peer_system_id)
                await self._lost
                break
            else:
                failed_rounds += 1
            delay = min(c.reconnect_max, c.reconnect_min * 2 ** max(failed_rounds - 1, 0))
            delay = delay / 2 + random.uniform(0, delay / 2)  # equal jitter
            self.log.info("reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _connect(self, host: str, port: int, peer: str) -> None:
        """Connect and bind every session of the link; raise _Failed with the reason."""
        c = self.config
        loop = self._loop
        conns: list[_Connection] = []
        try:
            for mode in self._modes:
                session = Session(mode=mode, system_id=c.system_id,
                                  password=c.password.get_secret_value(),
                                  system_type=c.system_type, window=c.window,
                                  enquire_link=c.enquire_link,
                                  response_timeout=c.response_timeout)
                conn = _Connection(self, session, peer)
                conns.append(conn)
                try:
                    async with asyncio.timeout(c.connect_timeout):
                        await loop.create_connection(lambda conn=conn: conn, host, port)
                except (OSError, TimeoutError) as exc:
                    why = str(exc) or type(exc).__name__
                    raise _Failed(f"cannot connect to {peer}: {why}") from None
                session.bind(loop.time())
                conn.flush()
                reason = await conn.ready
                if reason is not None:
                    raise _Failed(reason)
                self.log.debug("bound as %s to %s", mode, peer)
            lost = next((conn for conn in conns if conn.dropped), None)
            if lost is not None:  # the first of a pair died while the second bound
                raise _Failed(f"connection to {peer} lost while binding")
        except BaseException:
            for conn in conns:
                conn.close(abort=True)
            raise
        self._conns = conns
        self._tx = conns[0]

    # --- the contract ------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self.set_state(LinkState.CONNECTING)
        self.log.info("starting: %s, bind %s, window %d", ", ".join(self.config.hosts),
                      self.config.bind, self.config.window)
        self._task = self._loop.create_task(self._run(), name=f"smpp-link-{self.name}")

    def submit(self, part: Part) -> None:
        if self._state is not _UP or self._stopping:
            # Contract: only called while capacity() > 0. Refuse without raising, and
            # not from inside the caller's own call.
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self.events.on_failed, part, TEMPORARY,
                           f"link {self.name} is {self._state.value}")
            return
        try:
            body = self._encode(part)
        except ValueError as exc:
            self._loop.call_soon(self.events.on_failed, part, FailureKind.PERMANENT, str(exc))
            return
        conn = self._tx
        if (not self._queue and not self._rate and not self._throttled_until
                and conn is not None and conn.session.window_room > 0):
            # The common case, straight into the window.
            conn.session.submit(body, part, self._loop.time())
            if conn.flush_handle is None:
                conn.want_flush()
            return
        self._queue.append((part, body))
        self._pump()

    def capacity(self) -> int:
        if self._state is not _UP or self._stopping or self._tx is None:
            return 0
        if self._throttled_until and self._loop.time() < self._throttled_until:
            return 0
        room = self._limit - len(self._queue) - self._tx.session.in_window
        return room if room > 0 else 0

    @property
    def in_flight(self) -> int:
        n = len(self._queue)
        for conn in self._conns:
            n += conn.session.in_window
        return n

    async def stop(self, finish: bool = True) -> None:
        """Stop taking parts; with `finish`, let the window (and queue) drain for at most
        `response_timeout`, then unbind and close. Whatever is still held is failed as
        temporary (rule 5)."""
        if self._task is None and not self._conns:
            self.set_state(LinkState.STOPPED)
            return
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        timeout = self.config.response_timeout
        if finish and self._conns and self.in_flight:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
            self._drained = None
        now = self._loop.time()
        unbinding = []
        for conn in self._conns:
            if conn.session.state is State.BOUND:
                conn.session.unbind(now)
                conn.flush()
                unbinding.append(conn.finished)
        if unbinding:
            self.log.info("unbinding from %s", self._peer)
            if finish:
                await asyncio.wait(unbinding, timeout=timeout)
        self._shutdown("link stopped", abort=False)

    def terminate(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._shutdown("link terminated", abort=True)

    def _shutdown(self, reason: str, abort: bool) -> None:
        self._stopping = True
        held = self._close_all(abort)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self.set_state(LinkState.STOPPED)
        for part in held:
            self.events.on_failed(part, TEMPORARY, reason)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(host=self._peer or None, bind=self.config.bind, window=self.config.window,
                 in_window=self._tx.session.in_window if self._tx else 0,
                 queued=len(self._queue),
                 throttled=bool(self._throttled_until
                                and self._loop.time() < self._throttled_until),
                 smsc_system_id=self._peer_system_id or None,
                 failed_attempts=self._attempts, last_error=self._last_error or None)
        return d
