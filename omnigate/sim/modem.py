"""A GSM modem simulator on TCP: what a modem behind a serial device server (a Moxa
NPort in TCP-server mode) looks like to omnigate's modem link.

It speaks AT commands (3GPP TS 27.007, TS 27.005 in PDU mode) to whoever connects,
with one modem's state behind every connection: a SIM with a PIN (three wrong ones
lock it: SIM PUK), message storage (30 slots, like a SIM), registration and signal.
It takes SMS-SUBMIT PDUs with AT+CMGS and answers "+CMGS: <mr>"; stores a status
report for each submit that asked for one (TP-SRR) and announces it (+CDSI, or +CDS
per AT+CNMI); stores injected MO (+CMTI, or +CMT); reports registration changes
(+CREG). Its PDU reader and writer are written here, from TS 23.040, and share
nothing with `omnigate.sms.pdu`; text decoding comes from `sim.smpp`.

Strict where a real modem may be lenient, to catch our own mistakes; each of these
is a *violation* (logged, counted in `violations`) and answered ERROR or +CMS ERROR:

- a command line before the previous one has its final result code;
- a line that is not an AT command; a known command with malformed arguments;
- SMS commands before AT+CMGF=0 (the modem starts in text mode, as many are set up);
- in AT+CMGS: a length that is not the TPDU's, a PDU that is not upper- or lower-case
  hex, not an SMS-SUBMIT, or whose fields do not add up (+CMS ERROR: 304).

Refusals that are not violations: a wrong PIN (+CME ERROR: 16), anything needing the
SIM before its PIN (+CME ERROR: 11), AT+CMGS while not registered (+CMS ERROR: 331),
an unknown command (ERROR), an empty storage index (+CMS ERROR: 321).

Faults: the shared ones (`sim.base`): `fail_every` (+CMS ERROR: 1, unassigned
number: permanent), `throttle_every` (+CMS ERROR: 42, congestion), `drop_after`,
`response_delay` (seconds per AT+CMGS: a real modem takes a few), `no_response`,
`dlr`, `dlr_delay`, `dlr_status`; and the modem's own, also through `set_faults` and
the control endpoint: `registration` (+CREG <stat>: 1 home, 5 roaming, 2 searching,
0 none, 3 denied), `signal` (+CSQ <rssi>) and `error_sends` (the next N AT+CMGS
answered +CMS ERROR: 38, network out of order: temporary).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import re
import time
import tty
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omnigate.sim.base import (
    SimConnection,
    Simulator,
    SimulatorError,
    SimulatorOptions,
    add_common_arguments,
    cli_main,
    common_options,
    serve,
)
from omnigate.sim.smpp import decode_text, gsm_encode, split_mo, udh_concat

if TYPE_CHECKING:
    from collections.abc import Iterable

    from typing_extensions import Unpack

log = logging.getLogger("omnigate.sim.modem")

__all__ = ["ModemSimulator", "RecordedSubmit", "SimulatorError", "add_arguments", "run"]

SLOTS = 30  # message storage of a typical SIM
PIN_ATTEMPTS = 3  # a SIM locks itself (wants its PUK) after three wrong PINs
MAX_LINE = 1024
CTRL_Z, ESC = 0x1A, 0x1B
# TP-ST of a status report per `dlr_status` (TS 23.040 §9.2.3.15).
DLR_STATES = {"delivered": 0x00, "undelivered": 0x41, "expired": 0x46, "pending": 0x22}
SMSC = "46705008999"  # the service centre the simulated SIM knows (AT+CSCA?)
_NUMBERED = re.compile(r"^\d+$")
_TEXT_MODE_ONLY = ("+CMGS", "+CMGR", "+CMGL", "+CMGD")


# --------------------------------------------------------------------------
# TS 23.040 by hand: what the simulator reads and writes
# --------------------------------------------------------------------------


class BadPdu(Exception):
    """An SMS-SUBMIT that breaks TS 23.040."""


def _septets_from(data: bytes, count: int, skip_bits: int) -> bytes:
    """`count` septets read bit by bit, LSB first, after `skip_bits` bits."""
    out = bytearray()
    bit = skip_bits
    for _ in range(count):
        value = 0
        for k in range(7):
            octet, pos = divmod(bit + k, 8)
            if octet >= len(data):
                raise BadPdu("user data shorter than TP-UDL says")
            value |= ((data[octet] >> pos) & 1) << k
        out.append(value)
        bit += 7
    return bytes(out)


def _septets_into(septets: bytes, skip_bits: int) -> bytes:
    """Septets packed bit by bit, LSB first, after `skip_bits` zero bits."""
    total = skip_bits + 7 * len(septets)
    out = bytearray((total + 7) // 8)
    bit = skip_bits
    for s in septets:
        for k in range(7):
            if s >> k & 1:
                octet, pos = divmod(bit + k, 8)
                out[octet] |= 1 << pos
        bit += 7
    return bytes(out)


def _swap_digits(digits: str) -> bytes:
    padded = digits + ("F" if len(digits) % 2 else "")
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2)))


def _address_field(number: str) -> bytes:
    """OA / RA: international if it starts with '+' (or has 10+ digits), else unknown;
    alphanumeric as packed septets with TOA D0."""
    digits = number.lstrip("+")
    if digits.isdigit():
        toa = 0x91 if number.startswith("+") or len(digits) >= 10 else 0x81
        return bytes((len(digits), toa)) + _swap_digits(digits)
    septets = gsm_encode(number)
    if septets is None or len(septets) > 11:
        raise ValueError(f"{number!r} cannot be an alphanumeric address")
    return bytes((len(septets) * 7 // 4 + (1 if len(septets) * 7 % 4 else 0), 0xD0)) + \
        _septets_into(septets, 0)


def _scts(moment: float) -> bytes:
    t = time.gmtime(moment)
    fields = (t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0)
    return bytes(int(f"{v:02d}"[::-1], 16) for v in fields)


def _fill(udh_octets: int) -> int:
    return (7 - (udh_octets * 8) % 7) % 7


@dataclass(slots=True, eq=False)
class RecordedSubmit:
    """One SMS-SUBMIT as received. `user_data` is without UDH: unpacked septets for the
    default alphabet, octets otherwise."""

    message_id: str  # TP-MR as answered
    source: str  # the SIM's number: a modem sends with its own
    destination: str
    toa: int
    data_coding: int  # TP-DCS
    user_data: bytes
    udh: bytes | None
    srr: bool
    validity: int | None  # relative TP-VP
    pdu: str
    received_at: float

    @property
    def text(self) -> str:
        return decode_text(self.data_coding, self.user_data)

    @property
    def concat(self) -> tuple[int, int, int] | None:
        return udh_concat(self.udh) if self.udh else None

    @property
    def flash(self) -> bool:
        return self.data_coding & 0xD3 == 0x10  # general group, class 0

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "from": self.source, "to": self.destination,
                "toa": self.toa, "text": self.text, "coding": self.data_coding,
                "udh": self.udh.hex() if self.udh else None, "concat": self.concat,
                "srr": self.srr, "validity": self.validity, "flash": self.flash,
                "pdu": self.pdu, "at": self.received_at}


def read_submit(pdu: bytes, length: int) -> tuple[str, int, int, bytes, bytes | None, bool,
                                                  int | None]:
    """(destination, TOA, DCS, user data, UDH, SRR, VP) of an AT+CMGS PDU; BadPdu."""
    if not pdu:
        raise BadPdu("empty PDU")
    sca = pdu[0]
    if sca > 11:
        raise BadPdu(f"SMSC address of {sca} octets")
    t = pdu[1 + sca:]
    if len(t) != length:
        raise BadPdu(f"AT+CMGS={length} but the TPDU has {len(t)} octets")
    if len(t) < 7:
        raise BadPdu("TPDU too short for an SMS-SUBMIT")
    first = t[0]
    if first & 0x03 != 0x01:
        raise BadPdu(f"TP-MTI {first & 3} is not SMS-SUBMIT")
    digits, toa = t[2], t[3]
    octets = (digits + 1) // 2
    if not 1 <= digits <= 20 or len(t) < 4 + octets + 3:
        raise BadPdu(f"TP-DA of {digits} digits")
    raw = t[4:4 + octets].hex().upper()
    number = "".join(raw[i + 1] + raw[i] for i in range(0, len(raw), 2))[:digits]
    if (toa >> 4) & 7 == 5 or not number.isdigit():
        raise BadPdu(f"TP-DA {number!r} (TOA {toa:02X}) is not a number a SIM can send to")
    i = 4 + octets
    dcs = t[i + 1]
    i += 2
    vpf = (first >> 3) & 3
    vp = None
    if vpf == 2:
        vp = t[i]
        i += 1
    elif vpf:
        raise BadPdu(f"TP-VPF {vpf}: only relative validity is expected")
    if i >= len(t):
        raise BadPdu("TPDU ends before TP-UDL")
    udl, ud = t[i], t[i + 1:]
    udhi = bool(first & 0x40)
    gsm = (dcs & 0xC0 == 0 and (dcs >> 2) & 3 == 0) or (dcs & 0xF4 == 0xF0)
    udh = None
    if udhi and not ud:
        raise BadPdu("TP-UDHI set but no user data")
    if gsm:
        if udl > 160 or len(ud) != (udl * 7 + 7) // 8:
            raise BadPdu(f"TP-UDL {udl} septets but {len(ud)} octets follow")
        skip = 0
        if udhi:
            udh = ud[:ud[0] + 1]
            skip = len(udh) * 8 + _fill(len(udh))
        data = _septets_from(ud, udl - skip // 7, skip)
    else:
        if udl > 140 or len(ud) != udl:
            raise BadPdu(f"TP-UDL {udl} octets but {len(ud)} follow")
        data = ud
        if udhi:
            udh = ud[:ud[0] + 1]
            data = ud[len(udh):]
    if udh is not None and (len(udh) < 1 or udh[0] + 1 != len(udh) or len(udh) > len(ud)):
        raise BadPdu("UDH length runs past the user data")
    return number, toa, dcs, data, udh, bool(first & 0x20), vp


def deliver_pdu(source: str, dcs: int, sm: bytes, udhi: bool, moment: float) -> bytes:
    """An SMS-DELIVER as a modem stores it, SMSC field first; `sm` holds the UDH (if
    `udhi`) and the unpacked septets or octets."""
    first = 0x04 | (0x40 if udhi else 0)  # MMS: no more messages waiting
    udh = sm[:sm[0] + 1] if udhi else b""
    body = sm[len(udh):]
    if dcs == 0x00:
        fill = _fill(len(udh)) if udh else 0
        udl = (len(udh) * 8 + fill) // 7 + len(body)
        ud = udh + _septets_into(body, fill)
    else:
        udl, ud = len(sm), sm
    return (bytes((0x07, 0x91)) + _swap_digits(SMSC) + bytes((first,)) + _address_field(source)
            + bytes((0x00, dcs)) + _scts(moment) + bytes((udl,)) + ud)


def status_report_pdu(mr: int, destination: str, toa: int, submitted: float, st: int) -> bytes:
    """An SMS-STATUS-REPORT naming the submit by TP-MR and TP-RA (TS 23.040 §9.2.2.3)."""
    ra = bytes((len(destination), toa)) + _swap_digits(destination)
    return (bytes((0x07, 0x91)) + _swap_digits(SMSC) + bytes((0x06, mr)) + ra + _scts(submitted)
            + _scts(time.time()) + bytes((st,)))


# --------------------------------------------------------------------------
# One connection: the serial line, as the device server relays it
# --------------------------------------------------------------------------


class _Connection(SimConnection[RecordedSubmit]):
    sim: ModemSimulator

    def __init__(self, sim: ModemSimulator) -> None:
        super().__init__(sim)
        self._busy = False  # a command awaits its final result code
        self._pdu_for: int | None = None  # AT+CMGS=<length> prompted; reading the PDU

    @property
    def receives_for(self) -> str | None:
        return "modem"

    def _log(self, level: int, msg: str, *args: Any) -> None:
        self.sim.log.log(level, "MODEM-SIM[%s] " + msg, self.peer, *args)

    def _violation(self, msg: str, *args: Any) -> None:
        text = msg % args if args else msg
        self.sim.violations.append(text)
        self._log(logging.WARNING, "violation: %s", text)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        while buf and not self._closed:
            if self._pdu_for is not None:
                end = next((i for i, b in enumerate(buf) if b in (CTRL_Z, ESC)), -1)
                if end < 0:
                    break
                text, mark, buf = buf[:end], buf[end], buf[end + 1:]
                length, self._pdu_for = self._pdu_for, None
                if mark == ESC:
                    self._final("OK")  # sending cancelled (27.005 §3.5.1)
                else:
                    self._on_pdu(text.decode("latin-1").strip(), length)
                continue
            end = buf.find(b"\r")
            if end < 0:
                break
            line, buf = buf[:end].decode("latin-1").strip(), buf[end + 1:]
            if line:
                self._on_line(line)
        if len(buf) > MAX_LINE:
            self._violation("%d octets without a line end", len(buf))
            buf = b""
        self._buf = buf

    # replies ---------------------------------------------------------------

    def _info(self, *lines: str) -> None:
        self.write(b"".join(f"\r\n{line}\r\n".encode("latin-1") for line in lines))

    def _final(self, result: str) -> None:
        self._busy = False
        self.write(f"\r\n{result}\r\n".encode("latin-1"))

    def _error(self, kind: str, code: int) -> None:
        """+CME/+CMS ERROR: <n> with AT+CMEE=1, plain ERROR with AT+CMEE=0."""
        self._final(f"+{kind} ERROR: {code}" if self.sim.cmee else "ERROR")

    # commands --------------------------------------------------------------

    def _on_line(self, line: str) -> None:
        sim = self.sim
        if sim.echo:
            self.write(line.encode("latin-1") + b"\r")
        if self._busy:
            self._violation("command %r before the previous one's final result code", line)
            return
        if line[:2].upper() != "AT":
            self._violation("%r is not an AT command", line[:40])
            self.write(b"\r\nERROR\r\n")
            return
        self._busy = True
        cmd = line[2:]
        upper = cmd.upper()
        try:
            self._command(cmd, upper)
        except _Malformed as exc:
            self._violation("%s: %s", line[:40], exc)
            self._final("ERROR")

    def _command(self, cmd: str, upper: str) -> None:
        sim = self.sim
        if upper in ("", "Z", "E0", "E1", "V1", "&F"):
            if upper in ("Z", "&F"):
                sim.reset()
            elif upper[:1] == "E":
                sim.echo = upper == "E1"
            return self._final("OK")
        name, _, arg = upper.partition("=")
        query = name.endswith("?")
        name = name.rstrip("?")
        if name == "+CMEE":
            sim.cmee = _number(arg, 0, 2) if arg else 0
            return self._final("OK")
        if name == "+CPIN":
            return self._cpin(query, cmd.partition("=")[2])
        if name == "+CPINR":
            return self._final_with(f'+CPINR: "SIM PIN",{sim.pin_attempts},{PIN_ATTEMPTS}')
        if sim.sim_state != "READY" and name not in ("+CSQ", "+CREG"):
            return self._error("CME", 11 if sim.sim_state == "SIM PIN" else 12)
        if name == "+CMGF":
            if query:
                return self._final_with(f"+CMGF: {sim.cmgf}")
            sim.cmgf = _number(arg, 0, 1)
            return self._final("OK")
        if name in _TEXT_MODE_ONLY and sim.cmgf != 0:
            self._violation("%s in text mode (AT+CMGF=0 not sent)", name)
            return self._error("CMS", 302)
        handler = {"+CNMI": self._cnmi, "+CPMS": self._cpms, "+CREG": self._creg,
                   "+CNUM": self._cnum, "+CSQ": self._csq, "+COPS": self._cops,
                   "+CSCA": self._csca, "+CMGS": self._cmgs, "+CMGR": self._cmgr,
                   "+CMGL": self._cmgl, "+CMGD": self._cmgd}.get(name)
        if handler is None:
            self._log(logging.INFO, "unknown command AT%s: ERROR", cmd[:40])
            return self._final("ERROR")
        return handler(arg, query)

    def _final_with(self, *lines: str) -> None:
        self._info(*lines)
        self._final("OK")

    def _cpin(self, query: bool, arg: str) -> None:
        sim = self.sim
        if query:
            return self._final_with(f"+CPIN: {sim.sim_state}")
        pin = arg.strip().strip('"')
        if not pin.isdigit():
            raise _Malformed("AT+CPIN needs the PIN's digits")
        if sim.sim_state == "READY":
            return self._final("OK")  # some modems say ERROR; either is harmless
        if sim.sim_state == "SIM PUK":
            return self._error("CME", 12)
        if pin == sim.password:
            sim.sim_state, sim.pin_attempts = "READY", PIN_ATTEMPTS
            self._log(logging.INFO, "PIN accepted")
            return self._final("OK")
        sim.pin_attempts -= 1
        self._log(logging.INFO, "wrong PIN; %d attempt(s) left", sim.pin_attempts)
        if sim.pin_attempts <= 0:
            sim.sim_state = "SIM PUK"
        return self._error("CME", 16)

    def _cnmi(self, arg: str, query: bool) -> None:
        values = arg.split(",")
        if query or not 1 <= len(values) <= 5 or not all(_NUMBERED.match(v) for v in values):
            raise _Malformed("AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>")
        nums = [int(v) for v in values] + [0] * (5 - len(values))
        self.sim.cnmi_mt, self.sim.cnmi_ds = nums[1], nums[3]
        self._final("OK")

    def _cpms(self, arg: str, query: bool) -> None:
        mems = [m.strip().strip('"') for m in arg.split(",")] if arg else []
        if not query and (not mems or any(m not in ("SM", "ME", "MT") for m in mems)):
            raise _Malformed('AT+CPMS="SM"[,"SM"[,"SM"]]')
        used = len(self.sim.storage)
        if query:
            return self._final_with(",".join([f'+CPMS: "SM",{used},{SLOTS}'] +
                                             [f'"SM",{used},{SLOTS}'] * 2))
        return self._final_with("+CPMS: " + ",".join([f"{used},{SLOTS}"] * 3))

    def _creg(self, arg: str, query: bool) -> None:
        sim = self.sim
        if query:
            return self._final_with(f"+CREG: {sim.creg_urc},{sim.registration}")
        sim.creg_urc = _number(arg, 0, 2)
        return self._final("OK")

    def _cnum(self, arg: str, query: bool) -> None:
        number = self.sim.number
        if number:
            return self._final_with(f'+CNUM: "","+{number}",145')
        return self._final("OK")

    def _csq(self, arg: str, query: bool) -> None:
        self._final_with(f"+CSQ: {self.sim.signal},99")

    def _cops(self, arg: str, query: bool) -> None:
        sim = self.sim
        if sim.registration in (1, 5):
            return self._final_with(f'+COPS: 0,0,"{sim.operator}",2')
        return self._final_with("+COPS: 0")

    def _csca(self, arg: str, query: bool) -> None:
        if query:
            return self._final_with(f'+CSCA: "+{SMSC}",145')
        return self._final("OK")

    def _cmgs(self, arg: str, query: bool) -> None:
        if query or not _NUMBERED.match(arg) or not 7 <= int(arg) <= 164:
            raise _Malformed("AT+CMGS=<TPDU length> (7-164)")
        self._pdu_for = int(arg)
        self.write(b"\r\n> ")

    def _on_pdu(self, text: str, length: int) -> None:
        sim = self.sim
        self.submits += 1
        try:
            if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", text):
                raise BadPdu(f"PDU is not hex: {text[:40]!r}")
            raw = bytes.fromhex(text)
            dest, toa, dcs, data, udh, srr, vp = read_submit(raw, length)
        except BadPdu as exc:
            sim.rejected_count += 1
            self._violation("AT+CMGS: %s", exc)
            return self._send_result("+CMS ERROR: 304")
        sim.received_count += 1
        count = sim.received_count
        if sim.registration not in (1, 5):
            return self._send_result("+CMS ERROR: 331")
        if sim.error_sends > 0:
            sim.error_sends -= 1
            sim.failed_count += 1
            return self._send_result("+CMS ERROR: 38")
        if sim.throttle_every and count % sim.throttle_every == 0:
            sim.throttled_count += 1
            return self._send_result("+CMS ERROR: 42")
        if sim.fail_every and count % sim.fail_every == 0:
            sim.failed_count += 1
            return self._send_result("+CMS ERROR: 1")
        mr = sim.next_mr()
        rec = RecordedSubmit(str(mr), sim.number, dest, toa, dcs, data, udh, srr, vp, text,
                             time.time())
        sim._accept(rec, self)
        sim._wake_waiters()
        self._send_result(f"+CMGS: {mr}")

    def _send_result(self, line: str) -> None:
        """The answer to AT+CMGS, after `response_delay` (the network's time) or never."""
        sim = self.sim
        if sim.no_response:
            return  # stays busy: the next command is a violation only if the link errs
        if line.startswith("+CMS ERROR") and not sim.cmee:
            line = "ERROR"
        if sim.response_delay > 0:
            sim._loop.call_later(sim.response_delay, self._answer_send, line)
        else:
            self._answer_send(line)

    def _answer_send(self, line: str) -> None:
        if self._closed:
            return
        if line.startswith("+CMGS"):
            self._info(line)
            self._final("OK")
        else:
            self._final(line)
        if self._drop_due() and not isinstance(self.transport, _PtyTransport):
            self._closed = True
            if self.transport is not None:
                self.transport.close()

    def _cmgr(self, arg: str, query: bool) -> None:
        if not _NUMBERED.match(arg):
            raise _Malformed("AT+CMGR=<index>")
        stored = self.sim.storage.get(int(arg))
        if stored is None:
            return self._error("CMS", 321)
        stat, pdu = stored
        self.sim.storage[int(arg)] = (1 if stat == 0 else stat, pdu)  # now read
        self._final_with(f"+CMGR: {stat},,{len(pdu) - 1 - pdu[0]}\r\n{pdu.hex().upper()}")

    def _cmgl(self, arg: str, query: bool) -> None:
        if not _NUMBERED.match(arg) or int(arg) > 4:
            raise _Malformed("AT+CMGL=<stat 0-4> (PDU mode)")
        want = int(arg)
        lines = []
        for index, (stat, pdu) in sorted(self.sim.storage.items()):
            if want == 4 or stat == want:
                lines.append(f"+CMGL: {index},{stat},,{len(pdu) - 1 - pdu[0]}\r\n"
                             f"{pdu.hex().upper()}")
                if stat == 0:
                    self.sim.storage[index] = (1, pdu)
        if lines:
            return self._final_with(*lines)
        return self._final("OK")

    def _cmgd(self, arg: str, query: bool) -> None:
        index = arg.split(",")[0]
        if not _NUMBERED.match(index):
            raise _Malformed("AT+CMGD=<index>")
        if self.sim.storage.pop(int(index), None) is None:
            return self._error("CMS", 321)
        self.sim.deleted_count += 1
        return self._final("OK")


class _PtyTransport(asyncio.Transport):
    """Writes to a pty master; what nobody reads is lost, as on a serial line."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with contextlib.suppress(OSError):  # no one reads the line: the bytes are gone
            os.write(self.fd, data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """A serial line is not closed by the modem; the link reopens it."""

    def abort(self) -> None:
        """As close()."""


class _Malformed(Exception):
    """A known command with arguments it does not take."""


def _number(arg: str, low: int, high: int) -> int:
    if not _NUMBERED.match(arg) or not low <= int(arg) <= high:
        raise _Malformed(f"expected a number {low}-{high}, got {arg!r}")
    return int(arg)


# --------------------------------------------------------------------------
# The simulator: one modem with one SIM
# --------------------------------------------------------------------------

MODEM_FAULTS: dict[str, tuple[int, int]] = {"registration": (0, 5), "signal": (0, 99),
                                            "error_sends": (0, 1_000_000)}


class ModemSimulator(Simulator[RecordedSubmit, _Connection]):
    """A GSM modem on a TCP port; `password` is the SIM PIN (None: no PIN asked)."""

    NAME = "GSM modem simulator"
    LOG_PREFIX = "MODEM-SIM"
    UNITS = "AT+CMGS"
    DLR_STATUSES = DLR_STATES
    DLR_STATUS_DEFAULT = "delivered"
    log = log

    def __init__(self, *, number: str = "46700000001", operator: str = "Omnisim",
                 pty: bool = False, **options: Unpack[SimulatorOptions]) -> None:
        super().__init__(**options)
        self.number = number
        self.operator = operator
        self.pty = pty
        self.pty_path: str | None = None  # the pseudo-terminal a serial link opens
        self._pty_fds: tuple[int, int] | None = None
        self.violations: list[str] = []
        self.sim_state = "SIM PIN" if self.password else "READY"
        self.pin_attempts = PIN_ATTEMPTS
        self.registration = 1
        self.signal = 20
        self.error_sends = 0
        self.storage: dict[int, tuple[int, bytes]] = {}  # index -> (stat, PDU)
        self.deleted_count = 0
        self._mr = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """ATZ: the settings a connection changes back to their defaults."""
        self.echo = True
        self.cmee = 0
        self.cmgf = 1
        self.cnmi_mt = 0
        self.cnmi_ds = 0
        self.creg_urc = 0

    async def start(self) -> None:
        await super().start()
        if self.pty:
            self._open_pty()

    async def stop(self) -> None:
        if self._pty_fds is not None:
            master, slave = self._pty_fds
            self._pty_fds = None
            self._loop.remove_reader(master)
            os.close(master)
            os.close(slave)
        await super().stop()

    def _open_pty(self) -> None:
        """A pseudo-terminal whose far end is this modem: a serial link opens
        `pty_path` as its device. The slave end stays open here, so the line outlives
        the link closing it, as a cable does."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty_fds = (master, slave)
        self.pty_path = os.ttyname(slave)
        conn = self._connection()
        conn.connection_made(_PtyTransport(master))
        conn.peer = "pty"

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except OSError:  # nothing yet, or EIO while no one has the line open
                return
            conn.data_received(data)

        self._loop.add_reader(master, readable)
        self.log.info("%s on pseudo-terminal %s", self.NAME, self.pty_path)

    def next_mr(self) -> int:
        return next(self._mr) % 256

    def _connection(self) -> _Connection:
        return _Connection(self)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "violations": len(self.violations),
                "stored": len(self.storage), "deleted_count": self.deleted_count,
                "sim_state": self.sim_state, "pin_attempts": self.pin_attempts}

    # faults ---------------------------------------------------------------

    def faults(self) -> dict[str, Any]:
        return {**super().faults(), **{name: getattr(self, name) for name in MODEM_FAULTS}}

    def set_faults(self, **values: Any) -> None:
        own = {k: values.pop(k) for k in list(values) if k in MODEM_FAULTS}
        for name, value in own.items():
            low, high = MODEM_FAULTS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number {low}-{high}")
        if values:
            super().set_faults(**values)
        for name, value in own.items():
            if name == "registration":
                self.set_registration(value)
            else:
                setattr(self, name, value)
        if own:
            self.log.info("%s set: %s", self.NAME, own)

    def set_registration(self, stat: int) -> None:
        """Coverage lost or back: +CREG: <stat> to every connection that asked (CREG=1)."""
        self.registration = stat
        if self.creg_urc:
            self._broadcast(f"\r\n+CREG: {stat}\r\n".encode())

    def _broadcast(self, data: bytes) -> None:
        for conn in list(self._connections):
            conn.write(data)

    # storage, MO and status reports -------------------------------------------

    def _store(self, pdu: bytes, direct: bool, indicate: bool, urc: str) -> bytes:
        """Store a received PDU, or hand it over directly (27.005 §3.4.1: +CMT for an
        MO, +CDS for a report) when AT+CNMI asked and someone listens; the bytes that
        announce it (+CMTI / +CDSI with its index when asked), maybe none."""
        length = len(pdu) - 1 - pdu[0]
        if direct and self._connections:
            head = f"{urc}: ,{length}" if urc == "+CMT" else f"{urc}: {length}"
            return f"\r\n{head}\r\n{pdu.hex().upper()}\r\n".encode()
        free = next((i for i in range(1, SLOTS + 1) if i not in self.storage), None)
        if free is None:
            raise SimulatorError("SIM message storage is full")
        self.storage[free] = (0, pdu)
        return f'\r\n{urc}I: "SM",{free}\r\n'.encode() if indicate else b""

    async def inject_mo(self, source: str, destination: str, text: str, *,
                        timeout: float = 5.0) -> None:
        """Receive an MO from `source` (digits, '+digits' or a name): each part stored
        and announced per AT+CNMI. `destination` must be this SIM's number, if given."""
        if destination.lstrip("+") not in ("", self.number):
            raise SimulatorError(f"this SIM's number is {self.number}, not {destination}")
        if self.registration not in (1, 5):
            raise SimulatorError("the modem is not registered: no MO can arrive")
        coding, esm, parts = split_mo(text, next(self._mo_ref))
        if len(self.storage) + len(parts) > SLOTS:
            raise SimulatorError("SIM message storage is full")
        now = time.time()
        out = b"".join(self._store(deliver_pdu(source, coding, sm, bool(esm), now),
                                   self.cnmi_mt in (2, 3), self.cnmi_mt == 1, "+CMT")
                       for sm in parts)
        self._broadcast(out)
        self.mo_count += len(parts)

    def _wants_dlr(self, rec: RecordedSubmit) -> bool:
        return rec.srr

    def _owner(self, rec: RecordedSubmit) -> str:
        return "modem"

    def _dlr_frames(self, conn: _Connection | None, recs: list[RecordedSubmit]) -> list[bytes]:
        """Each report stored on the SIM (or handed over, +CDS); what announces them."""
        st = DLR_STATES[self.dlr_status]
        frames = []
        for rec in recs:
            pdu = status_report_pdu(int(rec.message_id), rec.destination, rec.toa,
                                    rec.received_at, st)
            try:
                frames.append(self._store(pdu, self.cnmi_ds == 1, self.cnmi_ds == 2, "+CDS"))
            except SimulatorError:
                self.log.warning("%s: storage full, status report for MR %s lost", self.NAME,
                                 rec.message_id)
                continue
            self.dlr_count += 1
        return frames

    def _deliver_dlrs(self, due: Iterable[tuple[RecordedSubmit, _Connection]],
                      merge: Any = None) -> None:
        """Status reports go to the SIM, whether or not a link is connected."""
        self._broadcast(b"".join(self._dlr_frames(None, [rec for rec, _ in due])))

    def _join(self, parts: list[RecordedSubmit]) -> str:
        if parts[0].data_coding & 0x0C == 0x08:
            return decode_text(parts[0].data_coding, b"".join(p.user_data for p in parts))
        return "".join(p.text for p in parts)


