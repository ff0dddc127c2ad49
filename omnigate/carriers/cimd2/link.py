"""The CIMD2 link: the Link contract over one CIMD2 session per connection.

Three layers (STYLE §4): `codec` packs and reads packets, `session` is the sans-I/O state
machine of one connection, and this module is the thin edge. Connecting with failover
over `hosts`, reconnect backoff with jitter, the rate bucket, the queue and window,
failing everything held as TEMPORARY on loss and graceful stop are shared with the other
TCP links in `carriers.stream`; what is CIMD2's is here, in the order of Kannel's
drivers: config, part -> submit parameters, what the session's events mean, the login.

A part goes out as one submit message (03):

- destination address (021): the E.164 number with `international_prefix` before it;
- the sender as originating address (023, digits) or alphanumeric originating address
  (027, at most 11 characters);
- GSM 7-bit text as user data (033) in CIMD2's character conversion, UCS-2 as user data
  binary (034) with data coding scheme (030) 8; a part of a long message carries its
  concatenation UDH as user data header (032) beside either (§6: 032 combines with
  033 or 034). Flash is message class 0 (030: 16 for GSM, 24 for UCS-2);
- status report request (056) when the part asks for a report, validity period
  relative (050) when it has a validity, priority (067) when configured.

The SMS Center's submit response names the message by its service centre time stamp
(060) together with the destination address (021); a deliver status report (23) carries
the same pair, so the carrier reference is "address:timestamp" (the spec identifies a
message this way in enquire message status too; the SMS Center keeps the pair unique).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from omnigate.carriers.base import LinkConfig, LinkEvents
from omnigate.carriers.stream import Connection, StreamConfig, StreamLink
from omnigate.model import DeliveryReport, Inbound, Part, Status
from omnigate.sms.coding import Coding, decode
from omnigate.sms.numbers import Address
from omnigate.sms.segment import concat_udh, parse_concat

from . import codec
from .session import (
    LoggedIn,
    LoggedOut,
    LoginFailed,
    MoReceived,
    ProtocolError,
    ReportReceived,
    ResponseTimeout,
    Session,
    SessionError,
    State,
    SubmitFailed,
    SubmitOk,
    Unexpected,
)

_NO_SENDER = object()  # "no sender cached yet", distinct from None (use the default)
_GSM7 = Coding.GSM7
_UCS2 = Coding.UCS2
_PRINTABLE = "".join(chr(c) for c in range(32, 127))


def _ascii_printable(value: str, what: str) -> str:
    if value.strip(_PRINTABLE):
        raise ValueError(f"{what} must be printable ASCII (CIMD2 string parameter, §6)")
    return value


class Cimd2Config(StreamConfig):
    """One [[links]] entry of type "cimd2". Limits cite the CIMD2 specification (§6)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["cimd2"] = "cimd2"
    user: str = Field(min_length=1, max_length=32, description="user identity (010)")
    password: SecretStr = Field(description="password (011); never logged; at most 32")
    # Odd packet numbers 001..255 are 128; one is kept for alive and logout.
    window: int = Field(1, ge=1, le=codec.NUMBERS - 1,
                        description="submits awaiting their response; above 1 it is asked "
                                    "for at login (019) and must fit the operator's profile")
    keepalive: float = Field(60.0, gt=0, description="seconds without traffic before alive")
    checksum: bool = Field(True, description="send the optional checksum on every packet")
    source_addr: str = Field("", max_length=20, description="sender for parts that have none")
    international_prefix: Literal["+", "00", ""] = Field(
        "+", description="written before E.164 destination numbers")
    status_report_request: int = Field(
        codec.REPORT_FINAL, ge=1, le=63,
        description="056 for parts that want a report: sum of 1 temporary error, 2 validity "
                    "period expired, 4 delivery failed, 8 delivery successful, 16 cancelled,"
                    " 32 deleted")
    priority: int | None = Field(None, ge=1, le=9, description="priority (067), 1 highest")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return _ascii_printable(value, "user")

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if len(raw) > 32:
            raise ValueError("at most 32 characters (CIMD2 §6, parameter 011)")
        _ascii_printable(raw, "password")
        return value

    @field_validator("source_addr")
    @classmethod
    def _source(cls, value: str) -> str:
        if value and not (value.lstrip("+").isdigit() and value.isascii()) and len(value) > 11:
            raise ValueError("an alphanumeric sender has at most 11 characters (parameter 027)")
        return _ascii_printable(value, "source_addr")

    def default_source(self) -> Address | None:
        """`source_addr` as an Address: digits are international (TON 1), else alphanumeric."""
        if not self.source_addr:
            return None
        digits = self.source_addr.lstrip("+")
        if digits.isdigit() and digits.isascii():
            return Address(digits, 1, 1)
        return Address(self.source_addr, 5, 0)


