"""The SMPP 3.4 link: what SMPP adds to the shared TCP link machinery.

Three layers (STYLE §4): `codec` packs and reads PDUs, `session` is the sans-I/O state
machine of one connection, and this module is the thin asyncio edge. What every TCP
carrier link does - reconnect and failover over `hosts`, window and queue, rate,
throttle back-off, one write per loop iteration, the deadline timer, stop and
terminate - is `carriers.stream.StreamLink`; this module adds, in the order of
Kannel's drivers: config, part -> submit_sm, what the sessions say, bind and unbind.

How parts flow: `submit()` encodes the submit_sm body at once (a part that cannot be
encoded fails PERMANENT right there), and the stream machinery moves it into the
session's window while there is window room, rate and no throttle back-off.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from omnigate.carriers.base import LinkConfig, LinkEvents
from omnigate.carriers.stream import Connection, StreamConfig, StreamLink
from omnigate.model import DeliveryReport, Inbound, Part
from omnigate.sms.coding import Coding, decode
from omnigate.sms.numbers import Address
from omnigate.sms.segment import concat_udh

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

_NO_SENDER = object()  # "no sender cached yet", distinct from None (use the default)


class SmppConfig(StreamConfig):
    """One [[links]] entry of type "smpp". Limits cite SMPP 3.4 §5.2. `hosts`, `window`,
    `queue`, `response_timeout` and `throttle_backoff` come from StreamConfig."""

    type: Literal["smpp"] = "smpp"
    system_id: str = Field(min_length=1, max_length=codec.SYSTEM_ID_MAX)
    password: SecretStr = Field(description="never logged; at most 8 characters (§5.2.2)")
    system_type: str = Field("", max_length=codec.SYSTEM_TYPE_MAX)
    bind: Literal["transceiver", "pair"] = Field(
        "transceiver", description="one transceiver bind, or a transmitter and a receiver")
    window: int = Field(10, ge=1, le=1000, description="submit_sm awaiting submit_sm_resp")
    enquire_link: float = Field(30.0, gt=0, description="seconds of silence before enquire_link")
    concat: Literal["udh", "sar", "payload"] = Field(
        "udh", description="how parts of a long message are tied together")
    source_addr: str = Field("", max_length=codec.ADDR_MAX,
                             description="sender for parts that have none")
    source_ton: int | None = Field(None, ge=0, le=255, description="default: from source_addr")
    source_npi: int | None = Field(None, ge=0, le=255, description="default: from source_addr")

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


class SmppLink(StreamLink):
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

    A response timeout closes the connection and reconnects (`StreamLink._timed_out`);
    every held part goes back as temporary (contract rule 3).

    With ``bind = "pair"`` a transmitter and a receiver are bound to the same host; the
    link is UP only while both are, and losing either drops and reconnects both.
    """

    config_model = SmppConfig
    config: SmppConfig  # Link.__init__ checked it against config_model
    protocol = "smpp"

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        super().__init__(config, events)
        c = self.config
        self._modes = ["transceiver"] if c.bind == "transceiver" else ["transmitter", "receiver"]
        self._concat = c.concat
        self._default_source = c.default_source()
        # Pure per-part work cached: source address blocks by sender, last validity.
        self._sources: dict[tuple[str, int, int] | None, bytes] = {}
        self._last_sender: Address | None = _NO_SENDER  # type: ignore[assignment]
        self._last_source = b""
        self._validity_key = -1
        self._validity = b""
        self._peer_system_id = ""  # the SMSC's, from bind_resp, for the log and describe()

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

    # --- what the sessions say ----------------------------------------------------------

    def _handle(self, conn: Connection, events: list[Any]) -> None:
        on_sent = self.events.on_sent
        for ev in events:
            t = type(ev)
            if t is SubmitOk:
                on_sent(ev.token, ev.message_id)
            elif t is ReceiptReceived:
                self._on_receipt(ev)
            elif t is SubmitFailed:
                self._submit_failed(ev.token, ev.kind, ev.reason)
            elif t is MoReceived:
                self._on_mo(ev.pdu)
            elif t is Bound:
                self._peer_system_id = ev.system_id
                conn.login_done(None)
            elif t is BindFailed:
                hint = (" - check system_id and password" if ev.status in (
                    codec.ESME_RINVPASWD, codec.ESME_RINVSYSID, codec.ESME_RBINDFAIL) else "")
                self._on_conn_failed(conn, f"bind_{conn.session.mode} to {conn.peer} refused: "
                                           f"{ev.reason}{hint}")
            elif t is ResponseTimeout:
                what = codec.command_name(ev.command_id)
                self._timed_out(conn, ev.token, f"no {what}_resp from {conn.peer} within "
                                                f"{conn.session.response_timeout:g} s")
            elif t is Unbound:
                if ev.by_peer:
                    self._on_conn_failed(conn, f"{conn.peer} sent unbind")
                elif not conn.finished.done():
                    conn.finished.set_result(None)
            elif t is ProtocolError:
                self._on_conn_failed(conn, f"protocol error from {conn.peer}: {ev.reason}")
            elif t is Unexpected:
                self.log.warning("%s", ev.reason)

    def _on_receipt(self, ev: ReceiptReceived) -> None:
        r = ev.receipt
        if r.status is None:
            self.log.debug("receipt for %s not final (stat %s)", r.message_id, r.stat or "?")
            return
        self.events.on_report(DeliveryReport(self.name, r.message_id, r.status, r.error,
                                             r.done_at))

    def _on_mo(self, dsm: codec.DeliverSm) -> None:
        try:
            data, concat = dsm.split_udh()
        except codec.CodecError as exc:  # keep the MO: its octets as they came
            self.log.warning("MO from %r: %s", dsm.source_addr, exc.reason)
            data, concat = dsm.user_data, None
        coding = codec.inbound_coding(dsm.data_coding)
        if coding is None:
            # 8-bit data or compressed text: one character per octet, so nothing is lost.
            coding = Coding.LATIN1
        text = decode(data, coding)
        self.events.on_mo(Inbound(
            self.name, dsm.source_addr.decode("latin-1"), dsm.destination_addr.decode("latin-1"),
            text, datetime.now(UTC), coding, concat))

    # --- connect and bind, unbind -------------------------------------------------------

    async def _open(self, host: str, port: int, peer: str, conns: list[Connection]) -> None:
        """Connect and bind every session of the link (one, or a transmitter and a
        receiver); LinkFailed with the reason."""
        c = self.config
        loop = self._loop
        for mode in self._modes:
            session = Session(mode=mode, system_id=c.system_id,
                              password=c.password.get_secret_value(),
                              system_type=c.system_type, window=c.window,
                              enquire_link=c.enquire_link,
                              response_timeout=c.response_timeout)
            conn = Connection(self, session, peer)
            conns.append(conn)
            await self._dial(conn, host, port)
            session.bind(loop.time())
            conn.flush()
            await self._logged_in(conn)
            self.log.debug("bound as %s to %s", mode, peer)

    def _goodbye(self, conn: Connection, now: float) -> asyncio.Future[None] | None:
        if conn.session.state is not State.BOUND:
            return None
        conn.session.unbind(now)
        return conn.finished

    def _start_line(self) -> str:
        return f"bind {self.config.bind}, window {self.config.window}"

    def _up_line(self, peer: str) -> str:
        return (f"bound as {' + '.join(self._modes)} to {peer} "
                f"(SMSC system_id {self._peer_system_id!r})")

    def _leave_line(self, peer: str) -> str:
        return f"unbinding from {peer}"

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(bind=self.config.bind, smsc_system_id=self._peer_system_id or None)
        return d
