"""The GSM modem link: a SIM in a modem, spoken to with AT commands in PDU mode.

Where the modem is (one of):

- `device = "/dev/ttyUSB0"` with `baudrate`: a local serial port, through
  pyserial-asyncio (opened in a thread: opening a port may block);
- `url = "rfc2217://host:port"` (or any other pyserial URL): a device server speaking
  RFC 2217; `url = "socket://host:port"` is raw TCP;
- `hosts = ["10.0.0.5:4001"]`: raw TCP to a serial device server (a Moxa NPort in
  TCP-server mode), tried in order. Raw TCP, however given, uses asyncio's own
  transport: pyserial's socket:// connects blocking and drops what was read with
  the end of the connection.

The link around the session is `carriers.stream.StreamLink` (reconnect with back-off,
the queue of parts, rate, stop/terminate, everything held failed TEMPORARY when the
connection goes); a modem has a window of one. What a modem adds:

- Coverage: AT+CREG? every `poll_interval` (and the +CREG URC). Not registered means
  the link is DOWN - held parts go back as TEMPORARY, routes fall back, the link-state
  listeners send the alarm - and the modem is reopened with back-off; each start waits
  up to `register_timeout` for registration, so the link is UP again as soon as the
  network is back.
- The SIM PIN: a SIM locks itself after three wrong PINs. The link asks AT+CPINR how
  many attempts are left and does not try with fewer than two; a modem without
  AT+CPINR gets a refused PIN at most once per process.
- MO and status reports arrive stored (+CMTI / +CDSI with the default AT+CNMI) or
  directly (+CMT / +CDS); stored ones are read, handed to the core, then deleted
  (AT+CMGD). At each start, AT+CMGL=4 sweeps in what came while the link was away.
  A stop with `finish` waits for pending deletions. (A crash between the hand-off
  and the group commit loses an MO that is already deleted: the window is the
  store's commit interval.)
- The carrier reference is "<TP-MR>:<recipient>": the modem's 8-bit reference alone
  repeats every 256 messages; a status report names both (TS 23.040 §9.2.2.3).
- The sender is the SIM's own number: a part's sender cannot be used.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import UTC
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from omnigate.carriers.base import LinkConfig, LinkEvents
from omnigate.carriers.stream import Connection, LinkFailed, StreamLink
from omnigate.config import split_hostport
from omnigate.model import DeliveryReport, Inbound, Part, Status
from omnigate.sms import pdu as tpdu
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from omnigate.sms.segment import concat_udh, parse_concat

from . import codes
from .session import (
    Notice,
    Operator,
    Ready,
    Received,
    Registration,
    SendFailed,
    Sent,
    Session,
    Signal,
    StartFailed,
    Timeout,
    Undecodable,
)


class ModemConfig(LinkConfig):
    """One [[links]] entry of type "modem": exactly one of `device`, `url`, `hosts`."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # the PIN

    type: Literal["modem"] = "modem"
    device: str = Field("", description="serial device, e.g. /dev/ttyUSB0")
    url: str = Field("", description="pyserial URL: rfc2217://host:port or socket://host:port")
    baudrate: int = Field(115200, gt=0, description="of a serial device")
    pin: SecretStr | None = Field(None, description="SIM PIN, 4-8 digits; never logged")
    smsc_number: str = Field("", description="service centre in each PDU, e.g. +46705008999; "
                                             "empty: the SIM's (AT+CSCA)")
    number: str = Field("", description="the SIM's own number, as MO recipient; empty: "
                                        "what AT+CNUM says")
    init: list[str] = Field(default_factory=lambda: ["ATZ", "ATE0", "AT+CMEE=1"],
                            description="commands before the PIN check")
    setup: list[str] = Field(
        default_factory=lambda: ["AT+CNMI=2,1,0,2,0", 'AT+CPMS="SM","SM","SM"', "AT+CREG=1"],
        description="commands after AT+CMGF=0: indications (MO and reports stored, so "
                    "none is lost while the link is away), storage, +CREG URCs")
    queue: int = Field(1, ge=0, le=1000,
                       description="parts held beyond the one being sent; 1 keeps the "
                                   "modem busy without taking parts other links could send")
    poll_interval: float = Field(30.0, gt=0, description="seconds between AT+CSQ / AT+CREG? "
                                                         "/ AT+COPS? polls")
    command_timeout: float = Field(10.0, gt=0, description="seconds for any other command")
    response_timeout: float = Field(60.0, gt=0,
                                    description="seconds for AT+CMGS (the network's answer)")
    register_timeout: float = Field(60.0, gt=0,
                                    description="seconds a start waits for registration")
    throttle_backoff: float = Field(5.0, gt=0, description="pause after congestion "
                                                            "(+CMS ERROR 42, 192)")

    @property
    def window(self) -> int:
        """A modem sends one SMS at a time."""
        return 1

    @field_validator("pin")
    @classmethod
    def _pin(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            pin = value.get_secret_value()
            if not (pin.isdigit() and pin.isascii() and 4 <= len(pin) <= 8):
                raise ValueError("a SIM PIN is 4-8 digits")
        return value

    @field_validator("smsc_number")
    @classmethod
    def _smsc(cls, value: str) -> str:
        if value:
            tpdu.smsc_field(value)
        return value

    @field_validator("init", "setup")
    @classmethod
    def _commands(cls, value: list[str]) -> list[str]:
        for line in value:
            if not line.upper().startswith("AT") or not line.isascii() or "\r" in line:
                raise ValueError(f"{line!r} is not one AT command line")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> ModemConfig:
        given = [name for name in ("device", "url", "hosts") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of device, url (rfc2217:// or socket://) or "
                             f"hosts (host:port of a serial device server); got "
                             f"{', '.join(given) or 'none'}")
        for h in self.hosts:
            split_hostport(h)
        if self.url and "://" not in self.url:
            raise ValueError(f"url {self.url!r} needs a scheme: rfc2217://host:port or "
                             "socket://host:port (a local port goes in `device`)")
        if self.url.startswith("socket://"):
            split_hostport(self.url[len("socket://"):].split("?")[0])
        return self


class ModemConnection(Connection):
    """The stream connection, closed by a modem rather than an SMSC; it also ends a
    graceful stop's wait for pending deletions when it goes."""

    closed_by = "the modem"

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.link._idle(self)  # type: ignore[attr-defined]  # an answer without events

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.link._idle(self)  # type: ignore[attr-defined]


class ModemLink(StreamLink):
    """A GSM modem link; see the module docstring and `carriers.base`."""

    config_model = ModemConfig
    protocol = "modem"
    config: ModemConfig  # type: ignore[assignment]  # Link.__init__ checks it against the model

    def __init__(self, config: LinkConfig, events: LinkEvents) -> None:
        super().__init__(config, events)  # type: ignore[arg-type]
        c = self.config
        # Where to connect: (host, port) for raw TCP; (device or URL, 0) for pyserial.
        if c.url.startswith("socket://"):
            self._hosts = [split_hostport(c.url[len("socket://"):].split("?")[0])]
        elif c.url or c.device:
            self._hosts = [(c.url or c.device, 0)]
        self._pin_refused = False
        self._leaving: asyncio.Future[None] | None = None
        self._number = c.number
        self._rssi: int | None = None
        self._stat: int | None = None
        self._operator = ""

    # --- part -> PDU ---------------------------------------------------------------------

    def _encode(self, part: Part) -> tuple[str, int]:
        """(PDU hex, TPDU length) of an SMS-SUBMIT; ValueError if it cannot be sent."""
        recipient = part.recipient
        if not (recipient.isdigit() and recipient.isascii()):
            raise ValueError(f"recipient {recipient!r} is not a phone number; a SIM sends "
                             "to numbers only")
        if part.coding is not Coding.GSM7 and part.coding is not Coding.UCS2:
            raise ValueError(f"coding {part.coding.name} cannot be sent by a modem")
        validity = None
        if part.validity_until is not None:
            validity = max(0.0, part.validity_until - time.time())
        data, length = tpdu.encode_submit(
            Address(recipient, tpdu.TON_INTERNATIONAL, tpdu.NPI_ISDN), part.coding, part.data,
            udh=concat_udh(*part.concat) if part.concat is not None else b"",
            smsc=self.config.smsc_number or None, flash=part.flash, report=part.report,
            validity=validity)
        return data.hex().upper(), length

    # --- what the session says -------------------------------------------------------------

    def _handle(self, conn: Connection, events: list[Any]) -> None:
        for ev in events:
            t = type(ev)
            if t is Sent:
                self.events.on_sent(ev.token, f"{ev.mr}:{ev.token.recipient}")
            elif t is SendFailed:
                self._submit_failed(ev.token, ev.kind, ev.reason)
            elif t is Received:
                self._on_received(conn, ev.message, ev.index)
            elif t is Registration:
                self._on_registration(conn, ev.stat)
            elif t is Signal:
                self._rssi = ev.rssi
            elif t is Operator:
                self._operator = ev.name
            elif t is Ready:
                self._number = self.config.number or ev.number
                conn.login_done(None)
            elif t is StartFailed:
                self._pin_refused = self._pin_refused or ev.pin_refused
                self._on_conn_failed(conn, f"modem on {conn.peer}: {ev.reason}")
            elif t is Timeout:
                self._timed_out(conn, ev.token, f"no answer to {ev.line.split('=')[0]} from "
                                                f"the modem on {conn.peer} within "
                                                f"{ev.seconds:g} s; reopening it")
            elif t is Undecodable:
                self.log.warning("stored message %s cannot be decoded (%s), deleted: %s",
                                 ev.index, ev.reason, ev.pdu)
                self._delete(conn, ev.index)
            elif t is Notice:
                self.log.debug("%s", ev.text)
        self._idle(conn)

    def _on_received(self, conn: Connection, message: Any, index: int | None) -> None:
        if isinstance(message, tpdu.Deliver):
            udh = message.udh
            self.events.on_mo(Inbound(
                self.name, message.sender.value, self._number,
                tpdu.text_of(message.coding, message.data), message.scts.astimezone(UTC),
                message.coding if message.coding is not None else Coding.LATIN1,
                parse_concat(udh) if udh else None))
        elif not message.final:
            self.log.debug("status report for MR %d not final: TP-ST %02X", message.mr,
                           message.status)
        else:
            st = message.status
            if message.delivered:
                status, error = Status.DELIVERED, None
            else:
                status = (Status.EXPIRED if st == tpdu.ST_VALIDITY_EXPIRED
                          else Status.UNDELIVERED)
                error = f"TP-ST {st:02X} ({tpdu.STATUS_TEXT.get(st, 'unspecified')})"
            self.events.on_report(DeliveryReport(
                self.name, f"{message.mr}:{message.recipient.value}", status, error,
                message.done_at.astimezone(UTC)))
        self._delete(conn, index)

    def _delete(self, conn: Connection, index: int | None) -> None:
        """Delete a stored message once it has been handed on."""
        if index is not None and not conn.dropped:
            conn.session.delete(index, self._loop.time())
            conn.want_flush()

    def _on_registration(self, conn: Connection, stat: int) -> None:
        self._stat = stat
        if stat in codes.REGISTERED or not conn.ready.done() or conn.dropped:
            return
        dbm = codes.rssi_dbm(self._rssi) if self._rssi is not None else None
        signal = f"{dbm} dBm" if dbm is not None else "unknown"
        self._on_conn_failed(conn, f"coverage lost: {codes.REGISTRATION.get(stat, stat)} "
                                   f"(signal {signal}); down until the modem registers again")

    # --- open, start, leave ------------------------------------------------------------------

    async def _open(self, host: str, port: int, peer: str, conns: list[Connection]) -> None:
        c = self.config
        session = Session(
            pin=c.pin.get_secret_value() if c.pin is not None else None,
            pin_refused=self._pin_refused, init=c.init, setup=c.setup,
            command_timeout=c.command_timeout, response_timeout=c.response_timeout,
            poll_interval=c.poll_interval, register_timeout=c.register_timeout)
        conn = ModemConnection(self, session, peer)
        conns.append(conn)
        if port:
            await self._dial(conn, host, port)
        else:
            await self._open_serial(conn, host)
        session.start(self._loop.time())
        conn.flush()
        await self._logged_in(conn)

    async def _open_serial(self, conn: Connection, url: str) -> None:
        """Open a device or pyserial URL in a thread (it may block), then hand it to
        pyserial-asyncio's transport."""
        import serial
        import serial_asyncio

        try:
            async with asyncio.timeout(self.config.connect_timeout):
                port = await self._loop.run_in_executor(None, functools.partial(
                    serial.serial_for_url, url, baudrate=self.config.baudrate))
        except (serial.SerialException, OSError, ValueError, TimeoutError) as exc:
            raise LinkFailed(f"cannot open {url}: {str(exc) or type(exc).__name__}") from None
        transport, _ = await serial_asyncio.connection_for_serial(self._loop, lambda: conn,
                                                                  port)
        conn.transport = transport  # connection_made comes a loop turn later; we write now

    def _goodbye(self, conn: Connection, now: float) -> asyncio.Future[None] | None:
        """Let pending commands (deletions of messages handed on) finish before closing."""
        if conn.dropped or conn.session.idle:
            return None
        self._leaving = self._loop.create_future()
        return self._leaving

    def _idle(self, conn: Connection) -> None:
        leaving = self._leaving
        if leaving is not None and (conn.dropped or conn.session.idle) and not leaving.done():
            leaving.set_result(None)

    def _peer_name(self, host: str, port: int) -> str:
        return f"{host}:{port}" if port else host

    def _start_line(self) -> str:
        c = self.config
        where = f"modem at {c.device or c.url}, " if c.device or c.url else ""
        return f"{where}polling every {c.poll_interval:g} s"

    def _up_line(self, peer: str) -> str:
        return f"modem on {peer} ready{f' (SIM number {self._number})' if self._number else ''}"

    def _leave_line(self, peer: str) -> str:
        return f"finishing pending commands on {peer}"

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        rssi = self._rssi
        d.update(signal=rssi, signal_dbm=codes.rssi_dbm(rssi) if rssi is not None else None,
                 registration=(codes.REGISTRATION.get(self._stat, str(self._stat))
                               if self._stat is not None else None),
                 operator=self._operator or None, number=self._number or None)
        return d
