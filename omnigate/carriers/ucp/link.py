"""The UCP/EMI link: what UCP adds to the shared TCP link machinery.

Three layers (STYLE §4): `codec` reads and writes frames from the operation table,
`session` is the sans-I/O state machine of one connection, and this module is the
thin asyncio edge. Reconnect and failover over `hosts`, window and queue, rate,
throttle back-off, one write per loop iteration, the deadline timer, stop and
terminate are `carriers.stream.StreamLink`'s; here, in Kannel's order: config, part
-> OT 51, what the session says, login.

How a part travels (EMI §5.3):

- GSM 7-bit: MT=3, the septets hex-encoded in AMsg; flash is message class 0 (MCLs).
- UCS-2: MT=4, NB bits of TMsg, and the DCS (0x08, or 0x18 for flash) in XSer 02.
- A part of a long message: its concatenation UDH in XSer 01; the SMSC puts it in
  front of the user data (with the fill bits GSM 7-bit needs).
- Sender: OAdC with OTOA 5039 and packed septets when alphanumeric, OTOA 1139 for an
  international number, no OTOA (the SMSC's default) for other numbers.
- A delivery report is asked for with NRq=1, NT=3 (delivery and non-delivery
  notifications; "buffered" ones are not final, so not asked for).

The positive result's SM, "AdC:SCTS", is the carrier reference, and an OT 53 names
its message by the same AdC and SCTS, so a report matches without any state here.

UCP has no logout: `stop(finish=True)` lets the window drain, then closes.
"""

from __future__ import annotations

from binascii import b2a_hex
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from omnigate.carriers.base import LinkConfig, LinkEvents
from omnigate.carriers.stream import Connection, StreamConfig, StreamLink
from omnigate.model import DeliveryReport, Inbound, Part, Status
from omnigate.sms.coding import Coding, decode
from omnigate.sms.numbers import Address
from omnigate.sms.segment import concat_udh, parse_concat

from . import codec
from .session import (
    LoggedIn,
    LoginFailed,
    MoReceived,
    NotificationReceived,
    ProtocolError,
    ResponseTimeout,
    Session,
    SubmitFailed,
    SubmitOk,
    Unexpected,
)

_NO_SENDER = object()  # "no sender cached yet", distinct from None (use the default)
_GSM7 = Coding.GSM7
_UCS2 = Coding.UCS2


def _ira(value: str, what: str) -> str:
    if not value.isascii() or not value.isprintable() or "/" in value:
        raise ValueError(f"{what} must be printable IRA (ASCII) characters without '/'")
    return value


class UcpConfig(StreamConfig):
    """One [[links]] entry of type "ucp". `hosts`, `queue`, `response_timeout` and
    `throttle_backoff` come from StreamConfig."""

    type: Literal["ucp"] = "ucp"
    user: str = Field(min_length=1, max_length=codec.ADDRESS_MAX,
                      description="OAdC of the login (OT 60): the account's address")
    password: SecretStr = Field(description="never logged; sent IRA-encoded in OT 60")
    login_ton: Literal["1", "2", "6"] = Field(
        "6", description="OTON of the login: 1 international, 2 national, 6 abbreviated")
    login_npi: Literal["1", "3", "5"] = Field(
        "5", description="ONPI of the login: 1 E.164, 3 X.121, 5 private")
    window: int = Field(10, ge=1, le=99,
                        description="OT 51 awaiting their result; TRN has 100 values, one "
                                    "is kept for the keep-alive")
    keepalive: float = Field(30.0, gt=0,
                             description="seconds of silence before an OT 31 alert")
    source_addr: str = Field("", max_length=codec.ADDRESS_MAX,
                             description="sender for parts that have none; empty: `user`")
    notification_address: str = Field(
        "", max_length=codec.ADDRESS_MAX,
        description="NAdC for delivery notifications; empty: this session")
    time_zone: str = Field("UTC", description="zone of the SMSC's VP, SCTS and DSCTS")

    @field_validator("user", "source_addr", "notification_address")
    @classmethod
    def _ira_field(cls, value: str) -> str:
        return _ira(value, "the value") if value else value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        try:
            codec.ira_hex(value.get_secret_value())
        except codec.CodecError:
            raise ValueError("only ISO 8859-1 characters can be sent as a UCP password") \
                from None
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            codec.zone(value)
        except Exception:
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Stockholm)") \
                from None
        return value

    def default_source(self) -> Address:
        """`source_addr` (else `user`: OAdC is mandatory in OT 51, EMI §5.3) as an
        Address: up to 8 digits a short code, more an international number, anything
        else alphanumeric."""
        value = self.source_addr or self.user
        if value.isdigit():
            return Address(value, 1, 1) if len(value) > 8 else Address(value, 3, 0)
        return Address(value, 5, 0)


