"""UCP/EMI frames and operations as data: pure functions, no I/O, no state.

Per the EMI/UCP interface specification 4.x (CMG, "Short Message Service Centre EMI -
UCP Interface"), cited as "EMI §x":

- A frame is ``STX TRN/LEN/O|R/OT/field/field/.../CS ETX`` (EMI §2): TRN is the
  transaction reference 00-99, LEN the number of characters between STX and ETX in
  five digits (so the checksum's two characters count), ``O`` an operation or ``R``
  its result, OT the operation type in two digits. CS is the sum of every octet from
  the first TRN digit up to and including the ``/`` before CS, modulo 256, as two
  upper-case hex digits.
- Fields never contain ``/``; binary data and text travel as "IRA encoded" hex.
- Operations we use (EMI §4.6, §5, §6): 31 alert (keep-alive), 51 submit short
  message, 52 delivery short message (MO), 53 delivery notification (DLR), 60 session
  management (login). Every 50-series operation has the same 33 fields.
- Results: positive ``A/MVP/SM`` for the 50-series, ``A/SM`` for 31 and 60; negative
  ``N/EC/SM`` for all, with the error codes of EMI §8 (table ERRORS below).

One table (OPERATIONS) names every field of every operation once; it drives the
generic encoder and decoder, their validation, and the names in log lines (STYLE §5).
The hot path - one OT 51 per part - uses the same field positions, indexed once.

The message text (AMsg, MT=3) is the GSM 03.38 default alphabet, one septet value per
octet, hex-encoded: the spec's "IRA" table for AMsg is the GSM alphabet laid out in
7-bit code points, and the SMSC packs it. UCS-2 and other data go as transparent data
(MT=4: NB bits of TMsg) with the TS 23.038 DCS in XSer type 02; a UDH (concatenation)
always travels in XSer type 01, never inside the message (EMI §5.1.2.4).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zlib import adler32

from omnigate.model import FailureKind
from omnigate.sms import gsm
from omnigate.sms.coding import Coding

STX = 0x02
ETX = 0x03
MAX_FRAME = 99_999  # LEN has five digits (EMI §2)
TRN_MODULO = 100  # TRN is two digits, 00-99 (EMI §2)
ADDRESS_MAX = 16  # AdC, OAdC: "maximum length is 16 digits" (EMI §5.2)
ALPHANUMERIC_MAX = 11  # septets in an alphanumeric OAdC: 22 hex characters (EMI §5.2)
USER_DATA_MAX = 140  # octets of TP-User-Data (TS 23.040 §9.2.3.16), UDH included
SEPTETS_BITS_MAX = USER_DATA_MAX * 8

OTOA_INTERNATIONAL = "1139"  # OAdC is NPI telephone, TON international (EMI §5.2)
OTOA_ALPHANUMERIC = "5039"  # OAdC is an alphanumeric address, packed as below
PID_PC_TCPIP = "0539"  # "PC appl. over TCP/IP" (EMI §4.6, §5.2: NPID, LPID, PID)
XSER_UDH = 0x01  # GSM UDH information (EMI §5.1.2.4)
XSER_DCS = 0x02  # GSM DCS information


class CodecError(ValueError):
    """Bytes or fields that cannot be read or written; `ec` is the EMI error code a peer
    would answer with (01 checksum, 02 syntax, 06 AdC invalid, 24 message too long)."""

    def __init__(self, ec: str, reason: str) -> None:
        super().__init__(reason)
        self.ec = ec
        self.reason = reason


# --- the operation table ---------------------------------------------------------------

# (name, max length) of every 50-series field, in order (EMI §5.2). Lengths are in
# characters as they travel; 0 means "not limited here" (Msg: 640 hex characters of
# AMsg, but TMsg is bounded by NB and the 140-octet user data instead).
FIELDS_5X: tuple[tuple[str, int], ...] = (
    ("AdC", 16), ("OAdC", 22), ("AC", 16), ("NRq", 1), ("NAdC", 16), ("NT", 1),
    ("NPID", 4), ("LRq", 1), ("LRAd", 16), ("LPID", 4), ("DD", 1), ("DDT", 10),
    ("VP", 10), ("RPID", 4), ("SCTS", 12), ("Dst", 1), ("Rsn", 3), ("DSCTS", 12),
    ("MT", 1), ("NB", 4), ("Msg", 0), ("MMS", 1), ("PR", 1), ("DCs", 1), ("MCLs", 1),
    ("RPI", 1), ("CPg", 0), ("RPLy", 0), ("OTOA", 4), ("HPLMN", 16), ("XSer", 0),
    ("RES4", 0), ("RES5", 0),
)
FIELDS_60: tuple[tuple[str, int], ...] = (  # EMI §6.2 session management
    ("OAdC", 16), ("OTON", 1), ("ONPI", 1), ("STYP", 1), ("PWD", 0), ("NPWD", 0),
    ("VERS", 4), ("LAdC", 16), ("LTON", 1), ("LNPI", 1), ("OPID", 2), ("RES1", 0),
)
FIELDS_31: tuple[tuple[str, int], ...] = (("AdC", 16), ("PID", 4))  # EMI §4.6 alert
ACK_5X: tuple[tuple[str, int], ...] = (("ACK", 1), ("MVP", 10), ("SM", 0))
ACK_OTHER: tuple[tuple[str, int], ...] = (("ACK", 1), ("SM", 0))
NACK: tuple[tuple[str, int], ...] = (("NACK", 1), ("EC", 2), ("SM", 0))


@dataclass(frozen=True, slots=True)
class Operation:
    ot: int
    name: str
    fields: tuple[tuple[str, int], ...]
    ack: tuple[tuple[str, int], ...]  # fields of its positive result

    def index(self, name: str) -> int:
        return [f for f, _ in self.fields].index(name)


OPERATIONS: dict[int, Operation] = {
    31: Operation(31, "alert", FIELDS_31, ACK_OTHER),
    51: Operation(51, "submit short message", FIELDS_5X, ACK_5X),
    52: Operation(52, "delivery short message", FIELDS_5X, ACK_5X),
    53: Operation(53, "delivery notification", FIELDS_5X, ACK_5X),
    60: Operation(60, "session management", FIELDS_60, ACK_OTHER),
}
ALERT, SUBMIT, DELIVER, NOTIFY, SESSION = 31, 51, 52, 53, 60


def op_name(ot: int) -> str:
    op = OPERATIONS.get(ot)
    return f"OT {ot:02d} ({op.name})" if op else f"OT {ot:02d}"


# Field positions in every 50-series operation, for the hot paths.
_I = {name: i for i, (name, _) in enumerate(FIELDS_5X)}
I_ADC, I_OADC, I_NRQ, I_NADC, I_NT, I_NPID = (_I[n] for n in ("AdC", "OAdC", "NRq", "NAdC",
                                                               "NT", "NPID"))
I_VP, I_SCTS, I_DST, I_RSN, I_DSCTS = (_I[n] for n in ("VP", "SCTS", "Dst", "Rsn", "DSCTS"))
I_MT, I_NB, I_MSG, I_MCLS, I_OTOA, I_XSER = (_I[n] for n in ("MT", "NB", "Msg", "MCLs",
                                                              "OTOA", "XSer"))
N_5X = len(FIELDS_5X)


def encode_fields(fields: tuple[tuple[str, int], ...], values: dict[str, str]) -> bytes:
    """The data part of an operation or result from named values; the rest stay empty.
    For the cold paths (login, alert, results, the simulator's tests); checks names,
    lengths and the separator."""
    known = {name: limit for name, limit in fields}
    for name, value in values.items():
        if name not in known:
            raise CodecError("02", f"no field {name!r} here")
        limit = known[name]
        if limit and len(value) > limit:
            raise CodecError("02", f"{name} is {len(value)} characters, at most {limit}")
        if "/" in value or not value.isascii():
            raise CodecError("02", f"{name} must be IRA characters without '/'")
    return "/".join(values.get(name, "") for name, _ in fields).encode("ascii")


def decode_fields(fields: tuple[tuple[str, int], ...], raw: list[bytes]) -> dict[str, str]:
    """Named values of a received operation or result; CodecError 02 on a field count
    that does not match the table."""
    if len(raw) != len(fields):
        raise CodecError("02", f"{len(raw)} fields where {len(fields)} belong")
    return {name: value.decode("latin-1") for (name, _), value in zip(fields, raw, strict=True)}


# --- frames ---------------------------------------------------------------------------


def octet_sum(data: bytes) -> int:
    """The sum of the octets, at C speed: Adler-32's low half is 1 + that sum modulo
    65521 (RFC 1950 §8.2), exact while the sum stays below 65521, i.e. for up to 256
    octets at a time. `sum(data)` costs 15 ns per octet; this, a few ns per call."""
    if len(data) <= 256:
        return (adler32(data) & 0xFFFF) - 1
    view = memoryview(data)
    return sum((adler32(view[i:i + 256]) & 0xFFFF) - 1 for i in range(0, len(data), 256))


def checksum(body: bytes) -> bytes:
    """EMI §2: the octets from TRN up to the last '/', summed, low 8 bits, 2 hex digits."""
    return b"%02X" % (octet_sum(body) & 0xFF)


def frame(trn: int, kind: bytes, ot: int, data: bytes) -> bytes:
    """One whole frame, STX to ETX; `kind` is b"O" or b"R", `data` the fields joined."""
    length = 17 + len(data)  # "TT/LLLLL/O/OT/" (14) + data + "/" + CS (2)
    if length > MAX_FRAME:
        raise CodecError("02", f"frame of {length} characters (LEN has five digits)")
    body = b"%02d/%05d/%s/%02d/%s/" % (trn, length, kind, ot, data)
    return b"\x02%s%02X\x03" % (body, octet_sum(body) & 0xFF)


class HeaderError(CodecError):
    """A frame whose header could be read but whose LEN or checksum is wrong."""

    def __init__(self, ec: str, reason: str, trn: int, kind: bytes, ot: int) -> None:
        super().__init__(ec, reason)
        self.trn, self.kind, self.ot = trn, kind, ot


@dataclass(slots=True)
class Frame:
    trn: int
    kind: bytes  # b"O" or b"R"
    ot: int
    fields: list[bytes]


_TWO_DIGITS = {b"%02d" % i: i for i in range(100)}  # TRN and OT: validated and read at once
_KINDS = (b"O", b"R")
_SLASH = 0x2F


def read_frame(inner: bytes) -> tuple[int, bytes, int, list[bytes]]:
    """`parse_frame` as a plain tuple (trn, kind, ot, fields), for the session's hot path."""
    n = len(inner)
    if n < 17:
        raise CodecError("02", f"frame of {n} characters is too short: {inner!r}")
    trn = _TWO_DIGITS.get(inner[0:2])
    ot = _TWO_DIGITS.get(inner[11:13])
    kind = inner[9:10]
    len_s = inner[3:8]
    if (trn is None or ot is None or kind not in _KINDS or not len_s.isdigit()
            or inner[2] != _SLASH or inner[8] != _SLASH or inner[10] != _SLASH
            or inner[13] != _SLASH or inner[-3] != _SLASH):
        raise CodecError("02", f"malformed header in {inner[:20]!r}")
    if int(len_s) != n:
        raise HeaderError("02", f"LEN says {int(len_s)} but the frame has {n} characters",
                          trn, kind, ot)
    cs = inner[-2:]
    try:
        got = int(cs, 16)  # lower-case hex is read too: strictness is the simulator's job
    except ValueError:
        got = -1
    want = octet_sum(inner[:-2]) & 0xFF
    if got != want:
        raise HeaderError("01", f"checksum {cs.decode('latin-1')!r}, computed {want:02X}",
                          trn, kind, ot)
    return trn, kind, ot, inner[14:-3].split(b"/")


def parse_frame(inner: bytes) -> Frame:
    """The characters between STX and ETX as a Frame; CodecError 01 on a wrong checksum,
    02 on anything else malformed. The TRN, kind and OT of a frame whose header could be
    read are kept on the error (HeaderError), so the caller can answer it."""
    return Frame(*read_frame(inner))


# --- operations we send -----------------------------------------------------------------


def ira_hex(text: str) -> str:
    """A string "encoded into IRA characters" (EMI §5.2, PWD): each octet of its
    ISO 8859-1 form as two upper-case hex digits."""
    try:
        return text.encode("latin-1").hex().upper()
    except UnicodeEncodeError:
        raise CodecError("02", "only ISO 8859-1 characters can be IRA-encoded") from None


def login_data(user: str, password: str, ton: str, npi: str) -> bytes:
    """OT 60 open session (STYP 1), password IRA-encoded, version 0100 (EMI §6.2)."""
    return encode_fields(FIELDS_60, {"OAdC": user, "OTON": ton, "ONPI": npi, "STYP": "1",
                                     "PWD": ira_hex(password), "VERS": "0100"})


def alert_data(adc: str, pid: str = PID_PC_TCPIP) -> bytes:
    """OT 31 alert: the SMT's own address and PID; we use it as keep-alive (EMI §4.6)."""
    return encode_fields(FIELDS_31, {"AdC": adc, "PID": pid})


def ack_data(ot: int, sm: str = "") -> bytes:
    """Positive result for an operation the SMSC sent (52, 53, 31)."""
    return encode_fields(OPERATIONS[ot].ack if ot in OPERATIONS else ACK_OTHER,
                         {"ACK": "A", "SM": sm})


def nack_data(ec: str, sm: str = "") -> bytes:
    return encode_fields(NACK, {"NACK": "N", "EC": ec, "SM": sm.replace("/", " ")})


# The fields we fill in an OT 51, and the other 20 empty: one %-template made from the
# table, so a submit is one formatting operation.
_SUBMIT_FIELDS = ("AdC", "OAdC", "NRq", "NAdC", "NT", "NPID", "VP", "MT", "NB", "Msg", "MCLs",
                  "OTOA", "XSer")  # in table order
_SUBMIT_TEMPLATE = b"/".join(b"%s" if name in _SUBMIT_FIELDS else b"" for name, _ in FIELDS_5X)


def submit_data(*, adc: bytes, oadc: bytes, mt: bytes, msg: bytes, nb: bytes = b"",
                otoa: bytes = b"", xser: bytes = b"", nrq: bytes = b"", nt: bytes = b"",
                nadc: bytes = b"", npid: bytes = b"", vp: bytes = b"",
                mcls: bytes = b"") -> bytes:
    """The 33 fields of an OT 51, joined: the per-part hot path, so values come as ready
    IRA bytes and only their positions come from the table."""
    return _SUBMIT_TEMPLATE % (adc, oadc, nrq, nadc, nt, npid, vp, mt, nb, msg, mcls, otoa,
                               xser)


def alphanumeric_oadc(text: str) -> str:
    """An alphanumeric OAdC (OTOA 5039): the GSM septets packed as in TS 23.040 §9.1.2.5,
    preceded by the number of useful semi-octets, all in hex (EMI §5.2: "a 22 character
    string corresponds with a max. 11 character alphanumeric string")."""
    try:
        septets = gsm.encode(text)
    except ValueError as exc:
        raise CodecError("02", f"alphanumeric sender: {exc}") from None
    if not septets or len(septets) > ALPHANUMERIC_MAX:
        raise CodecError("02", f"alphanumeric sender {text!r} takes {len(septets)} septets; "
                               f"1-{ALPHANUMERIC_MAX} fit in OAdC")
    return f"{(len(septets) * 7 + 3) // 4:02X}{gsm.pack(septets).hex().upper()}"


def decode_oadc(oadc: str, otoa: str) -> str:
    """The originator as text: numeric as it is, OTOA 5039 unpacked from its septets.
    CodecError 02 if the alphanumeric form is not hex or its length is inconsistent."""
    if otoa != OTOA_ALPHANUMERIC:
        return oadc
    try:
        semi = int(oadc[:2], 16)
        packed = bytes.fromhex(oadc[2:])
        count = semi * 4 // 7
        return gsm.decode(gsm.unpack(packed, count))
    except ValueError:
        raise CodecError("02", f"alphanumeric OAdC {oadc!r} is not packed septets") from None


def xser(udh: bytes | None, dcs: int | None) -> str:
    """The XSer field: type 01 with the whole UDH (UDHL included), type 02 with the DCS,
    each as TT LL DD... in hex (EMI §5.1.2.4)."""
    out = ""
    if udh:
        out = f"01{len(udh):02X}{udh.hex().upper()}"
    if dcs is not None:
        out += f"0201{dcs:02X}"
    return out


def parse_xser(value: str) -> dict[int, bytes]:
    """XSer services by type; CodecError 02 if the TT LL DD... structure does not hold."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise CodecError("02", f"XSer {value[:40]!r} is not hex") from None
    out: dict[int, bytes] = {}
    i = 0
    while i < len(raw):
        if i + 2 > len(raw) or i + 2 + raw[i + 1] > len(raw):
            raise CodecError("02", "XSer service runs past the end of the field")
        out[raw[i]] = raw[i + 2:i + 2 + raw[i + 1]]
        i += 2 + raw[i + 1]
    return out


# --- time -------------------------------------------------------------------------------


def zone(name: str) -> tzinfo:
    """The time zone of the SMSC's time stamps (VP, SCTS, DSCTS carry none)."""
    return UTC if name.upper() == "UTC" else zoneinfo.ZoneInfo(name)


def ucp_time(epoch: float, tz: tzinfo) -> str:
    """DDMMYYHHmm, as VP and DDT are written (EMI §5.2)."""
    return datetime.fromtimestamp(epoch, tz).strftime("%d%m%y%H%M")


def parse_scts(value: str, tz: tzinfo) -> datetime | None:
    """DDMMYYHHmmss (SCTS, DSCTS) or DDMMYYHHmm as an aware datetime; None if not one."""
    if len(value) not in (10, 12) or not value.isdigit():
        return None
    try:
        return datetime(2000 + int(value[4:6]), int(value[2:4]), int(value[0:2]),
                        int(value[6:8]), int(value[8:10]), int(value[10:12] or 0), tzinfo=tz)
    except ValueError:
        return None


# --- coding -----------------------------------------------------------------------------


def dcs_coding(dcs: int) -> Coding | None:
    """The alphabet of a TS 23.038 §4 DCS, or None for 8-bit data and compressed text.
    Groups 00xx/01xx carry it in bits 3-2; 1100/1101 are GSM, 1110 UCS-2 (message
    waiting); 1111 is GSM or 8-bit by bit 2; the reserved groups are read as 8-bit."""
    group = dcs >> 4
    if group < 0x8:
        if dcs & 0x20:
            return None
        return (Coding.GSM7, None, Coding.UCS2, None)[(dcs >> 2) & 3]
    if group in (0xC, 0xD):
        return Coding.GSM7
    if group == 0xE:
        return Coding.UCS2
    if group == 0xF and not dcs & 0x04:
        return Coding.GSM7
    return None


# --- error codes -----------------------------------------------------------------------

P, T, THR = FailureKind.PERMANENT, FailureKind.TEMPORARY, FailureKind.THROTTLED

# EC (EMI §8) -> (text, what it means for the part). The rule: an error about the
# message or its addresses is permanent - sending the same part again gets the same
# answer; an error about this moment (network, load, the session) is temporary.
ERRORS: dict[str, tuple[str, FailureKind]] = {
    # Bytes damaged on the way: the same part, framed again, goes through.
    "01": ("checksum error", T),
    # Our frame or a field breaks the syntax: resending the same bytes cannot help.
    "02": ("syntax error", P),
    "03": ("operation not supported by system", P),
    # "(at this point in time)": the spec's only try-later code, which SMSCs answer
    # when a session exceeds its throughput or window. Throttled, not failed: the
    # link pauses `throttle_backoff` and the part goes again without using an attempt.
    "04": ("operation not allowed (at this point in time)", THR),
    "05": ("call barring active", P),  # the recipient is barred
    "06": ("AdC invalid", P),  # the recipient's number
    # On a submit: the session is not (or no longer) authenticated; the part is fine.
    "07": ("authentication failure", T),
    # AC / legitimisation codes: we send none, so the account needs one we lack.
    "08": ("legitimisation code for all calls, failure", P),
    "09": ("GA not valid", P),
    "10": ("repetition not allowed", P),
    "11": ("legitimisation code for repetition, failure", P),
    "12": ("priority call not allowed", P),
    "13": ("legitimisation code for priority call, failure", P),
    "14": ("urgent message not allowed", P),
    "15": ("legitimisation code for urgent message, failure", P),
    "16": ("reverse charging not allowed", P),
    "17": ("legitimisation code for rev. charging, failure", P),
    "18": ("deferred delivery not allowed", P),
    "19": ("new AC not valid", P),
    "20": ("new legitimisation code not valid", P),
    "21": ("standard text not valid", P),
    "22": ("time period not valid", P),  # our VP
    "23": ("message type not supported by system", P),
    "24": ("message too long", P),
    "25": ("requested standard text not valid", P),
    # The recipient's terminal cannot take this kind of message (e.g. UCS-2 to a pager).
    "26": ("message type not valid for the pager type", P),
    "27": ("message not found in SMSC", P),
    "28": ("invalid character set", P),
    "30": ("subscriber hang-up", T),
    "31": ("fax group not supported", P),
    "32": ("fax message type not supported", P),
    "36": ("RPID already in use", P),
    "37": ("delivery in progress", T),
    "50": ("low network status", T),
    "51": ("legitimisation code for standard text, failure", P),
    "53": ("operation partially successful", T),
    "54": ("operation not successful", T),
    "55": ("system error", T),
    # 90-99 are proprietary and unknown codes say nothing: temporary, so the part is
    # retried a bounded number of times (the dispatcher counts) rather than lost at once.
}


def error_kind(ec: str) -> FailureKind:
    entry = ERRORS.get(ec)
    return entry[1] if entry is not None else T


def error_text(ec: str, sm: str = "") -> str:
    """'EC 24 (message too long)', with the SMSC's own words when it sent any."""
    entry = ERRORS.get(ec)
    text = f"EC {ec} ({entry[0]})" if entry else f"EC {ec}"
    return f"{text}: {sm}" if sm else text


# Rsn of a delivery notification (EMI Appendix A, as shipped; operators may change them).
REASONS: dict[str, str] = {
    "000": "unknown subscriber", "001": "service temporary not available",
    "002": "service temporary not available", "003": "service temporary not available",
    "004": "service temporary not available", "005": "service temporary not available",
    "006": "service temporary not available", "007": "service temporary not available",
    "008": "service temporary not available", "009": "illegal error code",
    "010": "network time-out", "100": "facility not supported", "101": "unknown subscriber",
    "102": "facility not provided", "103": "call barred", "104": "operation barred",
    "105": "SC congestion", "106": "facility not supported", "107": "absent subscriber",
    "108": "delivery fail", "109": "SC congestion", "110": "protocol error",
    "111": "MS not equipped", "112": "unknown SC", "113": "SC congestion",
    "114": "illegal MS", "115": "MS not a subscriber", "116": "error in MS",
    "117": "SMS lower layer not provisioned", "118": "system fail",
    "119": "PLMN system failure", "120": "HLR system failure", "121": "VLR system failure",
    "122": "previous VLR system failure", "123": "controlling MSC system failure",
    "124": "VMSC system failure", "125": "EIR system failure", "126": "system failure",
    "127": "unexpected data value", "200": "error in address service centre",
    "201": "invalid absolute validity period", "202": "short message exceeds maximum",
    "203": "unable to unpack GSM message", "204": "unable to convert to IRA alphabet",
    "205": "invalid validity period format", "206": "invalid destination address",
    "207": "duplicate message submit", "208": "invalid message type indicator",
}


# --- operations the SMSC sends -------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Deliver:
    """An MO (OT 52) as received: user data without UDH, in `coding` (None: 8-bit)."""

    recipient: str  # AdC
    sender: str  # OAdC, unpacked when alphanumeric
    scts: str
    coding: Coding | None
    data: bytes  # unpacked septets for GSM, octets otherwise
    udh: bytes | None


@dataclass(slots=True, frozen=True)
class Notification:
    """A delivery notification (OT 53): AdC and SCTS name the message it is about."""

    adc: str
    scts: str
    dst: str  # 0 delivered, 1 buffered, 2 not delivered
    rsn: str
    dscts: str
    text: str


def _message(f: list[bytes]) -> tuple[Coding | None, bytes, bytes | None]:
    """(coding, user data, UDH) of a received 50-series operation, from MT, Msg, NB, XSer."""
    services = parse_xser(f[I_XSER].decode("latin-1")) if f[I_XSER] else {}
    udh = services.get(XSER_UDH)
    dcs = services.get(XSER_DCS)
    mt = f[I_MT]
    try:
        data = bytes.fromhex(f[I_MSG].decode("latin-1"))
    except ValueError:
        raise CodecError("02", "Msg is not hex") from None
    if mt == b"3":
        if any(b > 0x7F for b in data):
            raise CodecError("02", "AMsg holds octets that are not GSM septets")
        return Coding.GSM7, data, udh
    if mt == b"4":
        nb = f[I_NB]
        if not nb.isdigit() or (int(nb) + 7) // 8 != len(data):
            raise CodecError("02", f"NB {nb.decode('latin-1')!r} does not match TMsg")
        coding = dcs_coding(dcs[0]) if dcs else None
        if coding is Coding.GSM7:
            # Transparent data with a GSM DCS is packed septets: NB bits of them.
            data = gsm.unpack(data, int(nb) // 7)
        return coding, data, udh
    raise CodecError("23", f"message type MT={mt.decode('latin-1')!r} is not supported")


def parse_deliver(f: list[bytes]) -> Deliver:
    """An OT 52's fields (already counted) as a Deliver; CodecError with the EC to answer."""
    coding, data, udh = _message(f)
    sender = decode_oadc(f[I_OADC].decode("latin-1"), f[I_OTOA].decode("latin-1"))
    return Deliver(f[I_ADC].decode("latin-1"), sender, f[I_SCTS].decode("latin-1"),
                   coding, data, udh)


def parse_notification(f: list[bytes]) -> Notification:
    adc, scts = f[I_ADC].decode("latin-1"), f[I_SCTS].decode("latin-1")
    if not adc or len(scts) != 12 or not scts.isdigit():
        raise CodecError("02", "a notification needs AdC and a 12-digit SCTS")
    text = ""
    if f[I_MSG]:
        try:
            coding, data, _ = _message(f)
            text = gsm.decode(data) if coding is Coding.GSM7 else data.decode("latin-1")
        except (CodecError, ValueError):
            text = ""  # the text is for people; the fields carry the facts
    return Notification(adc, scts, f[I_DST].decode("latin-1"), f[I_RSN].decode("latin-1"),
                        f[I_DSCTS].decode("latin-1"), text)


def carrier_ref(adc: str, scts: str) -> str:
    """The key of a message at the SMSC, as the positive result of OT 51 gives it in SM
    ("AdC:SCTS") and as OT 53 names it in its AdC and SCTS fields (EMI §5.3, §5.5)."""
    return f"{adc}:{scts}"
