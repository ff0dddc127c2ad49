"""A UCP/EMI 4.x SMSC simulator: an independent, strict peer for users, tests and benchmarks.

Like `sim.smpp`, it ships with the product: it takes logins (OT 60), answers submits
(OT 51) with "AdC:SCTS" references, records what it received, sends delivery
notifications (OT 53) and MO messages (OT 52), answers alerts (OT 31), and injects
faults on demand. Its frame parser and field checks are written here, from the EMI
spec, and share nothing with `omnigate.carriers.ucp.codec`; text and UDH decoding
come from `sim.smpp`, which has its own GSM 03.38 table; faults, recording, DLR
queues and the command line from `sim.base`. So the two sides do not mirror each
other's mistakes: both are tested against frames computed by hand.

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
import logging
import re
import time
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
from omnigate.sim.smpp import decode_text, gsm_decode, gsm_encode, split_mo, udh_concat

if TYPE_CHECKING:
    from typing_extensions import Unpack

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
    oadc: str  # OAdC as sent (packed when alphanumeric): what a notification gives back

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


class _Connection(SimConnection[RecordedSubmit]):
    """The SMSC side of one TCP connection: parse strictly, answer, record."""

    sim: UcpSimulator

    def __init__(self, sim: UcpSimulator) -> None:
        super().__init__(sim)
        self.user: str | None = None  # set once logged in
        self._last_trn: int | None = None  # the SMT's last operation TRN
        self._unanswered: set[int] = set()  # the SMT's operations awaiting our result
        self._trn = -1  # our own operations' TRN
        self._waiting: dict[int, tuple[int, asyncio.Future[str]]] = {}

    @property
    def receives_for(self) -> str | None:
        return self.user

    def _log(self, level: int, msg: str, *args: Any) -> None:
        log.log(level, "UCP-SIM[%s] " + msg, self.peer, *args)

    # asyncio.Protocol ------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
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
            f[F["NRq"]], f[F["NT"]], f[F["VP"]], f[F["MCLs"]], now, scts, f[F["OAdC"]])
        sim._accept(rec, self)
        self._answer(trn, ["A", "", rec.message_id], replies)
        return self._drop_due()

    def _answer(self, trn: int, fields: list[str], replies: list[bytes]) -> None:
        if self.sim.no_response:
            self._unanswered.add(trn)
            return
        replies.append(frame(trn, "R", 51, fields))
        if self.sim.response_delay > 0:
            self._unanswered.add(trn)  # until _write_late sends it

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



# --------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------

class UcpSimulator(Simulator[RecordedSubmit, _Connection]):
    """A UCP/EMI 4.x SMSC on a real TCP port. See the module docstring for faults."""

    NAME = "UCP simulator"
    LOG_PREFIX = "UCP-SIM"
    UNITS = "OT 51"
    DLR_STATUSES = DLR_STATES
    DLR_STATUS_DEFAULT = "delivered"
    log = log

    def __init__(self, *, user: str | None = None,
                 **options: Unpack[SimulatorOptions]) -> None:
        super().__init__(**options)
        self.user = user
        self.violations: list[str] = []  # protocol rules our peer broke
        self.alert_count = 0  # OT 31 answered
        self._last_scts: dict[str, int] = {}

    def _connection(self) -> _Connection:
        return _Connection(self)

    @property
    def logged_in(self) -> int:
        return sum(1 for c in self._connections if c.user is not None)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "alert_count": self.alert_count,
                "violations": len(self.violations), "logged_in": self.logged_in}

    # recording -------------------------------------------------------------

    def _scts(self, adc: str, now: float) -> str:
        """A service-centre time stamp unique per AdC, as "AdC:SCTS" must name one
        message: a second already used for this AdC moves on to the next."""
        second = max(int(now), self._last_scts.get(adc, -1) + 1)
        if len(self._last_scts) >= 100_000:
            self._last_scts.clear()
        self._last_scts[adc] = second
        return time.strftime("%d%m%y%H%M%S", time.gmtime(second))

    def _join(self, parts: list[RecordedSubmit]) -> str:
        """MT=3 parts join as text; UCS-2 parts as octets first, so a surrogate pair
        split across parts decodes."""
        if parts[0].mt == "3":
            return "".join(p.text for p in parts)
        return decode_text(parts[0].data_coding, b"".join(p.user_data for p in parts))

    # notifications ---------------------------------------------------------

    def _wants_dlr(self, rec: RecordedSubmit) -> bool:
        bit = {"delivered": 1, "undelivered": 2, "buffered": 4}[self.dlr_status]
        return rec.nrq == "1" and bool(int(rec.nt or "0") & bit)

    def _owner(self, rec: RecordedSubmit) -> str:
        return rec.user

    def _dlr_frames(self, conn: _Connection, recs: list[RecordedSubmit]) -> list[bytes]:
        return [self._notification(conn, rec) for rec in recs]

    def _notification(self, conn: _Connection, rec: RecordedSubmit) -> bytes:
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
        f[F["AdC"]], f[F["OAdC"]], f[F["OTOA"]] = rec.destination, rec.oadc, rec.otoa
        f[F["SCTS"]], f[F["Dst"]], f[F["Rsn"]], f[F["DSCTS"]] = rec.scts, dst, rsn, dscts
        f[F["MT"]], f[F["Msg"]] = "3", septets.hex().upper()
        data, fut = conn.operation(53, f)
        fut.add_done_callback(_ignore_result)
        return data

    # MO --------------------------------------------------------------------

    async def inject_mo(self, source: str, destination: str, text: str, *,
                        timeout: float = 5.0) -> None:
        """Send an MO text as OT 52 to a logged-in SMT (they take turns): GSM in AMsg,
        else UCS-2 in TMsg with DCS 08; long texts in parts with a concatenation UDH in
        XSer 01. Returns once every part has a positive result; SimulatorError if no
        SMT is logged in, a part is refused, or no result comes within `timeout`."""
        conn = self._mo_target("no SMT is logged in to take an MO")
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
        results = await self._await_mo(futures, timeout, "no result for OT 52")
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
    add_common_arguments(
        parser, UcpSimulator, port=3006, peers="SMTs", logins="logins", unit="OT 51",
        response="OT 51 result", throttle="EC 04 (not allowed at this point)",
        fail="EC 06 (AdC invalid, permanent)",
        dlr="send delivery notifications (OT 53) when NRq=1 asks",
        dlr_delay="seconds between the OT 51 result and the notification",
        dlr_status="what notifications say (default delivered)")
    parser.add_argument("--user", help="accept logins (OT 60) only with this OAdC")


def simulator_from_args(args: argparse.Namespace) -> UcpSimulator:
    return UcpSimulator(user=args.user, **common_options(args))


async def run(args: argparse.Namespace) -> None:
    """Entry point for `omnigate sim ucp`; runs until cancelled."""
    await serve(simulator_from_args(args), args.control)


def main(argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.ucp`, for use without the omnigate command."""
    cli_main("python -m omnigate.sim.ucp", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from omnigate.sim.ucp import main as _main

    _main()