class UcpLink(StreamLink):
    """UCP/EMI 4.x client link; see the module docstring and `carriers.base`."""

    config_model = UcpConfig
    config: UcpConfig  # Link.__init__ checked it against config_model
    protocol = "ucp"

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        super().__init__(config, events)
        c = self.config
        self._tz = codec.zone(c.time_zone)
        self._default_source = c.default_source()
        nadc = c.notification_address.encode("ascii")
        # NRq/NT (and NAdC/NPID when given): the same for every part that wants a report.
        self._report = (b"1", b"3", nadc, codec.PID_PC_TCPIP.encode() if nadc else b"")
        # Pure per-part work cached: OAdC/OTOA by sender, the last validity's VP.
        self._sources: dict[tuple[str, int, int] | None, tuple[bytes, bytes]] = {}
        self._last_sender: Address | None = _NO_SENDER  # type: ignore[assignment]
        self._last_source = (b"", b"")
        self._vp_key = -1
        self._vp = b""

    # --- part -> OT 51 ----------------------------------------------------------------

    def _source(self, sender: Address | None) -> tuple[bytes, bytes]:
        """(OAdC, OTOA) of a sender, cached; the same object in a row skips the dict."""
        if sender is self._last_sender:
            return self._last_source
        key = None if sender is None else (sender.value, sender.ton, sender.npi)
        found = self._sources.get(key)
        if found is None:
            addr = sender if sender is not None else self._default_source
            if addr.ton == 5 or not addr.value.isdigit():
                found = (codec.alphanumeric_oadc(addr.value).encode(),
                         codec.OTOA_ALPHANUMERIC.encode())
            elif len(addr.value) > codec.ADDRESS_MAX or not addr.value.isascii():
                raise ValueError(f"sender {addr.value!r} is longer than 16 digits")
            else:
                otoa = codec.OTOA_INTERNATIONAL if addr.ton == 1 else ""
                found = (addr.value.encode(), otoa.encode())
            if len(self._sources) >= 10_000:  # senders are few; bound it anyway
                self._sources.clear()
            self._sources[key] = found
        self._last_sender, self._last_source = sender, found
        return found

    def _encode(self, part: Part) -> bytes:
        """The OT 51 fields for one part; ValueError if it cannot be sent at all."""
        recipient = part.recipient
        if not (recipient.isdigit() and recipient.isascii()
                and len(recipient) <= codec.ADDRESS_MAX):
            raise ValueError(f"recipient {recipient!r} is not at most 16 digits (AdC)")
        oadc, otoa = self._source(part.sender)
        data = part.data
        concat = part.concat
        udh = concat_udh(*concat) if concat is not None else b""
        xser = b"01%02X%s" % (len(udh), b2a_hex(udh).upper()) if udh else b""
        if part.coding is _GSM7:
            if len(udh) * 8 + len(data) * 7 > codec.SEPTETS_BITS_MAX:
                raise ValueError(f"{len(data)} septets do not fit in 140 octets beside a "
                                 f"{len(udh)}-octet UDH")
            mt, nb, mcls = b"3", b"", b"0" if part.flash else b""
        elif part.coding is _UCS2:
            if len(udh) + len(data) > codec.USER_DATA_MAX:
                raise ValueError(f"{len(data)} octets do not fit in 140 octets beside a "
                                 f"{len(udh)}-octet UDH")
            mt, nb, mcls = b"4", b"%d" % (len(data) * 8), b""
            xser += b"020118" if part.flash else b"020108"
        else:
            raise ValueError(f"coding {part.coding.name} cannot be sent over UCP")
        vp = b""
        if part.validity_until is not None:
            key = int(part.validity_until) // 60  # VP has minutes
            if key != self._vp_key:
                self._vp_key = key
                self._vp = codec.ucp_time(part.validity_until, self._tz).encode()
            vp = self._vp
        nrq, nt, nadc, npid = self._report if part.report else (b"", b"", b"", b"")
        return codec.submit_data(adc=recipient.encode(), oadc=oadc, otoa=otoa, mt=mt, nb=nb,
                                 msg=b2a_hex(data).upper(), xser=xser, nrq=nrq, nt=nt,
                                 nadc=nadc, npid=npid, vp=vp, mcls=mcls)

    # --- what the session says -----------------------------------------------------------

    def _handle(self, conn: Connection, events: list[Any]) -> None:
        on_sent = self.events.on_sent
        for ev in events:
            t = type(ev)
            if t is SubmitOk:
                on_sent(ev.token, ev.sm)
            elif t is NotificationReceived:
                self._on_notification(ev.notification)
            elif t is SubmitFailed:
                self._submit_failed(ev.token, ev.kind, ev.reason)
            elif t is MoReceived:
                self._on_mo(ev.deliver)
            elif t is LoggedIn:
                conn.login_done(None)
            elif t is LoginFailed:
                hint = " - check user and password" if ev.ec == "07" else ""
                self._on_conn_failed(conn, f"login (OT 60) as {self.config.user} to "
                                           f"{conn.peer} refused: {ev.reason}{hint}")
            elif t is ResponseTimeout:
                self._timed_out(conn, ev.token,
                                f"no result for {codec.op_name(ev.ot)} TRN {ev.trn:02d} "
                                f"from {conn.peer} within {conn.session.response_timeout:g} s")
            elif t is ProtocolError:
                self._on_conn_failed(conn, f"protocol error from {conn.peer}: {ev.reason}")
            elif t is Unexpected:
                self.log.warning("%s", ev.reason)

    def _on_notification(self, n: codec.Notification) -> None:
        ref = codec.carrier_ref(n.adc, n.scts)
        if n.dst == "0":
            status, error = Status.DELIVERED, None
        elif n.dst == "2":
            status = Status.UNDELIVERED
            error = f"Rsn {n.rsn}" + (f" ({codec.REASONS[n.rsn]})" if n.rsn in codec.REASONS
                                      else "")
        else:  # 1 buffered: the SMSC is still trying, nothing final to say
            self.log.debug("notification for %s not final (Dst %s, Rsn %s)", ref, n.dst, n.rsn)
            return
        self.events.on_report(DeliveryReport(self.name, ref, status, error,
                                             codec.parse_scts(n.dscts, self._tz)))

    def _on_mo(self, d: codec.Deliver) -> None:
        concat = parse_concat(d.udh) if d.udh else None
        # 8-bit data: one character per octet, so nothing is lost.
        coding = d.coding if d.coding is not None else Coding.LATIN1
        self.events.on_mo(Inbound(self.name, d.sender, d.recipient, decode(d.data, coding),
                                  datetime.now(UTC), coding, concat))

    # --- login --------------------------------------------------------------------------

    async def _open(self, host: str, port: int, peer: str, conns: list[Connection]) -> None:
        c = self.config
        session = Session(user=c.user, password=c.password.get_secret_value(),
                          window=c.window, keepalive=c.keepalive,
                          response_timeout=c.response_timeout,
                          login_ton=c.login_ton, login_npi=c.login_npi)
        conn = Connection(self, session, peer)
        conns.append(conn)
        await self._dial(conn, host, port)
        session.login(self._loop.time())
        conn.flush()
        await self._logged_in(conn)

    def _start_line(self) -> str:
        return f"user {self.config.user}, window {self.config.window}"

    def _up_line(self, peer: str) -> str:
        return f"logged in as {self.config.user} to {peer}"

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(user=self.config.user)
        return d
