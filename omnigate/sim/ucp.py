"""A UCP/EMI 4.x SMSC simulator: an independent, strict peer for users, tests and benchmarks.

Like `sim.smpp`, it ships with the product: it takes logins (OT 60), answers submits
(OT 51) with "AdC:SCTS" references, records what it received, sends delivery
notifications (OT 53) and MO messages (OT 52), answers alerts (OT 31), and injects
faults on demand. Its frame parser and field checks are written here, from the EMI
spec, and share nothing with `omnigate.carriers.ucp.codec`; text and UDH decoding
come from `sim.smpp`, which has its own GSM 03.38 table. So the two sides do not
mirror each other's mistakes: both are tested against frames computed by hand.

It is strict where a real SMSC may be lenient, to catch our own mistakes. Each of
these is a *violation* - logged, counted in `violations` - and answered as an SMSC
answers it: a negative result with the EMI error code.

- wrong checksum -> EC 01; wrong LEN, malformed header or fields -> EC 02;
- an operation whose TRN is not the previous one + 1 (mod 100), or repeats a TRN
  still waiting for its result -> EC 02 (the frame breaks the protocol's rules);
- anything before a successful login, or a second login -> EC 04 (not allowed at
  this point in time);
- an operation we never send (not 31, 51, 60) -> EC 03;
- in OT 51: a field count other than 33, fields a submit has no business filling
  (SCTS, Dst, Rsn, DSCTS, RES4, RES5), lower-case or odd hex, AMsg octets that are
  not septets, NB that does not match TMsg, a bad XSer, a UDH whose UDHL disagrees
  with its XSer length, an alphanumeric OAdC that is not packed septets -> EC 02; an
  impossible VP -> EC 22; MT other than 3 or 4 -> EC 23.

Refusals that are not violations: a wrong user or password (EC 07), an AdC that is
not 1-16 digits (EC 06), user data beyond 140 octets (EC 24).

Faults (plain attributes, changeable at run time, as in `sim.smpp`):

- `throttle_every=N`: every Nth valid OT 51 is answered EC 04 (not allowed at this
  point in time: the spec's try-later code).
- `fail_every=N`: every Nth valid OT 51 is answered EC 06 (AdC invalid, permanent).
- `drop_after=N`: per connection: once N OT 51 arrived, they are answered and the
  connection closed; frames behind the Nth are left unanswered.
- `response_delay=S`: every OT 51 result is sent S seconds late.
- `no_response=True`: OT 51 is recorded but never answered.
- `dlr=True`: an OT 53 for each submit with NRq=1, as its NT asks: `dlr_status`
  "delivered" (Dst 0), "undelivered" (Dst 2, Rsn 107) or "buffered" (Dst 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import logging
import re
import signal
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from omnigate.sim.smpp import (
    SimulatorError,
    decode_text,
    gsm_decode,
    gsm_encode,
    parse_hostport,
    split_mo,
    udh_concat,
)

log = logging.getLogger("omnigate.sim.ucp")

__all__ = ["RecordedSubmit", "SimulatorError", "UcpSimulator", "add_arguments", "run"]

# --------------------------------------------------------------------------
# Wire (EMI 4.x §2 frame, §5 50-series, §6 60-series, §8 error codes)
# --------------------------------------------------------------------------

EC_CHECKSUM = "01"
EC_SYNTAX = "02"
EC_NOT_SUPPORTED = "03"
EC_NOT_ALLOWED = "04"
EC_ADC_INVALID = "06"
EC_AUTHENTICATION = "07"
EC_TIME_PERIOD = "22"
EC_MT_NOT_SUPPORTED = "23"
EC_TOO_LONG = "24"
EC_TEXT = {
    EC_CHECKSUM: "Checksum error", EC_SYNTAX: "Syntax error",
    EC_NOT_SUPPORTED: "Operation not supported by system",
    EC_NOT_ALLOWED: "Operation not allowed", EC_ADC_INVALID: "AdC invalid",
    EC_AUTHENTICATION: "Authentication failure", EC_TIME_PERIOD: "Time period not valid",
    EC_MT_NOT_SUPPORTED: "Message type not supported by system",
    EC_TOO_LONG: "Message too long",
}

# The 33 fields of every 50-series operation, in order (EMI §5.2).
FIELDS_50 = [
    "AdC", "OAdC", "AC", "NRq", "NAdC", "NT", "NPID", "LRq", "LRAd", "LPID", "DD", "DDT",
    "VP", "RPID", "SCTS", "Dst", "Rsn", "DSCTS", "MT", "NB", "Msg", "MMS", "PR", "DCs",
    "MCLs", "RPI", "CPg", "RPLy", "OTOA", "HPLMN", "XSer", "RES4", "RES5",
]
F = {name: i for i, name in enumerate(FIELDS_50)}
FIELDS_60 = ["OAdC", "OTON", "ONPI", "STYP", "PWD", "NPWD", "VERS", "LAdC", "LTON", "LNPI",
             "OPID", "RES1"]
# Fields an SMT has no business filling in a submit.
_NOT_IN_SUBMIT = ("SCTS", "Dst", "Rsn", "DSCTS", "RES4", "RES5")

_HEADER = re.compile(rb"(\d\d)/(\d{5})/([OR])/(\d\d)/")
_HEX = re.compile(r"(?:[0-9A-F]{2})*")
_DIGITS = re.compile(r"[0-9]{1,16}")
_STX, _ETX = 0x02, 0x03
MAX_FRAME = 99_999  # LEN has five digits
DLR_STATES = {"delivered": ("0", "000"), "undelivered": ("2", "107"), "buffered": ("1", "107")}


def frame(trn: int, kind: str, ot: int, fields: list[str]) -> bytes:
    """STX TRN/LEN/O|R/OT/fields/CS ETX, from the spec: LEN counts STX-to-ETX exclusive,
    CS sums every octet from TRN through the '/' before it."""
    data = "/".join(fields)
    length = len(data) + 17
    text = f"{trn:02d}/{length:05d}/{kind}/{ot:02d}/{data}/"
    body = text.encode("latin-1")
    total = 0
    for octet in body:
        total += octet
    return b"\x02" + body + f"{total % 256:02X}".encode() + b"\x03"


class Refused(Exception):
    """An operation answered with a negative result; `violation` if our side broke a rule."""

    def __init__(self, ec: str, reason: str, violation: bool = True) -> None:
        super().__init__(reason)
        self.ec = ec
        self.reason = reason
        self.violation = violation


def _pack_septets(septets: bytes) -> bytes:
    """Septets LSB first into octets (TS 23.038 §6.1.2.1.1), bit by bit."""
    out = bytearray()
    acc = nbits = 0
    for s in septets:
        acc |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def _unpack_septets(data: bytes, count: int) -> bytes:
    out = bytearray()
    acc = nbits = 0
    it = iter(data)
    while len(out) < count:
        if nbits < 7:
            acc |= next(it) << nbits
            nbits += 8
        out.append(acc & 0x7F)
        acc >>= 7
        nbits -= 7
    return bytes(out)


def alphanumeric_oadc(text: str) -> str:
    septets = gsm_encode(text)
    if septets is None:
        raise ValueError(f"{text!r} is not GSM 03.38")
    return f"{(len(septets) * 7 + 3) // 4:02X}" + _pack_septets(septets).hex().upper()


def _check_hex(value: str, name: str) -> bytes:
    if not _HEX.fullmatch(value):
        raise Refused(EC_SYNTAX, f"{name} is not upper-case hex in octet pairs: {value[:40]!r}")
    return bytes.fromhex(value)


def _read_oadc(oadc: str, otoa: str) -> str:
    if otoa == "5039":
        raw = _check_hex(oadc, "alphanumeric OAdC")
        if len(raw) < 2:
            raise Refused(EC_SYNTAX, "alphanumeric OAdC is empty")
        semi, packed = raw[0], raw[1:]
        if (semi + 1) // 2 != len(packed) or not 2 <= semi <= 20:
            raise Refused(EC_SYNTAX, f"alphanumeric OAdC says {semi} semi-octets but "
                                     f"carries {len(packed)} octets")
        return gsm_decode(_unpack_septets(packed, semi * 4 // 7))
    if otoa not in ("", "1139"):
        raise Refused(EC_SYNTAX, f"OTOA {otoa!r} is neither empty, 1139 nor 5039")
    if not _DIGITS.fullmatch(oadc):
        raise Refused(EC_SYNTAX, f"numeric OAdC {oadc!r} is not 1-16 digits")
    return oadc


def _read_xser(value: str) -> dict[int, bytes]:
    raw = _check_hex(value, "XSer")
    out: dict[int, bytes] = {}
    i = 0
    while i < len(raw):
        if i + 2 > len(raw) or i + 2 + raw[i + 1] > len(raw):
            raise Refused(EC_SYNTAX, "XSer service runs past the end of the field")
        tt, ll = raw[i], raw[i + 1]
        if tt in out:
            raise Refused(EC_SYNTAX, f"XSer service {tt:02X} given twice")
        out[tt] = raw[i + 2:i + 2 + ll]
        i += 2 + ll
    udh = out.get(0x01)
    if udh is not None and (not udh or udh[0] + 1 != len(udh)):
        raise Refused(EC_SYNTAX, "XSer 01: UDHL does not match the UDH's length")
    dcs = out.get(0x02)
    if dcs is not None and len(dcs) != 1:
        raise Refused(EC_SYNTAX, "XSer 02: the DCS is one octet")
    return out


def _valid_time(value: str) -> bool:
    """DDMMYYHHmm[ss] that names a real moment."""
    if not value.isdigit() or len(value) not in (10, 12):
        return False
    try:
        time.strptime(value[:10], "%d%m%y%H%M")
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# What was received
# --------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class RecordedSubmit:
    """One OT 51 as received. `user_data` is the message without UDH: unpacked septets
    for MT=3 (and for MT=4 with a GSM DCS), octets otherwise."""

    message_id: str  # "AdC:SCTS", as answered
    user: str
    source: str  # OAdC, unpacked when alphanumeric
    otoa: str
    destination: str  # AdC
    mt: str
    data_coding: int  # the DCS: 0x00 for MT=3 unless XSer 02 says otherwise
    user_data: bytes
    udh: bytes | None
    nrq: str
    nt: str
    validity_period: str
    message_class: str  # MCLs
    received_at: float
    scts: str

    @property
    def text(self) -> str:
        return decode_text(self.data_coding, self.user_data)

    @property
    def concat(self) -> tuple[int, int, int] | None:
        return udh_concat(self.udh) if self.udh else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id, "user": self.user, "from": self.source,
            "otoa": self.otoa, "to": self.destination, "text": self.text, "mt": self.mt,
            "coding": self.data_coding, "udh": self.udh.hex() if self.udh else None,
            "concat": self.concat, "nrq": self.nrq, "nt": self.nt,
            "validity_period": self.validity_period, "mcls": self.message_class,
            "at": self.received_at,
        }


def _check_submit(f: list[str]) -> tuple[str, str, str, str, int, bytes, bytes | None]:
    """(AdC, source, OTOA, MT, DCS, user data, UDH) of a valid OT 51; Refused otherwise."""
    if len(f) != len(FIELDS_50):
        raise Refused(EC_SYNTAX, f"OT 51 has {len(f)} fields, the spec has {len(FIELDS_50)}")
    for name in _NOT_IN_SUBMIT:
        if f[F[name]]:
            raise Refused(EC_SYNTAX, f"{name} has no place in a submit ({f[F[name]]!r})")
    adc = f[F["AdC"]]
    if not _DIGITS.fullmatch(adc):
        raise Refused(EC_ADC_INVALID, f"AdC {adc!r} is not 1-16 digits", violation=False)
    otoa = f[F["OTOA"]]
    source = _read_oadc(f[F["OAdC"]], otoa)
    for name, allowed in (("NRq", ("", "0", "1")), ("NT", ("", *"01234567")),
                          ("MCLs", ("", "0", "1", "2", "3")), ("DCs", ("", "0", "1"))):
        if f[F[name]] not in allowed:
            raise Refused(EC_SYNTAX, f"{name} {f[F[name]]!r} is not one of {allowed}")
    nadc = f[F["NAdC"]]
    if nadc and not _DIGITS.fullmatch(nadc):
        raise Refused(EC_SYNTAX, f"NAdC {nadc!r} is not 1-16 digits")
    npid = f[F["NPID"]]
    if npid and not (len(npid) == 4 and npid.isdigit()):
        raise Refused(EC_SYNTAX, f"NPID {npid!r} is not 4 digits")
    vp = f[F["VP"]]
    if vp and (len(vp) != 10 or not _valid_time(vp)):
        raise Refused(EC_TIME_PERIOD, f"VP {vp!r} is not DDMMYYHHmm")
    services = _read_xser(f[F["XSer"]]) if f[F["XSer"]] else {}
    udh = services.get(0x01)
    dcs_raw = services.get(0x02)
    mt, nb, msg = f[F["MT"]], f[F["NB"]], f[F["Msg"]]
    data = _check_hex(msg, "Msg")
    udh_len = len(udh) if udh else 0
    if mt == "3":
        if nb:
            raise Refused(EC_SYNTAX, "NB belongs to MT=4 only")
        if len(msg) > 640:
            raise Refused(EC_SYNTAX, f"AMsg of {len(msg)} characters; at most 640")
        if any(b > 0x7F for b in data):
            raise Refused(EC_SYNTAX, "AMsg has octets above 0x7F: not GSM septets")
        dcs = dcs_raw[0] if dcs_raw else 0x00
        if udh_len * 8 + len(data) * 7 > 1120:
            raise Refused(EC_TOO_LONG, f"{len(data)} septets + {udh_len}-octet UDH > 140 "
                                       "octets", violation=False)
        return adc, source, otoa, mt, dcs, data, udh
    if mt == "4":
        if not nb.isdigit() or (int(nb) + 7) // 8 != len(data) or (int(nb) == 0 and data):
            raise Refused(EC_SYNTAX, f"NB {nb!r} does not match {len(data)} octets of TMsg")
        dcs = dcs_raw[0] if dcs_raw else 0xF4  # no DCS: 8-bit data, class 1 (TS 23.038)
        if udh_len + len(data) > 140:
            raise Refused(EC_TOO_LONG, f"{len(data)} octets + {udh_len}-octet UDH > 140",
                          violation=False)
        if dcs & 0xCC == 0x00 and not dcs & 0x20:  # general group, GSM alphabet: packed
            data = _unpack_septets(data, int(nb) // 7)
        return adc, source, otoa, mt, dcs, data, udh
    raise Refused(EC_MT_NOT_SUPPORTED, f"MT {mt!r}: only 3 (alphanumeric) and 4 "
                                       "(transparent) are supported")


# --------------------------------------------------------------------------
# One SMT connection
# --------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """The SMSC side of one TCP connection: parse strictly, answer, record."""

    def __init__(self, sim: UcpSimulator) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.user: str | None = None  # set once logged in
        self.submits = 0  # OT 51 on this connection (drop_after)
        self._buf = b""
        self._last_trn: int | None = None  # the SMT's last operation TRN
        self._unanswered: set[int] = set()  # the SMT's operations awaiting our result
        self._trn = -1  # our own operations' TRN
        self._waiting: dict[int, tuple[int, asyncio.Future[str]]] = {}
        self._closed = False

    def _log(self, level: int, msg: str, *args: Any) -> None:
        log.log(level, "UCP-SIM[%s] " + msg, self.peer, *args)

    # asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.sim._connections.add(self)
        self._log(logging.DEBUG, "connected")

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.sim._connections.discard(self)
        if self.user is not None:
            self._log(logging.INFO, "%r disconnected", self.user)
        self.user = None
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(SimulatorError("connection lost before the result"))
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        late: list[bytes] = []
        close = False
        pos = 0
        while True:
            start = buf.find(b"\x02", pos)
            if start < 0:
                if pos < len(buf):
                    self._violation("%d octets outside any frame", len(buf) - pos)
                pos = len(buf)
                break
            if start > pos:
                self._violation("%d octets before STX", start - pos)
            end = buf.find(b"\x03", start)
            if end < 0:
                if len(buf) - start > MAX_FRAME + 2:
                    self._violation("no ETX within %d octets; closing", MAX_FRAME + 2)
                    close = True
                pos = start
                break
            pos = end + 1
            close = self._on_frame(buf[start + 1:end], out, late)
            if close:
                break
        self._buf = b"" if close else buf[pos:]
        sim = self.sim
        if sim._waiters:
            sim._wake_waiters()
        if self.transport is None or self._closed:
            return
        if out:
            self.transport.write(b"".join(out))
        if late:
            sim._loop.call_later(sim.response_delay, self._write_late, late)
        if close:
            self._closed = True
            self.transport.close()

    # frames ----------------------------------------------------------------

    def _violation(self, msg: str, *args: Any) -> None:
        text = msg % args if args else msg
        self.sim.violations.append(text)
        self._log(logging.WARNING, "violation: %s", text)

    def _on_frame(self, inner: bytes, out: list[bytes], late: list[bytes]) -> bool:
        """Check and answer one frame; True if the connection must close now."""
        m = _HEADER.match(inner)
        if m is None or len(inner) < 17 or inner[-3:-2] != b"/":
            self._violation("malformed frame %r", inner[:30])
            if m is not None and m.group(3) == b"O":
                out.append(frame(int(m.group(1)), "R", int(m.group(4)),
                                 ["N", EC_SYNTAX, EC_TEXT[EC_SYNTAX]]))
            return False
        trn, length, kind, ot = int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(4))
        is_op = kind == b"O"
        problem = None
        if length != len(inner):
            problem = (EC_SYNTAX, f"LEN {length} but {len(inner)} characters between STX "
                                  "and ETX")
        else:
            total = 0
            for octet in inner[:-2]:
                total += octet
            cs = inner[-2:].decode("latin-1")
            if cs != f"{total % 256:02X}":
                problem = (EC_CHECKSUM, f"checksum {cs!r}, should be {total % 256:02X}")
        if problem is not None:
            self._violation("%s TRN %02d OT %02d: %s", "operation" if is_op else "result",
                            trn, ot, problem[1])
            if is_op:
                out.append(frame(trn, "R", ot, ["N", problem[0], EC_TEXT[problem[0]]]))
            return False
        fields = inner[14:-3].decode("latin-1").split("/")
        if not is_op:
            self._on_result(trn, ot, fields)
            return False
        # Our operations' TRNs: one more than the last, never one still unanswered.
        expected = None if self._last_trn is None else (self._last_trn + 1) % 100
        self._last_trn = trn
        if trn in self._unanswered:
            self._violation("TRN %02d repeated while its operation awaits a result", trn)
            out.append(frame(trn, "R", ot, ["N", EC_SYNTAX, "TRN in use"]))
            return False
        if expected is not None and trn != expected:
            self._violation("TRN %02d out of sequence (expected %02d)", trn, expected)
            out.append(frame(trn, "R", ot, ["N", EC_SYNTAX, "TRN out of sequence"]))
            return False
        if ot == 60:
            out.append(self._on_login(trn, fields))
            return False
        if self.user is None:
            self._violation("OT %02d before a successful login", ot)
            out.append(frame(trn, "R", ot, ["N", EC_NOT_ALLOWED, "not logged in"]))
            return False
        if ot == 51:
            return self._on_submit(trn, fields, out, late)
        if ot == 31:
            if len(fields) != 2 or not _DIGITS.fullmatch(fields[0]) or not (
                    len(fields[1]) == 4 and fields[1].isdigit()):
                self._violation("OT 31 is not AdC/PID: %r", fields)
                out.append(frame(trn, "R", ot, ["N", EC_SYNTAX, EC_TEXT[EC_SYNTAX]]))
            else:
                self.sim.alert_count += 1
                out.append(frame(trn, "R", ot, ["A", ""]))
            return False
        self._violation("OT %02d is not one an SMT sends us", ot)
        out.append(frame(trn, "R", ot, ["N", EC_NOT_SUPPORTED, EC_TEXT[EC_NOT_SUPPORTED]]))
        return False

    def _on_result(self, trn: int, ot: int, fields: list[str]) -> None:
        entry = self._waiting.pop(trn, None)
        if entry is None or entry[0] != ot:
            if entry is not None:
                self._waiting[trn] = entry
            self._violation("result OT %02d TRN %02d answers nothing we sent", ot, trn)
            return
        fut = entry[1]
        ok = (fields[:1] == ["A"] and len(fields) == 3) or (
            fields[:1] == ["N"] and len(fields) == 3 and len(fields[1]) == 2)
        if not ok:
            self._violation("result OT %02d TRN %02d is neither A/MVP/SM nor N/EC/SM: %r",
                            ot, trn, fields)
        if not fut.done():
            fut.set_result("" if fields[:1] == ["A"] else (fields[1] if len(fields) > 1 else "??"))

    def _on_login(self, trn: int, f: list[str]) -> bytes:
        sim = self.sim
        try:
            if self.user is not None:
                raise Refused(EC_NOT_ALLOWED, "already logged in")
            if len(f) != len(FIELDS_60):
                raise Refused(EC_SYNTAX, f"OT 60 has {len(f)} fields, the spec has "
                                         f"{len(FIELDS_60)}")
            oadc, oton, onpi, styp, pwd, _, vers = f[:7]
            if styp != "1":
                raise Refused(EC_SYNTAX, f"STYP {styp!r}: only 1 (open session) is served")
            if vers != "0100":
                raise Refused(EC_SYNTAX, f"VERS {vers!r}, the spec says 0100")
            if oton not in ("", "1", "2", "6") or onpi not in ("", "1", "3", "5"):
                raise Refused(EC_SYNTAX, f"OTON {oton!r} / ONPI {onpi!r} out of range")
            password = _check_hex(pwd, "PWD").decode("latin-1")
            if sim.user is not None and oadc != sim.user:
                raise Refused(EC_AUTHENTICATION, f"unknown user {oadc!r}", violation=False)
            if sim.password is not None and password != sim.password:
                raise Refused(EC_AUTHENTICATION, "wrong password", violation=False)
        except Refused as e:
            if e.violation:
                self._violation("OT 60: %s", e.reason)
            else:
                self._log(logging.INFO, "login %r refused: %s", f[0] if f else "", e.reason)
            return frame(trn, "R", 60, ["N", e.ec, EC_TEXT.get(e.ec, e.reason)])
        self.user = oadc
        self._log(logging.INFO, "logged in as %r", oadc)
        sim._loop.call_soon(sim._flush_held, self)
        return frame(trn, "R", 60, ["A", ""])

    def _on_submit(self, trn: int, f: list[str], out: list[bytes], late: list[bytes]) -> bool:
        sim = self.sim
        self.submits += 1
        replies = late if sim.response_delay > 0 else out
        try:
            adc, source, otoa, mt, dcs, data, udh = _check_submit(f)
        except Refused as e:
            sim.rejected_count += 1
            if e.violation:
                self._violation("OT 51 TRN %02d: %s", trn, e.reason)
            else:
                self._log(logging.DEBUG, "OT 51 refused EC %s: %s", e.ec, e.reason)
            self._answer(trn, ["N", e.ec, EC_TEXT.get(e.ec, "")], replies)
            return self._drop_due()
        sim.received_count += 1
        count = sim.received_count
        if sim.throttle_every and count % sim.throttle_every == 0:
            sim.throttled_count += 1
            self._answer(trn, ["N", EC_NOT_ALLOWED, EC_TEXT[EC_NOT_ALLOWED]], replies)
            return self._drop_due()
        if sim.fail_every and count % sim.fail_every == 0:
            sim.failed_count += 1
            self._answer(trn, ["N", EC_ADC_INVALID, EC_TEXT[EC_ADC_INVALID]], replies)
            return self._drop_due()
        now = time.time()
        scts = sim._scts(adc, now)
        rec = RecordedSubmit(
            f"{adc}:{scts}", self.user or "", source, otoa, adc, mt, dcs, data, udh,
            f[F["NRq"]], f[F["NT"]], f[F["VP"]], f[F["MCLs"]], now, scts)
        sim._accept(rec, self, f[F["OAdC"]])
        self._answer(trn, ["A", "", rec.message_id], replies)
        return self._drop_due()

    def _answer(self, trn: int, fields: list[str], replies: list[bytes]) -> None:
        if self.sim.no_response:
            self._unanswered.add(trn)
            return
        replies.append(frame(trn, "R", 51, fields))
        if self.sim.response_delay > 0:
            self._unanswered.add(trn)  # until _write_late sends it

    def _drop_due(self) -> bool:
        drop_after = self.sim.drop_after
        if drop_after and self.submits >= drop_after:
            self._log(logging.INFO, "drop_after=%d reached; closing", drop_after)
            return True
        return False

    def _write_late(self, frames: list[bytes]) -> None:
        for fr in frames:
            self._unanswered.discard(int(fr[1:3]))
        self.write(b"".join(frames))

    # sending ---------------------------------------------------------------

    def operation(self, ot: int, fields: list[str]) -> tuple[bytes, asyncio.Future[str]]:
        """A frame of ours and the future of its result ('' for A, else the EC)."""
        self._trn = (self._trn + 1) % 100
        fut: asyncio.Future[str] = self.sim._loop.create_future()
        self._waiting[self._trn] = (ot, fut)
        return frame(self._trn, "O", ot, fields), fut

    def write(self, data: bytes) -> bool:
        if self._closed or self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()


# --------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------

FAULTS: dict[str, type] = {
    "throttle_every": int, "fail_every": int, "drop_after": int,
    "response_delay": float, "no_response": bool, "dlr": bool, "dlr_delay": float,
    "dlr_status": str,
}
_HELD_MAX = 100_000


class UcpSimulator:
    """A UCP/EMI 4.x SMSC on a real TCP port. See the module docstring for faults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        dlr: bool = False,
        dlr_delay: float = 0.0,
        dlr_status: str = "delivered",
        record: str | Path | None = None,
        throttle_every: int = 0,
        fail_every: int = 0,
        drop_after: int = 0,
        response_delay: float = 0.0,
        no_response: bool = False,
        keep: int = 1_000_000,
    ) -> None:
        if dlr_status not in DLR_STATES:
            raise ValueError(f"dlr_status must be one of {', '.join(DLR_STATES)}")
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.dlr = dlr
        self.dlr_delay = dlr_delay
        self.dlr_status = dlr_status
        self.record = Path(record) if record is not None else None
        self.throttle_every = throttle_every
        self.fail_every = fail_every
        self.drop_after = drop_after
        self.response_delay = response_delay
        self.no_response = no_response
        self.keep = keep

        self.submits: deque[RecordedSubmit] = deque(maxlen=keep)
        self.violations: list[str] = []  # protocol rules our peer broke
        self.submit_count = 0
        self.received_count = 0
        self.throttled_count = 0
        self.failed_count = 0
        self.rejected_count = 0
        self.dlr_count = 0
        self.mo_count = 0
        self.alert_count = 0  # OT 31 answered

        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._last_scts: dict[str, int] = {}
        self._mo_ref = itertools.count(1)
        self._rr = itertools.count()
        self._record_file: Any = None
        # Notifications: a heap of (due, n, record, raw OAdC, origin) and one timer.
        self._dlrs: list[tuple[float, int, RecordedSubmit, str, _Connection]] = []
        self._dlr_n = itertools.count()
        self._dlr_timer: asyncio.TimerHandle | None = None
        self._held: dict[str, deque[tuple[RecordedSubmit, str]]] = {}

    # lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.record is not None:
            self._record_file = self.record.open("ab", buffering=1 << 16)
        self._server = await self._loop.create_server(lambda: _Connection(self), self.host,
                                                      self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("UCP simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._dlr_timer is not None:
            self._dlr_timer.cancel()
            self._dlr_timer = None
        self._dlrs.clear()
        if self._record_file is not None:
            self._record_file.close()
            self._record_file = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(SimulatorError("simulator stopped"))

    async def __aenter__(self) -> UcpSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def drop_connections(self) -> None:
        """Cut every connection at once (RST, nothing flushed), like a network failure."""
        conns = list(self._connections)
        if conns:
            log.info("UCP simulator dropping %d connection(s)", len(conns))
        for conn in conns:
            conn.abort()
        await asyncio.sleep(0)

    @property
    def logged_in(self) -> int:
        return sum(1 for c in self._connections if c.user is not None)

    @property
    def connections(self) -> int:
        return len(self._connections)

    def faults(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FAULTS}

    def set_faults(self, **values: Any) -> None:
        """Set fault attributes by name, with type checks (for the control endpoint)."""
        checked = {}
        for name, value in values.items():
            kind = FAULTS.get(name)
            if kind is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif kind is str:
                if value not in DLR_STATES:
                    raise ValueError(f"{name} must be one of {', '.join(DLR_STATES)}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
            elif kind is int and value != int(value):
                raise ValueError(f"{name} must be a whole number")
            checked[name] = kind(value)
        for name, value in checked.items():
            setattr(self, name, value)
        log.info("UCP simulator faults set: %s", values)

    def stats(self) -> dict[str, Any]:
        return {
            "submit_count": self.submit_count, "received_count": self.received_count,
            "throttled_count": self.throttled_count, "failed_count": self.failed_count,
            "rejected_count": self.rejected_count, "dlr_count": self.dlr_count,
            "mo_count": self.mo_count, "alert_count": self.alert_count,
            "violations": len(self.violations),
            "connections": self.connections, "logged_in": self.logged_in,
            "kept": len(self.submits), "faults": self.faults(),
        }

    # recording -------------------------------------------------------------

    def _scts(self, adc: str, now: float) -> str:
        """A service-centre time stamp unique per AdC, as "AdC:SCTS" must name one
        message: a second already used for this AdC moves on to the next."""
        second = max(int(now), self._last_scts.get(adc, -1) + 1)
        if len(self._last_scts) >= 100_000:
            self._last_scts.clear()
        self._last_scts[adc] = second
        return time.strftime("%d%m%y%H%M%S", time.gmtime(second))

    def _accept(self, rec: RecordedSubmit, conn: _Connection, raw_oadc: str) -> None:
        self.submits.append(rec)
        self.submit_count += 1
        if self._record_file is not None:
            self._record_file.write(orjson.dumps(rec.as_dict()) + b"\n")
        if self.dlr and rec.nrq == "1":
            nt = int(rec.nt or "0")
            bit = {"delivered": 1, "undelivered": 2, "buffered": 4}[self.dlr_status]
            if nt & bit:
                due = self._loop.time() + self.response_delay + self.dlr_delay
                heapq.heappush(self._dlrs, (due, next(self._dlr_n), rec, raw_oadc, conn))
                self._arm_dlrs()

    def _arm_dlrs(self) -> None:
        if self._dlr_timer is not None:
            self._dlr_timer.cancel()
        self._dlr_timer = None
        if self._dlrs:
            self._dlr_timer = self._loop.call_at(self._dlrs[0][0], self._send_due_dlrs)

    def _send_due_dlrs(self) -> None:
        self._dlr_timer = None
        now = self._loop.time()
        batches: dict[_Connection, list[bytes]] = {}
        while self._dlrs and self._dlrs[0][0] <= now:
            _, _, rec, raw_oadc, origin = heapq.heappop(self._dlrs)
            target = self._target(origin, rec.user)
            if target is None:
                held = self._held.setdefault(rec.user, deque(maxlen=_HELD_MAX))
                held.append((rec, raw_oadc))
                continue
            batches.setdefault(target, []).append(self._notification(target, rec, raw_oadc))
        for conn, frames in batches.items():
            if conn.write(b"".join(frames)):
                self.dlr_count += len(frames)
        self._arm_dlrs()

    def _target(self, origin: _Connection, user: str) -> _Connection | None:
        if origin.user is not None and not origin._closed:
            return origin
        for conn in self._connections:
            if conn.user == user and not conn._closed:
                return conn
        return None

    def _flush_held(self, conn: _Connection) -> None:
        held = self._held.pop(conn.user or "", None)
        if held and conn.user is not None:
            log.info("UCP-SIM[%s] sending %d held notification(s)", conn.peer, len(held))
            frames = [self._notification(conn, rec, raw) for rec, raw in held]
            if conn.write(b"".join(frames)):
                self.dlr_count += len(frames)

    def _notification(self, conn: _Connection, rec: RecordedSubmit, raw_oadc: str) -> bytes:
        """OT 53 naming the message by its AdC and SCTS (EMI §5.5)."""
        dst, rsn = DLR_STATES[self.dlr_status]
        done = time.gmtime()
        dscts = time.strftime("%d%m%y%H%M%S", done)
        word = {"0": "has been delivered", "1": "is buffered",
                "2": "could not be delivered"}[dst]
        text = (f"Message for {rec.destination}, with identification {rec.scts} {word} on "
                f"{time.strftime('%Y-%m-%d', done)} at {time.strftime('%H:%M:%S', done)}")
        septets = gsm_encode(text) or b""
        f = [""] * len(FIELDS_50)
        f[F["AdC"]], f[F["OAdC"]], f[F["OTOA"]] = rec.destination, raw_oadc, rec.otoa
        f[F["SCTS"]], f[F["Dst"]], f[F["Rsn"]], f[F["DSCTS"]] = rec.scts, dst, rsn, dscts
        f[F["MT"]], f[F["Msg"]] = "3", septets.hex().upper()
        data, fut = conn.operation(53, f)
        fut.add_done_callback(_ignore_result)
        return data

    def _wake_waiters(self) -> None:
        count = self.submit_count
        for want, fut in self._waiters:
            if count >= want and not fut.done():
                fut.set_result(None)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Wait until submit_count >= count; TimeoutError says how far it got."""
        if self.submit_count >= count:
            return
        entry = (count, self._loop.create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            raise TimeoutError(f"UCP simulator got {self.submit_count} of {count} OT 51 in "
                               f"{timeout}s") from None
        finally:
            self._waiters.remove(entry)

    def messages(self) -> list[tuple[str, str, str]]:
        """(destination, source, text) per message, concatenated parts reassembled in
        the order their first part arrived; a message missing a part is left out. UCS-2
        parts are joined as octets first, so a surrogate pair split across parts decodes."""
        slots: list[tuple[str, str, str] | None] = []
        groups: dict[tuple[str, str, int, int], tuple[int, dict[int, RecordedSubmit]]] = {}
        for rec in self.submits:
            concat = rec.concat
            if concat is None or concat[1] < 2:
                slots.append((rec.destination, rec.source, rec.text))
                continue
            ref, total, seq = concat
            key = (rec.source, rec.destination, ref, total)
            group = groups.get(key)
            if group is None or seq in group[1]:
                group = groups[key] = (len(slots), {})
                slots.append(None)
            group[1][seq] = rec
            if len(group[1]) == total:
                parts = [group[1][s] for s in range(1, total + 1)]
                if parts[0].mt == "3":
                    text = "".join(p.text for p in parts)
                else:
                    text = decode_text(parts[0].data_coding, b"".join(p.user_data for p in parts))
                slots[group[0]] = (rec.destination, rec.source, text)
                del groups[key]
        return [s for s in slots if s is not None]

    # MO --------------------------------------------------------------------

    async def inject_mo(self, source: str, destination: str, text: str, *,
                        timeout: float = 5.0) -> None:
        """Send an MO text as OT 52 to a logged-in SMT (they take turns): GSM in AMsg,
        else UCS-2 in TMsg with DCS 08; long texts in parts with a concatenation UDH in
        XSer 01. Returns once every part has a positive result; SimulatorError if no
        SMT is logged in, a part is refused, or no result comes within `timeout`."""
        conns = sorted((c for c in self._connections if c.user is not None and not c._closed),
                       key=id)
        if not conns:
            raise SimulatorError("no SMT is logged in to take an MO")
        conn = conns[next(self._rr) % len(conns)]
        coding, udhi, parts = split_mo(text, next(self._mo_ref))
        number = source.lstrip("+")
        if number.isdigit():
            oadc, otoa = number, ("1139" if source.startswith("+") else "")
        else:
            oadc, otoa = alphanumeric_oadc(source), "5039"
        frames, futures = [], []
        for sm in parts:
            udh = sm[:sm[0] + 1] if udhi else b""
            data = sm[len(udh):]
            f = [""] * len(FIELDS_50)
            f[F["AdC"]], f[F["OAdC"]], f[F["OTOA"]] = destination, oadc, otoa
            f[F["SCTS"]] = time.strftime("%d%m%y%H%M%S", time.gmtime())
            xser = f"01{len(udh):02X}{udh.hex().upper()}" if udh else ""
            if coding == 0x00:
                f[F["MT"]], f[F["Msg"]] = "3", data.hex().upper()
            else:
                f[F["MT"]], f[F["NB"]], f[F["Msg"]] = "4", str(len(data) * 8), data.hex().upper()
                xser += f"0201{coding:02X}"
            f[F["XSer"]] = xser
            data_frame, fut = conn.operation(52, f)
            frames.append(data_frame)
            futures.append(fut)
        conn.write(b"".join(frames))
        self.mo_count += len(parts)
        try:
            async with asyncio.timeout(timeout):
                results = await asyncio.gather(*futures)
        except TimeoutError:
            raise SimulatorError(f"no result for OT 52 within {timeout}s") from None
        finally:
            for fut in futures:
                fut.cancel()
        refused = [ec for ec in results if ec]
        if refused:
            raise SimulatorError(f"the SMT refused the MO with EC {refused[0]}")


def _ignore_result(fut: asyncio.Future[str]) -> None:
    if not fut.cancelled():
        fut.exception()  # a notification nobody waits for: retrieve, so nothing warns


# --------------------------------------------------------------------------
# Command line: `omnigate sim ucp ...` (wired in by omnigate/cli.py)
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", type=parse_hostport, default=("127.0.0.1", 3006),
                        metavar="HOST:PORT", help="where SMTs connect (default 127.0.0.1:3006)")
    parser.add_argument("--user", help="accept logins (OT 60) only with this OAdC")
    parser.add_argument("--password", help="accept logins only with this password")
    parser.add_argument("--dlr", action="store_true",
                        help="send delivery notifications (OT 53) when NRq=1 asks")
    parser.add_argument("--dlr-delay", type=float, default=0.0, metavar="S",
                        help="seconds between the OT 51 result and the notification")
    parser.add_argument("--dlr-status", default="delivered", choices=list(DLR_STATES),
                        help="what notifications say (default delivered)")
    parser.add_argument("--record", metavar="FILE.jsonl",
                        help="append one JSON line per accepted OT 51")
    parser.add_argument("--control", metavar="HOST:PORT",
                        help="HTTP control endpoint: POST /mo, GET /submits, GET /stats, "
                             "POST /faults")
    parser.add_argument("--throttle-every", type=int, default=0, metavar="N",
                        help="answer every Nth OT 51 with EC 04 (not allowed at this point)")
    parser.add_argument("--fail-every", type=int, default=0, metavar="N",
                        help="answer every Nth OT 51 with EC 06 (AdC invalid, permanent)")
    parser.add_argument("--drop-after", type=int, default=0, metavar="N",
                        help="close each connection after its Nth OT 51")
    parser.add_argument("--response-delay", type=float, default=0.0, metavar="S",
                        help="send every OT 51 result S seconds late")
    parser.add_argument("--no-response", action="store_true",
                        help="never answer OT 51 (response-timeout tests)")
    parser.add_argument("--keep", type=int, default=100_000, metavar="N",
                        help="recorded submits kept in memory (default 100000)")


def simulator_from_args(args: argparse.Namespace) -> UcpSimulator:
    host, port = args.listen
    return UcpSimulator(host=host, port=port, user=args.user, password=args.password,
                        dlr=args.dlr, dlr_delay=args.dlr_delay, dlr_status=args.dlr_status,
                        record=args.record, throttle_every=args.throttle_every,
                        fail_every=args.fail_every, drop_after=args.drop_after,
                        response_delay=args.response_delay, no_response=args.no_response,
                        keep=args.keep)


async def serve(sim: UcpSimulator, control: str | None = None, *,
                ready: asyncio.Event | None = None) -> None:
    """Start the simulator (and its control endpoint) and run until cancelled."""
    await sim.start()
    runner = None
    try:
        print(f"UCP simulator listening on {sim.host}:{sim.port}", flush=True)
        if control:
            from omnigate.sim.control import start_control

            host, port = parse_hostport(control)
            runner, bound_port = await start_control(sim, host, port)  # type: ignore[arg-type]
            print(f"UCP simulator control on http://{host}:{bound_port}/", flush=True)
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await sim.stop()


async def run(args: argparse.Namespace) -> None:
    """Entry point for `omnigate sim ucp`; runs until cancelled."""
    await serve(simulator_from_args(args), args.control)


def main(argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.ucp`, for use without the omnigate command."""
    parser = argparse.ArgumentParser(prog="python -m omnigate.sim.ucp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner() as runner:
        runner.run(_run_until_signal(args))


async def _run_until_signal(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run(args)


if __name__ == "__main__":
    from omnigate.sim.ucp import main as _main

    _main()