# --------------------------------------------------------------------------
# Command line: `omnigate sim modem ...` (wired in by omnigate/cli.py)
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(
        parser, ModemSimulator, port=4001, peers="modem links", logins="PIN entries",
        unit="AT+CMGS", response="+CMGS answer (a real modem takes 2-5 s)",
        throttle="+CMS ERROR: 42 (congestion)", fail="+CMS ERROR: 1 (unassigned number)",
        dlr="store a status report for each SMS that asks (TP-SRR)",
        dlr_delay="seconds between +CMGS and the status report",
        dlr_status="what status reports say (default delivered)")
    parser.add_argument("--number", default="46700000001", help="the SIM's own number")
    parser.add_argument("--operator", default="Omnisim", help="network name in AT+COPS?")
    parser.add_argument("--pty", action="store_true",
                        help="also be a modem on a pseudo-terminal (its path is printed), "
                             "for a link with `device` set to it")


def simulator_from_args(args: argparse.Namespace) -> ModemSimulator:
    return ModemSimulator(number=args.number, operator=args.operator, pty=args.pty,
                          **common_options(args))


async def run(args: argparse.Namespace) -> None:
    """Entry point for `omnigate sim modem`; runs until cancelled."""
    sim = simulator_from_args(args)
    ready = asyncio.Event()

    async def tell_pty() -> None:
        await ready.wait()
        if sim.pty_path:
            print(f"{sim.NAME} on pseudo-terminal {sim.pty_path}", flush=True)

    told = asyncio.create_task(tell_pty())
    try:
        await serve(sim, args.control, ready=ready)
    finally:
        told.cancel()


def main(argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.modem`, for use without the omnigate command."""
    cli_main("python -m omnigate.sim.modem", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from omnigate.sim.modem import main as _main

    _main()