class Cimd2Link(StreamLink):
    """CIMD2 client link; see the module docstring and `carriers.base` for the contract."""

    config_model = Cimd2Config
    config: Cimd2Config  # Link.__init__ checked it against config_model
    protocol = "cimd2"

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        super().__init__(config, events)
        c = self.config
        self._default_source = c.default_source()
        self._prefix = c.international_prefix.encode()
        self._report = codec.param(codec.STATUS_REPORT_REQUEST, c.status_report_request)
        self._priority = (codec.param(codec.PRIORITY, c.priority) if c.priority is not None
                          else b"")
        self._flash_gsm = codec.param(codec.DATA_CODING_SCHEME, 0x10)
        self._dcs_ucs2 = codec.param(codec.DATA_CODING_SCHEME, 0x08)
        self._flash_ucs2 = codec.param(codec.DATA_CODING_SCHEME, 0x18)
        # Pure per-part work cached: the sender's parameter by sender.
        self._sources: dict[tuple[str, int, int] | None, bytes] = {}
        self._last_sender: Address | None = _NO_SENDER  # type: ignore[assignment]
        self._last_source = b""

    # --- part -> submit message -----------------------------------------------------------

    def _source(self, sender: Address | None) -> bytes:
        """The originating address parameter of a sender, cached per sender."""
        if sender is self._last_sender:
            return self._last_source
        key = None if sender is None else (sender.value, sender.ton, sender.npi)
        block = self._sources.get(key)
        if block is None:
            addr = sender if sender is not None else self._default_source
            if addr is None:
                block = b""  # the SMS Center uses the address of the user's profile
            elif addr.ton == 5:
                block = codec.param(codec.ALPHANUMERIC_ORIGINATING_ADDRESS, addr.value)
            elif addr.ton == 1:
                block = codec.param(codec.ORIGINATING_ADDRESS, self._prefix + addr.value.encode())
            else:  # short codes, national numbers: as they are
                block = codec.param(codec.ORIGINATING_ADDRESS, addr.value)
            if len(self._sources) >= 10_000:  # senders are few; bound it anyway
                self._sources.clear()
            self._sources[key] = block
        self._last_sender, self._last_source = sender, block
        return block

    def _encode(self, part: Part) -> bytes:
        """The submit parameters for one part; ValueError if it cannot be sent at all."""
        recipient = part.recipient
        if not (recipient.isdigit() and recipient.isascii() and len(recipient) <= 15):
            raise ValueError(f"recipient {recipient!r} is not E.164 digits")
        fields = [b"021:%s%s\t" % (self._prefix, recipient.encode()), self._source(part.sender)]
        concat = part.concat
        if concat is not None:
            fields.append(b"032:%s\t" % concat_udh(*concat).hex().encode())
        coding = part.coding
        if coding == _GSM7:
            ud = codec.septets_to_user_data(part.data)
            if len(ud) > 480:
                raise ValueError(f"user data is {len(ud)} characters, at most 480 (CIMD2 033)")
            fields.append(b"033:%s\t" % ud)
            if part.flash:
                fields.append(self._flash_gsm)
        elif coding == _UCS2:
            if len(part.data) > 140:
                raise ValueError(f"user data is {len(part.data)} octets, at most 140 (034)")
            fields.append(b"034:%s\t" % part.data.hex().encode())
            fields.append(self._flash_ucs2 if part.flash else self._dcs_ucs2)
        else:
            raise ValueError(f"a part in {coding.name} cannot be sent over CIMD2")
        if part.report:
            fields.append(self._report)
        if part.validity_until is not None:
            vp = codec.relative_validity(part.validity_until - time.time())
            fields.append(b"050:%d\t" % vp)
        if self._priority:
            fields.append(self._priority)
        return b"".join(fields)

    def _ref(self, address: str, timestamp: str) -> str:
        """The carrier reference: destination address (without the international prefix,
        so a report naming it either way matches) and service centre time stamp."""
        prefix = self.config.international_prefix
        if address.startswith("+"):
            address = address[1:]
        elif prefix and address.startswith(prefix):
            address = address[len(prefix):]
        return f"{address}:{timestamp}"

    # --- connecting -------------------------------------------------------------------------

    async def _open(self, host: str, port: int, peer: str, conns: list[Connection]) -> None:
        c = self.config
        session = Session(user=c.user, password=c.password.get_secret_value(),
                          window=c.window, keepalive=c.keepalive,
                          response_timeout=c.response_timeout, checksum=c.checksum)
        conn = Connection(self, session, peer)
        conns.append(conn)
        await self._dial(conn, host, port)
        session.login(self._loop.time())
        conn.flush()
        await self._logged_in(conn)

    def _goodbye(self, conn: Connection, now: float) -> Any:
        session: Session = conn.session
        if session.state is not State.READY:
            return None
        try:
            session.logout(now)
        except SessionError:  # every packet number awaits an answer: just close
            return None
        return conn.finished

    def _start_line(self) -> str:
        return f"user {self.config.user}, window {self.config.window}"

    def _up_line(self, peer: str) -> str:
        return f"logged in as {self.config.user!r} to {peer}"

    # --- what the session says ------------------------------------------------------------

    def _handle(self, conn: Connection, events: list[Any]) -> None:
        on_sent = self.events.on_sent
        for ev in events:
            t = type(ev)
            if t is SubmitOk:
                on_sent(ev.token, self._ref(ev.destination or ev.token.recipient, ev.timestamp))
            elif t is ReportReceived:
                self._on_report(ev.packet)
            elif t is SubmitFailed:
                self._submit_failed(ev.token, ev.kind, ev.reason)
            elif t is MoReceived:
                self._on_mo(ev.packet)
            elif t is LoggedIn:
                conn.login_done(None)
            elif t is LoginFailed:
                hint = ""
                if ev.code in codec.LOGIN_CREDENTIAL_ERRORS:
                    hint = " - check user and password"
                elif ev.code in (codec.ERR_INVALID_WINDOW_SIZE, codec.ERR_WINDOWING_DISABLED):
                    hint = " - lower window to what the operator's profile allows"
                self._on_conn_failed(conn, f"login to {conn.peer} refused: {ev.reason}{hint}")
            elif t is ResponseTimeout:
                self._timed_out(conn, ev.token,
                                f"no {codec.operation_name(ev.op)} response from {conn.peer} "
                                f"within {conn.session.response_timeout:g} s")
            elif t is LoggedOut:
                if ev.by_peer:
                    self._on_conn_failed(conn, f"{conn.peer} logged out")
                elif not conn.finished.done():
                    conn.finished.set_result(None)
            elif t is ProtocolError:
                self._on_conn_failed(conn, f"protocol error from {conn.peer}: {ev.reason}")
            elif t is Unexpected:
                self.log.warning("%s", ev.reason)

    def _on_report(self, pkt: codec.Packet) -> None:
        code = pkt.int(codec.STATUS_CODE)
        entry = codec.STATUS_CODES.get(code) if code is not None else None
        address = pkt.text(codec.DESTINATION_ADDRESS)
        ts = pkt.text(codec.SERVICE_CENTRE_TIME_STAMP)
        if entry is None or not ts:
            self.log.warning("status report for %s:%s with status code %r ignored", address,
                             ts, pkt.text(codec.STATUS_CODE))
            return
        what, status = entry
        if status is None:
            self.log.debug("status report for %s:%s not final (%s)", address, ts, what)
            return
        error = None
        err = pkt.int(codec.STATUS_ERROR_CODE)
        if status is not Status.DELIVERED or err:
            error = what
            if err:
                error += f" (status error {err} {codec.STATUS_ERRORS.get(err, 'unknown')})"
        self.events.on_report(DeliveryReport(self.name, self._ref(address, ts), status, error,
                                             _timestamp(pkt.text(codec.DISCHARGE_TIME))))

    def _on_mo(self, pkt: codec.Packet) -> None:
        params = pkt.params
        concat = None
        udh = params.get(codec.USER_DATA_HEADER)
        if udh:
            try:
                concat = parse_concat(bytes.fromhex(udh.decode("ascii")))
            except ValueError:
                self.log.warning("MO with an unreadable user data header %r", udh[:40])
        dcs = pkt.int(codec.DATA_CODING_SCHEME, 0)
        binary = params.get(codec.USER_DATA_BINARY)
        if binary is None:
            coding = _GSM7
            text = codec.user_data_to_text(params.get(codec.USER_DATA, b""))
        else:
            coding = codec.dcs_coding(dcs or 0)
            if coding is not _UCS2:
                coding = Coding.LATIN1  # 8-bit data: one character per octet, nothing lost
            try:
                data = bytes.fromhex(binary.decode("ascii"))
            except ValueError:
                self.log.warning("MO with unreadable user data binary; kept as it came")
                data, coding = binary, Coding.LATIN1
            text = decode(data, coding)
        sender = (pkt.text(codec.ORIGINATING_ADDRESS)
                  or pkt.text(codec.ALPHANUMERIC_ORIGINATING_ADDRESS))
        if sender.startswith("+"):
            sender = sender[1:]
        recipient = pkt.text(codec.DESTINATION_ADDRESS)
        self.events.on_mo(Inbound(self.name, sender, recipient, text, datetime.now(UTC),
                                  coding, concat))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(user=self.config.user)
        return d


@lru_cache(maxsize=256)
def _timestamp(value: str) -> datetime | None:
    """A CIMD2 time (yyMMddhhmmss, §6) as UTC: the spec gives it no zone, and an SMS
    Center's local time is unknown to us; UTC is what the SMPP link assumes too. Cached:
    reports arriving together share their second."""
    if len(value) != 12 or not value.isdigit():
        return None
    try:
        return datetime(2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]),
                        int(value[6:8]), int(value[8:10]), int(value[10:12]), tzinfo=UTC)
    except ValueError:
        return None
