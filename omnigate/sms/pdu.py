"""SMS transfer-layer PDUs (3GPP TS 23.040 §9.2) as a GSM modem takes and gives them in
PDU mode (3GPP TS 27.005 §3.1: AT+CMGF=0).

What a modem link needs and nothing more: SMS-SUBMIT encoding (what AT+CMGS sends),
and decoding of SMS-DELIVER (an MO, from AT+CMGR, AT+CMGL or +CMT) and of
SMS-STATUS-REPORT (a delivery report, from AT+CMGR or +CDS). SMS-SUBMIT decoding is
here too, for round-trip checks and the bench. Pure functions, no I/O.

In AT commands a PDU is preceded by the service-centre address (TS 24.011 §8.2.5.1,
27.005 §4.3 "<pdu>"): `encode_submit` and `decode` include it; the length AT+CMGS
takes counts only the TPDU after it.

Every malformed input raises `PduError` (a ValueError) with what is wrong; nothing
else escapes the decoder.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import gsm
from .coding import Coding
from .numbers import Address

# TS 23.040 §9.2.3.1 TP-Message-Type-Indicator, in the first octet's two low bits.
MTI_DELIVER = 0b00
MTI_SUBMIT = 0b01
MTI_STATUS_REPORT = 0b10
# First-octet flags (§9.2.3.2 ff.).
_RD = 0x04  # TP-Reject-Duplicates (SUBMIT); TP-MMS in DELIVER / STATUS-REPORT
_VPF_RELATIVE = 0x10  # TP-VPF = 10: relative, one octet (§9.2.3.3)
_VPF_MASK = 0x18
_SRR = 0x20  # TP-Status-Report-Request (SUBMIT); TP-SRI (DELIVER); TP-SRQ (REPORT)
_UDHI = 0x40  # TP-User-Data-Header-Indicator (§9.2.3.23)

# §9.2.3.24: user data is at most 140 octets, so 160 septets.
USER_DATA_MAX = 140
SEPTETS_MAX = 160
# §9.1.2.5: an address value is at most 10 octets: 20 digits or 11 packed septets.
ADDRESS_DIGITS_MAX = 20
ALPHANUMERIC_MAX = 11
# TS 24.011 §8.2.5.1: the RP address (service centre) holds at most 10 octets after TOA.
SMSC_OCTETS_MAX = 11

# §9.1.2.5 type of number and numbering plan (the values SMPP uses too)
TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5
NPI_ISDN = 1

# §9.1.2.3 semi-octet digits: 0-9 and the four extra telephony characters; F pads.
_DIGITS = "0123456789*#abc"
_DIGIT_VALUE = {c: i for i, c in enumerate(_DIGITS)}


class PduError(ValueError):
    """A PDU (or the values for one) that breaks TS 23.040; the message says where."""


# --------------------------------------------------------------------------
# Data coding scheme (TS 23.038 §4)
# --------------------------------------------------------------------------


def dcs_for(coding: Coding | None, flash: bool = False) -> int:
    """TP-DCS of the general data coding group (§4, 00xx): alphabet in bits 3-2, and
    message class 0 ("flash", shown at once and not stored) when `flash`. None is
    8-bit data."""
    alphabet = {Coding.GSM7: 0x00, None: 0x04, Coding.UCS2: 0x08}.get(coding)
    if alphabet is None:
        raise PduError(f"coding {coding!r} cannot be sent in a PDU (GSM7, UCS2 or 8-bit)")
    return alphabet | 0x10 if flash else alphabet


def dcs_alphabet(dcs: int) -> tuple[Coding | None, int | None]:
    """(alphabet, message class) of a TP-DCS: Coding.GSM7, Coding.UCS2 or None for 8-bit.

    Compressed text (bit 5 of the general group) cannot be read: PduError. Reserved
    groups are read as the default alphabet, as §4 asks ("assume ... GSM 7 bit").
    """
    group = dcs >> 4
    if group < 0x8:  # 00xx general, 01xx automatic deletion: same bit layout
        if dcs & 0x20:
            raise PduError(f"DCS {dcs:02X}: compressed text (TS 23.042) is not supported")
        alphabet = (dcs >> 2) & 0x03
        klass = dcs & 0x03 if dcs & 0x10 else None
        coding = {0: Coding.GSM7, 1: None, 2: Coding.UCS2}.get(alphabet, Coding.GSM7)
        return coding, klass
    if group in (0xC, 0xD):  # message waiting indication, default alphabet
        return Coding.GSM7, None
    if group == 0xE:  # message waiting indication, UCS2
        return Coding.UCS2, None
    if group == 0xF:  # data coding / message class
        return (None if dcs & 0x04 else Coding.GSM7), dcs & 0x03
    return Coding.GSM7, None  # 1000-1011 reserved


# --------------------------------------------------------------------------
# Addresses (§9.1.2.5) and semi-octets (§9.1.2.3)
# --------------------------------------------------------------------------


def _semi_octets(digits: str) -> bytes:
    """Digits two per octet, the first in the low nibble; an odd count padded with F."""
    try:
        values = [_DIGIT_VALUE[c] for c in digits.lower()]
    except KeyError:
        raise PduError(f"{digits!r}: only 0-9 * # a b c are address digits") from None
    if len(values) % 2:
        values.append(0xF)
    return bytes(values[i] | values[i + 1] << 4 for i in range(0, len(values), 2))


def _read_semi_octets(data: bytes, count: int) -> str:
    out = []
    for octet in data:
        out.append(octet & 0x0F)
        out.append(octet >> 4)
    values = out[:count]
    if any(v == 0xF for v in values):
        raise PduError("filler F inside an address")
    return "".join(_DIGITS[v] for v in values)


def _address(addr: Address) -> bytes:
    """TP-DA: length in useful semi-octets, type of address, value (§9.1.2.5)."""
    toa = 0x80 | (addr.ton & 0x07) << 4 | (addr.npi & 0x0F)
    if addr.ton == TON_ALPHANUMERIC:
        septets = gsm.encode_or_none(addr.value)
        if septets is None or not addr.value:
            raise PduError(f"alphanumeric address {addr.value!r} is not GSM 03.38 text")
        if len(septets) > ALPHANUMERIC_MAX:
            raise PduError(f"alphanumeric address {addr.value!r} takes {len(septets)} "
                           f"septets; at most {ALPHANUMERIC_MAX}")
        packed = gsm.pack(septets)
        return bytes(((len(septets) * 7 + 3) // 4, toa)) + packed
    if not addr.value or len(addr.value) > ADDRESS_DIGITS_MAX:
        raise PduError(f"address {addr.value!r} must have 1-{ADDRESS_DIGITS_MAX} digits")
    return bytes((len(addr.value), toa)) + _semi_octets(addr.value)


def _read_address(data: bytes, i: int, what: str) -> tuple[Address, int]:
    """An address at `i`: (Address, index after it)."""
    if i + 2 > len(data):
        raise PduError(f"{what}: PDU ends inside the address")
    semis, toa = data[i], data[i + 1]
    octets = (semis + 1) // 2
    if octets > 10:
        raise PduError(f"{what}: address of {semis} semi-octets; at most 20")
    value = data[i + 2:i + 2 + octets]
    if len(value) < octets:
        raise PduError(f"{what}: PDU ends inside the address")
    ton, npi = (toa >> 4) & 0x07, toa & 0x0F
    if ton == TON_ALPHANUMERIC:
        text = gsm.decode(gsm.unpack(value, semis * 4 // 7))
        return Address(text, ton, npi), i + 2 + octets
    return Address(_read_semi_octets(value, semis), ton, npi), i + 2 + octets


def smsc_field(number: str | None) -> bytes:
    """The service-centre address before the TPDU: "00" (the SIM's, AT+CSCA) when
    None, else length in octets, TOA and digits (TS 24.011 §8.2.5.1). A leading '+'
    means international."""
    if not number:
        return b"\x00"
    international = number.startswith("+")
    digits = number.lstrip("+")
    if not digits.isdigit() or len(digits) > 2 * (SMSC_OCTETS_MAX - 1):
        raise PduError(f"service centre {number!r} is not a number of 1-20 digits")
    value = _semi_octets(digits)
    return bytes((len(value) + 1, 0x91 if international else 0x81)) + value


def _read_smsc(data: bytes) -> tuple[str | None, int]:
    if not data:
        raise PduError("empty PDU")
    n = data[0]
    if n == 0:
        return None, 1
    if n > SMSC_OCTETS_MAX or 1 + n > len(data):
        raise PduError(f"service centre address of {n} octets does not fit")
    toa, value = data[1], data[2:1 + n]
    digits = []
    for octet in value:
        digits += [octet & 0x0F, octet >> 4]
    if digits and digits[-1] == 0xF:
        digits.pop()
    if any(d > 9 for d in digits):
        raise PduError("service centre address has non-digits")
    number = "".join(map(str, digits))
    return ("+" + number if (toa >> 4) & 0x07 == TON_INTERNATIONAL else number), 1 + n


# --------------------------------------------------------------------------
# Validity (§9.2.3.12.1) and time stamps (§9.2.3.11)
# --------------------------------------------------------------------------


def validity_seconds(vp: int) -> int:
    """What a relative TP-VP means, in seconds: 5-minute steps to 12 h, 30-minute
    steps to 24 h, days to 30, then weeks (to 63)."""
    if vp <= 143:
        return (vp + 1) * 300
    if vp <= 167:
        return 43200 + (vp - 143) * 1800
    if vp <= 196:
        return (vp - 166) * 86400
    return (vp - 192) * 7 * 86400


_VP_SECONDS = [validity_seconds(vp) for vp in range(256)]


def relative_validity(seconds: float) -> int:
    """The smallest relative TP-VP that lasts at least `seconds` (255, 63 weeks, at most)."""
    return min(bisect_left(_VP_SECONDS, seconds), 255)


def _bcd(octet: int) -> int:
    lo, hi = octet & 0x0F, octet >> 4
    if lo > 9 or hi > 9:
        raise PduError(f"time stamp octet {octet:02X} is not two decimal digits")
    return lo * 10 + hi


def _read_timestamp(data: bytes, i: int, what: str) -> datetime:
    """TP-SCTS / TP-DT: YY MM DD hh mm ss TZ, semi-octets swapped; TZ in quarter
    hours with the sign in bit 3 (§9.2.3.11)."""
    raw = data[i:i + 7]
    if len(raw) < 7:
        raise PduError(f"{what}: PDU ends inside the time stamp")
    yy, mo, dd, hh, mi, ss = (_bcd(b) for b in raw[:6])
    tz = raw[6]
    quarters = _bcd(tz & 0xF7)
    if quarters > 4 * 18:
        raise PduError(f"{what}: time zone of {quarters} quarter hours")
    offset = timedelta(minutes=15 * quarters) * (-1 if tz & 0x08 else 1)
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=timezone(offset))
    except ValueError as exc:
        raise PduError(f"{what}: {exc}") from None


# --------------------------------------------------------------------------
# User data (§9.2.3.16, §9.2.3.24)
# --------------------------------------------------------------------------


def _fill_bits(udh_len: int) -> int:
    """Zero bits after a UDH so the first septet starts on a septet boundary."""
    return (7 - udh_len * 8 % 7) % 7


def user_data(coding: Coding | None, data: bytes, udh: bytes = b"") -> tuple[int, bytes]:
    """(TP-UDL, TP-UD) for unpacked septets (GSM7) or octets, after an optional full
    UDH (UDHL included). UDL counts septets for GSM7 (the UDH and its fill included),
    octets otherwise."""
    if udh and udh[0] + 1 != len(udh):
        raise PduError(f"UDH length octet says {udh[0]}, the header has {len(udh) - 1}")
    if coding is Coding.GSM7:
        fill = _fill_bits(len(udh))
        header_septets = (len(udh) * 8 + fill) // 7
        udl = header_septets + len(data)
        if udl > SEPTETS_MAX:
            raise PduError(f"{len(data)} septets do not fit beside a {len(udh)}-octet UDH "
                           f"(at most {SEPTETS_MAX - header_septets})")
        try:
            return udl, udh + gsm.pack(data, fill)
        except ValueError as exc:
            raise PduError(str(exc)) from None
    if len(udh) + len(data) > USER_DATA_MAX:
        raise PduError(f"{len(data)} octets do not fit beside a {len(udh)}-octet UDH "
                       f"(at most {USER_DATA_MAX - len(udh)})")
    return len(udh) + len(data), udh + data


def _read_user_data(data: bytes, i: int, dcs: int, udhi: bool) -> tuple[Coding | None, bytes,
                                                                         bytes]:
    """(coding, UDH or b"", user data without it) from TP-UDL at `i` to the end."""
    coding, _ = dcs_alphabet(dcs)
    if i >= len(data):
        raise PduError("PDU ends before TP-UDL")
    udl, ud = data[i], data[i + 1:]
    udh = b""
    if coding is Coding.GSM7:
        if udl > SEPTETS_MAX:
            raise PduError(f"TP-UDL {udl} septets; at most {SEPTETS_MAX}")
        if len(ud) < (udl * 7 + 7) // 8:
            raise PduError(f"TP-UDL {udl} septets but {len(ud)} octets of user data")
        fill = 0
        if udhi:
            udh = _read_udh(ud, udl * 7 // 8)
            fill = _fill_bits(len(udh))
            skip = (len(udh) * 8 + fill) // 7
            if skip > udl:
                raise PduError("UDH longer than the user data")
            return coding, udh, gsm.unpack(ud[len(udh):], udl - skip, fill)
        return coding, udh, gsm.unpack(ud, udl)
    if udl > USER_DATA_MAX or len(ud) < udl:
        raise PduError(f"TP-UDL {udl} octets but {len(ud)} octets of user data")
    ud = ud[:udl]
    if udhi:
        udh = _read_udh(ud, udl)
    body = ud[len(udh):]
    if coding is Coding.UCS2 and len(body) % 2:
        raise PduError(f"UCS2 user data of {len(body)} octets (odd)")
    return coding, udh, body


def _read_udh(ud: bytes, available: int) -> bytes:
    if not ud or ud[0] + 1 > available:
        raise PduError("UDH runs past the user data")
    return ud[:ud[0] + 1]


# --------------------------------------------------------------------------
# SMS-SUBMIT (§9.2.2.2)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submit:
    """An SMS-SUBMIT as read back (`decode`): what `encode_submit` was given."""

    smsc: str | None
    destination: Address
    coding: Coding | None  # None: 8-bit data
    data: bytes  # unpacked septets or octets, without UDH
    udh: bytes
    flash: bool
    report: bool
    reject_duplicates: bool
    validity: int | None  # relative TP-VP, or None
    mr: int
    pid: int


def encode_submit(destination: Address, coding: Coding | None, data: bytes, *,
                  udh: bytes = b"", smsc: str | None = None, mr: int = 0,
                  flash: bool = False, report: bool = False, validity: float | None = None,
                  reject_duplicates: bool = False, pid: int = 0) -> tuple[bytes, int]:
    """(PDU with the service-centre field, TPDU length for AT+CMGS) of an SMS-SUBMIT.

    `data` is unpacked septets (GSM7) or octets; `validity` in seconds goes out as a
    relative TP-VP. TP-MR 0: the modem puts its own reference in (27.005 §3.5.1).
    """
    if not 0 <= mr <= 255 or not 0 <= pid <= 255:
        raise PduError("TP-MR and TP-PID are one octet")
    first = MTI_SUBMIT
    if reject_duplicates:
        first |= _RD
    if validity is not None:
        first |= _VPF_RELATIVE
    if report:
        first |= _SRR
    if udh:
        first |= _UDHI
    udl, ud = user_data(coding, data, udh)
    tpdu = bytearray((first, mr))
    tpdu += _address(destination)
    tpdu += bytes((pid, dcs_for(coding, flash)))
    if validity is not None:
        tpdu.append(relative_validity(validity))
    tpdu.append(udl)
    tpdu += ud
    return smsc_field(smsc) + tpdu, len(tpdu)


def _decode_submit(data: bytes, i: int, smsc: str | None) -> Submit:
    first = data[i]
    if i + 2 > len(data):
        raise PduError("SMS-SUBMIT ends before TP-MR")
    mr = data[i + 1]
    destination, i = _read_address(data, i + 2, "TP-DA")
    if i + 2 > len(data):
        raise PduError("SMS-SUBMIT ends before TP-DCS")
    pid, dcs = data[i], data[i + 1]
    i += 2
    vpf = first & _VPF_MASK
    validity = None
    if vpf == _VPF_RELATIVE:
        if i >= len(data):
            raise PduError("SMS-SUBMIT ends inside TP-VP")
        validity = data[i]
        i += 1
    elif vpf:
        i += 7  # absolute or enhanced: seven octets, read past
    coding, udh, body = _read_user_data(data, i, dcs, bool(first & _UDHI))
    _, klass = dcs_alphabet(dcs)
    return Submit(smsc, destination, coding, body, udh, klass == 0, bool(first & _SRR),
                  bool(first & _RD), validity, mr, pid)


# --------------------------------------------------------------------------
# SMS-DELIVER (§9.2.2.1) and SMS-STATUS-REPORT (§9.2.2.3)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deliver:
    """An MO as the modem received it."""

    smsc: str | None
    sender: Address
    coding: Coding | None  # None: 8-bit data
    data: bytes  # unpacked septets or octets, without UDH
    udh: bytes
    scts: datetime  # when the service centre took it, in its zone
    pid: int
    message_class: int | None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The outcome of a submit that asked for one (TP-SRR)."""

    smsc: str | None
    mr: int  # TP-MR of the submit it reports on
    recipient: Address
    scts: datetime  # when the service centre took the submit
    done_at: datetime  # TP-DT: when the outcome below happened
    status: int  # TP-ST (§9.2.3.15)

    @property
    def final(self) -> bool:
        """0x20-0x3F: the service centre is still trying; everything else is final."""
        return not 0x20 <= self.status <= 0x3F

    @property
    def delivered(self) -> bool:
        """0x00-0x1F: the short message transaction completed."""
        return self.status < 0x20


# TP-ST values with a name (§9.2.3.15), for reasons in reports and logs.
STATUS_TEXT = {
    0x00: "received by the SME", 0x01: "forwarded, delivery not confirmed",
    0x02: "replaced by the SC", 0x20: "congestion (still trying)",
    0x21: "SME busy (still trying)", 0x22: "no response from SME (still trying)",
    0x23: "service rejected (still trying)", 0x24: "quality of service not available "
    "(still trying)", 0x25: "error in SME (still trying)",
    0x40: "remote procedure error", 0x41: "incompatible destination",
    0x42: "connection rejected by SME", 0x43: "not obtainable", 0x44: "quality of service "
    "not available", 0x45: "no interworking available", 0x46: "validity period expired",
    0x47: "deleted by originating SME", 0x48: "deleted by SC administration",
    0x49: "SM does not exist", 0x60: "congestion", 0x61: "SME busy",
    0x62: "no response from SME", 0x63: "service rejected",
    0x64: "quality of service not available", 0x65: "error in SME",
}
ST_VALIDITY_EXPIRED = 0x46


def _decode_deliver(data: bytes, i: int, smsc: str | None) -> Deliver:
    first = data[i]
    sender, i = _read_address(data, i + 1, "TP-OA")
    if i + 2 > len(data):
        raise PduError("SMS-DELIVER ends before TP-DCS")
    pid, dcs = data[i], data[i + 1]
    scts = _read_timestamp(data, i + 2, "TP-SCTS")
    coding, udh, body = _read_user_data(data, i + 9, dcs, bool(first & _UDHI))
    return Deliver(smsc, sender, coding, body, udh, scts, pid, dcs_alphabet(dcs)[1])


def _decode_status_report(data: bytes, i: int, smsc: str | None) -> StatusReport:
    if i + 2 > len(data):
        raise PduError("SMS-STATUS-REPORT ends before TP-MR")
    mr = data[i + 1]
    recipient, i = _read_address(data, i + 2, "TP-RA")
    scts = _read_timestamp(data, i, "TP-SCTS")
    done_at = _read_timestamp(data, i + 7, "TP-DT")
    if i + 14 >= len(data):
        raise PduError("SMS-STATUS-REPORT ends before TP-ST")
    # TP-PI and what it announces (PID, DCS, UD) may follow; a report needs none of it.
    return StatusReport(smsc, mr, recipient, scts, done_at, data[i + 14])


def decode(pdu: bytes) -> Deliver | StatusReport | Submit:
    """A PDU as AT+CMGR, AT+CMGL, +CMT or +CDS give it (service-centre field first).

    PduError for anything malformed, including the reserved message type 11.
    """
    try:
        smsc, i = _read_smsc(pdu)
        if i >= len(pdu):
            raise PduError("PDU ends after the service centre address")
        mti = pdu[i] & 0x03
        if mti == MTI_DELIVER:
            return _decode_deliver(pdu, i, smsc)
        if mti == MTI_STATUS_REPORT:
            return _decode_status_report(pdu, i, smsc)
        if mti == MTI_SUBMIT:
            return _decode_submit(pdu, i, smsc)
        raise PduError("TP-MTI 11 is reserved")
    except IndexError:
        raise PduError("PDU ends early") from None


def decode_hex(text: str) -> Deliver | StatusReport | Submit:
    """`decode` of the hex a modem prints; PduError if it is not hex."""
    try:
        pdu = bytes.fromhex(text)
    except ValueError:
        raise PduError(f"PDU is not hex: {text[:40]!r}") from None
    return decode(pdu)


def text_of(coding: Coding | None, data: bytes) -> str:
    """The text of decoded user data; 8-bit data one character per octet (Latin-1), so
    nothing is lost."""
    if coding is Coding.GSM7:
        return gsm.decode(data)
    if coding is Coding.UCS2:
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")
