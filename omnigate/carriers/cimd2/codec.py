"""CIMD2 wire format: pure functions and tables, no state, no I/O.

Written from the Nokia CIMD 2.0 interface specification ("CIMD Interface Specification",
Nokia SMS Center, dn03305755; "§n" below names its chapters: 4 packet format, 5
operations, 6 parameters, 7 error and status codes (7.3 error codes), 8.1 default
character conversion). A packet is

    STX  OO:NNN TAB  PPP:value TAB  PPP:value TAB ...  [CC]  ETX

with OO the two-digit operation code, NNN the three-digit packet number, each parameter
three digits, a colon and its value, ended by TAB, and CC an optional checksum: the sum
of every byte from STX through the last TAB, modulo 256, as two hexadecimal digits (§4).

STYLE §5: the parameter table `PARAMETERS` (number, name, maximum length, type, range)
is the one place parameters are described; encoding (`param`), validation
(`param_problem`), decoding (`Packet` accessors) and log names (`describe`) all read it.
`OPERATIONS` names the operation codes, `ERRORS` maps error codes (parameter 900) to how a
refused part is retried, `STATUS_CODES` maps the status codes of delivery status reports
(parameter 061) to message statuses.

User data (parameter 033) is not ASCII but CIMD2's own character conversion (§8.1): the
GSM 03.38 default alphabet written in printable ASCII, where characters ASCII lacks are
"special combinations" of an underscore and two characters (`_Oa` for @, `_a"` for ä,
`_XX` for the escape to the extension table, so `_XX(` is {). `text_to_user_data` and
`user_data_to_text` convert; binary user data (034) and the user data header (032) are
hexadecimal.

The SMSC simulator (`omnigate.sim.cimd2`) parses packets with its own code and its own
tables; both are tested against frames computed by hand from the specification, so a
mistake here is not mirrored there.
"""

from __future__ import annotations

import codecs
import enum
from dataclasses import dataclass
from typing import NamedTuple

from omnigate.model import FailureKind, Status
from omnigate.sms import gsm
from omnigate.sms.coding import Coding

# --- framing (§4) ----------------------------------------------------------------------

STX = 0x02
ETX = 0x03
TAB = 0x09
COLON = 0x3A

# Packet numbers (§4): the application numbers its packets with odd numbers 001..255,
# wrapping from 255 to 001; the SMS Center uses even numbers for its own. A response
# carries the number of the packet it answers.
FIRST_NUMBER = 1
LAST_NUMBER = 255
# Odd numbers 1..255: 128 of them, so at most 128 packets can await an answer at once
# (the spec's largest window size, parameter 019, is 128 for the same reason).
NUMBERS = 128


def next_number(number: int) -> int:
    """The packet number after `number` for the application's own packets."""
    return number + 2 if number < LAST_NUMBER else FIRST_NUMBER


# --- operation codes (§5) ----------------------------------------------------------------

LOGIN = 1
LOGOUT = 2
SUBMIT = 3
ENQUIRE_MESSAGE_STATUS = 4
DELIVERY_REQUEST = 5
CANCEL = 6
SET = 8
GET = 9
DELIVER_MESSAGE = 20
DELIVER_STATUS_REPORT = 23
ALIVE = 40
RESPONSE = 50  # every operation is answered by its code + 50
LOGIN_RESP = 51
LOGOUT_RESP = 52
SUBMIT_RESP = 53
DELIVER_MESSAGE_RESP = 70
DELIVER_STATUS_REPORT_RESP = 73
ALIVE_RESP = 90
GENERAL_ERROR_RESP = 98  # answers a packet whose operation was unknown or unexpected
NACK = 99  # answers a packet whose checksum or packet number was wrong

OPERATIONS: dict[int, str] = {
    LOGIN: "login", LOGOUT: "logout", SUBMIT: "submit message",
    ENQUIRE_MESSAGE_STATUS: "enquire message status", DELIVERY_REQUEST: "delivery request",
    CANCEL: "cancel message", SET: "set", GET: "get",
    DELIVER_MESSAGE: "deliver message", DELIVER_STATUS_REPORT: "deliver status report",
    ALIVE: "alive",
    GENERAL_ERROR_RESP: "general error response", NACK: "nack",
}
OPERATIONS.update({op + RESPONSE: f"{name} response" for op, name in list(OPERATIONS.items())
                   if op < RESPONSE})


def operation_name(op: int) -> str:
    return OPERATIONS.get(op) or f"operation {op:02d}"


# --- parameters (§6) ---------------------------------------------------------------------


class Kind(enum.Enum):
    """Parameter types of §6."""

    INT = "integer"  # decimal digits (a leading '-' where the range allows it)
    STR = "string"  # printable ASCII, 32..126
    ADDR = "address"  # digits, optionally led by '+'
    UD = "user data"  # printable ASCII in the character conversion of §8.1 (or Latin-1)
    HEX = "hexadecimal"  # pairs of hexadecimal digits
    TIME = "time"  # yyMMddhhmmss


@dataclass(frozen=True, slots=True)
class Param:
    number: int
    name: str
    max_length: int  # characters of the value
    kind: Kind
    low: int = 0  # range, for INT
    high: int = 0

    @property
    def key(self) -> bytes:
        return b"%03d:" % self.number


N, S, A, U, X, T = Kind.INT, Kind.STR, Kind.ADDR, Kind.UD, Kind.HEX, Kind.TIME

# Number, name, maximum length, type, range: §6 of the specification.
PARAMETERS: dict[int, Param] = {p.number: p for p in (
    Param(10, "user identity", 32, S),
    Param(11, "password", 32, S),
    Param(12, "subaddress", 3, N, 0, 9),
    Param(19, "window size", 3, N, 1, 128),
    Param(21, "destination address", 20, A),
    Param(23, "originating address", 20, A),
    Param(26, "originating IMSI", 20, A),
    Param(27, "alphanumeric originating address", 11, S),
    Param(28, "originated visited MSC address", 20, A),
    Param(30, "data coding scheme", 3, N, 0, 255),
    Param(32, "user data header", 280, X),  # 140 octets
    Param(33, "user data", 480, U),  # 160 characters, each at most a 3-character combination
    Param(34, "user data binary", 280, X),  # 140 octets
    Param(44, "more messages to send", 1, N, 0, 1),
    # The spec calls Integer "decimal digits" yet lets -1 mean "default" here and in 053.
    Param(50, "validity period relative", 3, N, -1, 255),
    Param(51, "validity period absolute", 12, T),
    Param(52, "protocol identifier", 3, N, 0, 255),
    Param(53, "first delivery time relative", 3, N, -1, 255),
    Param(54, "first delivery time absolute", 12, T),
    Param(55, "reply path", 1, N, 0, 1),
    Param(56, "status report request", 2, N, 0, 63),
    Param(58, "cancel enabled", 1, N, 0, 1),
    Param(59, "cancel mode", 1, N, 0, 2),
    Param(60, "service centre time stamp", 12, T),
    Param(61, "status code", 2, N, 0, 9),
    Param(62, "status error code", 3, N, 0, 999),
    Param(63, "discharge time", 12, T),
    Param(64, "tariff class", 2, N, 0, 99),
    Param(65, "service description", 2, N, 0, 9),
    Param(66, "message count", 3, N, 0, 999),
    Param(67, "priority", 1, N, 1, 9),
    Param(68, "delivery request mode", 1, N, 0, 2),
    Param(69, "service center address", 20, A),
    Param(500, "get parameter", 3, N, 501, 999),
    Param(501, "MC time", 12, T),
    Param(900, "error code", 3, N, 0, 999),
    Param(901, "error text", 64, S),
)}
del N, S, A, U, X, T

USER_IDENTITY = 10
PASSWORD = 11
WINDOW_SIZE = 19
DESTINATION_ADDRESS = 21
ORIGINATING_ADDRESS = 23
ALPHANUMERIC_ORIGINATING_ADDRESS = 27
DATA_CODING_SCHEME = 30
USER_DATA_HEADER = 32
USER_DATA = 33
USER_DATA_BINARY = 34
VALIDITY_PERIOD_RELATIVE = 50
PROTOCOL_IDENTIFIER = 52
STATUS_REPORT_REQUEST = 56
SERVICE_CENTRE_TIME_STAMP = 60
STATUS_CODE = 61
STATUS_ERROR_CODE = 62
DISCHARGE_TIME = 63
PRIORITY = 67
ERROR_CODE = 900
ERROR_TEXT = 901

# The longest packet an SMS Center sends us: every parameter of the table at its longest
# ("PPP:" + value + TAB), the header "OO:NNN" + TAB, a checksum, STX and ETX. Nothing
# longer is a CIMD2 packet, so a peer that sends more without ETX is cut off (STYLE §7).
MAX_PACKET = sum(4 + p.max_length + 1 for p in PARAMETERS.values()) + 7 + 2 + 2

# status report request (056) is a sum of these (§6); we ask for every final outcome.
REPORT_TEMPORARY_ERROR = 1
REPORT_VALIDITY_EXPIRED = 2
REPORT_DELIVERY_FAILED = 4
REPORT_DELIVERY_SUCCESSFUL = 8
REPORT_CANCELLED = 16
REPORT_DELETED = 32
REPORT_FINAL = (REPORT_VALIDITY_EXPIRED | REPORT_DELIVERY_FAILED | REPORT_DELIVERY_SUCCESSFUL
                | REPORT_CANCELLED | REPORT_DELETED)  # 62


def param_name(number: int) -> str:
    p = PARAMETERS.get(number)
    return p.name if p else f"parameter {number:03d}"


_PRINTABLE = bytes(range(32, 127))
_DIGITS = b"0123456789"
_HEXDIGITS = b"0123456789abcdefABCDEF"


def param_problem(number: int, value: bytes) -> tuple[int, str] | None:
    """Why `value` is not a valid parameter `number` by the table, as (error code, reason),
    or None. Error codes are the spec's: 3 unsupported parameter, 8 parameter formatting."""
    p = PARAMETERS.get(number)
    if p is None:
        return ERR_UNSUPPORTED_PARAMETER, f"unknown parameter {number:03d}"
    if len(value) > p.max_length:
        return (ERR_PARAMETER_FORMATTING,
                f"{p.name} ({number:03d}) is {len(value)} characters, at most {p.max_length}")
    kind = p.kind
    if kind is Kind.INT:
        digits = value[1:] if value[:1] == b"-" and p.low < 0 else value
        if not digits or digits.translate(None, _DIGITS):
            return ERR_PARAMETER_FORMATTING, f"{p.name} ({number:03d}) {value!r} is not a number"
        n = int(value)
        if not p.low <= n <= p.high:
            return (ERR_PARAMETER_FORMATTING,
                    f"{p.name} ({number:03d}) {n} is outside {p.low}..{p.high}")
    elif kind is Kind.ADDR:
        digits = value[1:] if value[:1] == b"+" else value
        if not digits or digits.translate(None, _DIGITS):
            return ERR_PARAMETER_FORMATTING, f"{p.name} ({number:03d}) {value!r} is not digits"
    elif kind is Kind.TIME:
        if len(value) != 12 or value.translate(None, _DIGITS):
            return (ERR_PARAMETER_FORMATTING,
                    f"{p.name} ({number:03d}) {value!r} is not yyMMddhhmmss")
    elif kind is Kind.HEX:
        if len(value) % 2 or value.translate(None, _HEXDIGITS):
            return ERR_PARAMETER_FORMATTING, f"{p.name} ({number:03d}) is not hexadecimal"
    elif kind is Kind.STR:
        if value.translate(None, _PRINTABLE):
            return (ERR_PARAMETER_FORMATTING,
                    f"{p.name} ({number:03d}) has characters outside printable ASCII")
    elif b"\t" in value or b"\x02" in value or b"\x03" in value:  # Kind.UD: any octet but these
        return ERR_PARAMETER_FORMATTING, f"{p.name} ({number:03d}) holds a framing character"
    return None


def param(number: int, value: str | int | bytes) -> bytes:
    """One parameter, "PPP:value" + TAB, checked against the table; ValueError if invalid."""
    raw = (value if isinstance(value, bytes)
           else b"%d" % value if isinstance(value, int) else value.encode("latin-1"))
    problem = param_problem(number, raw)
    if problem is not None:
        raise ValueError(problem[1])
    return b"%03d:%s\t" % (number, raw)


def checksum(data: bytes) -> bytes:
    """§4: the sum of the bytes from STX through the last TAB, modulo 256, as two
    upper-case hexadecimal digits."""
    return b"%02X" % (sum(data) & 0xFF)


def packet(op: int, number: int, body: bytes = b"", with_checksum: bool = True) -> bytes:
    """A whole packet: STX, header, the parameters in `body` (from `param`), checksum, ETX."""
    if not (0 <= op <= 99 and 0 <= number <= 999):
        raise ValueError(f"operation {op} / packet number {number} out of range")
    data = b"\x02%02d:%03d\t%s" % (op, number, body)
    if with_checksum:
        return data + b"%02X\x03" % (sum(data) & 0xFF)
    return data + b"\x03"


# --- decoding ----------------------------------------------------------------------------


class FrameError(ValueError):
    """A packet that cannot be read. `code` is the error code to answer with (§7.3) and
    `nack` says the answer is a NACK (wrong checksum) rather than an error response."""

    def __init__(self, reason: str, code: int = 2, nack: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.nack = nack


class Packet(NamedTuple):
    """A decoded packet. Parameter values stay bytes until someone asks for them."""

    op: int
    number: int
    params: dict[int, bytes]
    checksum: bool  # whether it carried one (it was verified if so)

    def int(self, number: int, default: int | None = None) -> int | None:
        raw = self.params.get(number)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            return default

    def text(self, number: int, default: str = "") -> str:
        raw = self.params.get(number)
        return default if raw is None else raw.decode("latin-1")

    @property
    def error(self) -> int | None:
        """The error code (900) of a negative response, or None."""
        return self.int(ERROR_CODE)

    @property
    def name(self) -> str:
        return operation_name(self.op)


_new_packet = tuple.__new__  # skips NamedTuple's keyword-handling __new__


# Headers and parameter keys seen, decoded once: a link meets few operations and at most
# 256 packet numbers, so these stay small (and are bounded anyway).
_HEADS: dict[bytes, tuple[int, int]] = {}
_KEYS: dict[bytes, int] = {b"%03d" % n: n for n in PARAMETERS}


def _head(head: bytes) -> tuple[int, int]:
    if len(head) < 7 or head[2] != COLON or head[6] != TAB:
        raise FrameError(f"header {head!r} is not OO:NNN + TAB")
    if not (head[:2].isdigit() and head[3:6].isdigit()):
        raise FrameError(f"header {head[:6]!r} is not OO:NNN")
    parsed = int(head[:2]), int(head[3:6])
    if len(_HEADS) < 4096:
        _HEADS[head] = parsed
    return parsed


def parse(frame: bytes) -> Packet:
    """The packet between STX and ETX (both excluded); raises FrameError.

    The checksum, when present, is verified (FrameError with `nack`). Parameters are
    split, not validated: `problems(packet)` checks them against the table, so a peer's
    odd value can be logged without losing the packet that carried it.
    """
    head = frame[:7]
    op, number = _HEADS.get(head) or _head(head)
    last = frame.rfind(b"\t")  # >= 6
    has_checksum = last != len(frame) - 1
    if has_checksum:
        tail = frame[last + 1:]
        if len(tail) != 2 or tail.translate(None, _HEXDIGITS):
            raise FrameError(f"{tail[:8]!r} after the last TAB is not a checksum")
        computed = (sum(frame, STX) - tail[0] - tail[1]) & 0xFF
        if computed != int(tail, 16):
            raise FrameError(f"checksum {tail.decode()} is wrong (computed {computed:02X})",
                             nack=True)
    params: dict[int, bytes] = {}
    if last > 6:
        keys = _KEYS
        for field in frame[7:last].split(b"\t"):
            key = keys.get(field[:3])
            if key is None:
                if not field[:3].isdigit() or len(field) < 4:
                    raise FrameError(f"{field[:16]!r} is not PPP:value")
                key = int(field[:3])
            if field[3:4] != b":":
                raise FrameError(f"{field[:16]!r} is not PPP:value")
            params[key] = field[4:]
    return _new_packet(Packet, (op, number, params, has_checksum))


def problems(pkt: Packet) -> list[tuple[int, str]]:
    """Every parameter of `pkt` that the table does not accept, as (error code, reason)."""
    found = []
    for number, value in pkt.params.items():
        problem = param_problem(number, value)
        if problem is not None:
            found.append(problem)
    return found


def describe(pkt: Packet) -> str:
    """One log line for a packet, parameters by name; passwords are never shown (STYLE §7)."""
    shown = []
    for number, value in pkt.params.items():
        text = "***" if number == PASSWORD else value.decode("latin-1")
        shown.append(f"{param_name(number)}={text!r}")
    return f"{pkt.name} {pkt.number:03d}" + (f" ({', '.join(shown)})" if shown else "")


# --- error codes (900) and what each means for a part (§7.3) --------------------------------
#
# One table: code -> (text, kind). As for SMPP (STYLE §3): THROTTLED when the SMS Center
# asks us to slow down; TEMPORARY when the fault is the SMS Center's or the session's and
# the same packet may succeed later or elsewhere; PERMANENT when the packet itself is
# wrong, so sending it again, anywhere, gets the same answer.

TMP, THR, PRM = FailureKind.TEMPORARY, FailureKind.THROTTLED, FailureKind.PERMANENT

ERR_UNEXPECTED_OPERATION = 1
ERR_SYNTAX = 2
ERR_UNSUPPORTED_PARAMETER = 3
ERR_PARAMETER_FORMATTING = 8
ERR_CONGESTION = 10
ERR_INVALID_LOGIN = 100
ERR_INVALID_WINDOW_SIZE = 104
ERR_WINDOWING_DISABLED = 105
ERR_INCORRECT_DESTINATION = 300
ERR_USER_DATA_SYNTAX = 302
ERR_USER_DATA_COMBINATION = 303
ERR_DCS = 304
ERR_VALIDITY = 305
ERR_ORIGINATOR = 306
ERR_STATUS_REPORT_REQUEST = 310
ERR_PRIORITY = 312
ERR_ALPHA_ORIGINATOR = 321

ERRORS: dict[int, tuple[str, FailureKind]] = {
    # §7.3 general errors
    # "Unexpected operation": submit before login, or a session out of step; the part
    # is fine and goes through after a reconnect.
    1: ("unexpected operation", TMP),
    2: ("syntax error", PRM),  # our packet is malformed: same bytes, same answer
    3: ("unsupported parameter error", PRM),
    4: ("connection to SMS Center lost", TMP),  # the SMSC's internal link: theirs
    5: ("no response from SMS Center", TMP),
    6: ("general system error", TMP),  # theirs, transient by definition
    7: ("cannot find information", PRM),
    8: ("parameter formatting error", PRM),
    # "Requested operation failed" says nothing about why; like SMPP's ESME_RSUBMITFAIL
    # it is retried, bounded by retry.max_attempts, rather than lose a message.
    9: ("requested operation failed", TMP),
    10: ("temporary congestion error", THR),  # the SMSC asks us to slow down
    # §7.3 login errors: the link treats every one as "login refused" and reconnects
    # with backoff; the kind matters only if one ever answers a submit.
    100: ("invalid login", PRM),
    101: ("incorrect access type", PRM),
    102: ("too many users with this login ID", TMP),
    103: ("login refused by SMS Center", PRM),
    104: ("invalid window size", PRM),
    105: ("windowing disabled", PRM),
    106: ("virtual SMS Center-based barring", PRM),
    107: ("invalid subaddr", PRM),
    108: ("alias account, login refused", PRM),
    # §7.3 submit message errors: all about the packet's own content
    300: ("incorrect destination address", PRM),
    301: ("incorrect number of destination addresses", PRM),
    302: ("syntax error in user data parameter", PRM),
    303: ("incorrect bin/head/normal user data parameter combination", PRM),
    304: ("incorrect dcs parameter usage", PRM),
    305: ("incorrect validity period parameters usage", PRM),
    306: ("incorrect originator address usage", PRM),
    307: ("incorrect PID parameter usage", PRM),
    308: ("incorrect first delivery parameter usage", PRM),
    309: ("incorrect reply path usage", PRM),
    310: ("incorrect status report request parameter usage", PRM),
    311: ("incorrect cancel enabled parameter usage", PRM),
    312: ("incorrect priority parameter usage", PRM),
    313: ("incorrect tariff class parameter usage", PRM),
    314: ("incorrect service description parameter usage", PRM),
    315: ("incorrect transport type parameter usage", PRM),
    316: ("incorrect message type parameter usage", PRM),
    318: ("incorrect MMs parameter usage", PRM),
    319: ("incorrect operation timer parameter usage", PRM),
    320: ("incorrect dialogue ID parameter usage", PRM),
    321: ("incorrect alpha originator address usage", PRM),
    322: ("invalid data for alpha numeric originator", PRM),
    # §7.3 enquire, delivery request, cancel and set errors (operations we do
    # not send; named for the log)
    400: ("incorrect address parameter usage", PRM),
    401: ("incorrect scts parameter usage", PRM),
    500: ("incorrect scts parameter usage", PRM),
    501: ("incorrect mode parameter usage", PRM),
    502: ("incorrect parameter combination", PRM),
    600: ("incorrect scts parameter usage", PRM),
    601: ("incorrect address parameter usage", PRM),
    602: ("incorrect mode parameter usage", PRM),
    603: ("incorrect parameter combination", PRM),
    800: ("changing password failed", PRM),
    801: ("changing password not allowed", PRM),
}
# Codes not in the table (operator extensions): TEMPORARY, for the reason SMPP's unknown
# statuses are: "nothing lost" weighs more than a few retries, which retry.max_attempts bounds.
UNKNOWN_ERROR_KIND = TMP
LOGIN_CREDENTIAL_ERRORS = frozenset({100, 101, 103, 108})
del TMP, THR, PRM


def error_kind(code: int) -> FailureKind:
    entry = ERRORS.get(code)
    return entry[1] if entry else UNKNOWN_ERROR_KIND


def error_text(code: int, text: str = "") -> str:
    """'error 300 incorrect destination address', with the SMSC's own text (901) if any."""
    entry = ERRORS.get(code)
    name = entry[0] if entry else "unknown error"
    return f"error {code} {name}" + (f" ({text})" if text and text != name else "")


# --- delivery status reports (061, 062; §7) -----------------------------------------------

# status code -> (text, message status); None: not final (the SMSC is still trying).
STATUS_CODES: dict[int, tuple[str, Status | None]] = {
    0: ("no status", None),
    1: ("in process", None),
    2: ("validity period expired", Status.EXPIRED),
    3: ("delivery failed", Status.UNDELIVERED),
    4: ("delivery successful", Status.DELIVERED),
    5: ("no response", None),  # the phone did not answer; the SMSC retries
    6: ("last no response", Status.UNDELIVERED),  # ... and has given up
    7: ("message cancelled", Status.UNDELIVERED),
    8: ("message deleted", Status.UNDELIVERED),
    9: ("message deleted by cancel", Status.UNDELIVERED),
}
# status error code (062): why delivery failed, as the SMSC's network reported it.
STATUS_ERRORS: dict[int, str] = {
    1: "unknown subscriber", 9: "illegal subscriber", 11: "teleservice not provisioned",
    13: "call barred", 15: "CUG reject", 19: "no SMS support in MS", 20: "error in MS",
    21: "facility not supported", 22: "memory capacity exceeded", 29: "absent subscriber",
    30: "MS busy for MT SMS", 36: "network/protocol failure", 44: "illegal equipment",
    60: "no paging response", 61: "GMSC congestion", 63: "HLR timeout",
    64: "MSC/SGSN timeout", 70: "SMRSE/TCP error", 72: "MT congestion", 75: "GPRS suspended",
    80: "no paging response via MSC", 81: "IMSI detached", 82: "roaming restriction",
    83: "deregistered in HLR for GSM", 84: "purged for GSM",
    85: "no paging response via SGSN", 86: "GPRS detached",
    87: "deregistered in HLR for GPRS", 88: "MS purged for GPRS",
    89: "unidentified subscriber via MSC", 90: "unidentified subscriber via SGSN",
    112: "originator missing credit on prepaid account",
    113: "destination missing credit on prepaid account", 114: "error in prepaid system",
}


# --- the character conversion of user data (§8.1) -------------------------------------------
#
# GSM 03.38 septet -> CIMD2 special combination, for every character of the default
# alphabet that printable ASCII lacks (or, for @ " _, writes differently). Every other
# septet is sent as the ASCII character it is: letters, digits, most punctuation, CR, LF,
# and $ (septet 0x02). The escape 0x1B is `_XX`, so an extension character is `_XX`
# followed by the representation of its second septet.
SPECIAL_COMBINATIONS: dict[int, bytes] = {
    0x00: b"_Oa",  # @ commercial at
    0x01: b"_L-",  # £ pound sign
    0x03: b"_Y-",  # ¥ yen sign
    0x04: b"_e`",  # è
    0x05: b"_e'",  # é
    0x06: b"_u`",  # ù
    0x07: b"_i`",  # ì
    0x08: b"_o`",  # ò
    0x09: b"_C,",  # Ç
    0x0B: b"_O/",  # Ø
    0x0C: b"_o/",  # ø
    0x0E: b"_A*",  # Å
    0x0F: b"_a*",  # å
    0x10: b"_gd",  # Δ greek delta
    0x11: b"_--",  # _ underscore
    0x12: b"_gf",  # Φ greek phi
    0x13: b"_gg",  # Γ greek gamma
    0x14: b"_gl",  # Λ greek lambda
    0x15: b"_go",  # Ω greek omega
    0x16: b"_gp",  # Π greek pi
    0x17: b"_gi",  # Ψ greek psi
    0x18: b"_gs",  # Σ greek sigma
    0x19: b"_gt",  # Θ greek theta
    0x1A: b"_gx",  # Ξ greek xi
    0x1B: b"_XX",  # escape to the extension table ("reserved")
    0x1C: b"_AE",  # Æ
    0x1D: b"_ae",  # æ
    0x1E: b"_ss",  # ß
    0x1F: b"_E'",  # É
    0x22: b"_qq",  # " quotation mark
    0x24: b"_ox",  # ¤ currency sign
    0x40: b"_!!",  # ¡ inverted exclamation mark
    0x5B: b'_A"',  # Ä
    0x5C: b'_O"',  # Ö
    0x5D: b"_N~",  # Ñ
    0x5E: b'_U"',  # Ü
    0x5F: b"_so",  # § section sign
    0x60: b"_??",  # ¿ inverted question mark
    0x7B: b'_a"',  # ä
    0x7C: b'_o"',  # ö
    0x7D: b"_n~",  # ñ
    0x7E: b'_u"',  # ü
    0x7F: b"_a`",  # à
}
_ESC = 0x1B
_SEPTET_CHAR = gsm.decode(bytes(range(0x1B))) + "\x1b" + gsm.decode(bytes(range(0x1C, 0x80)))
# The extension table: second septet -> character (TS 23.038 §6.1.1).
_EXTENSION = {s: gsm.decode(bytes((_ESC, s))) for s in range(0x80)
              if gsm.decode(bytes((_ESC, s))) != _SEPTET_CHAR[s]}


def _build_tables() -> tuple[tuple[bytes, ...], bytes, bytes]:
    reprs = []
    for s, char in enumerate(_SEPTET_CHAR):
        combo = SPECIAL_COMBINATIONS.get(s)
        if combo is None:
            if not (" " <= char <= "~" or char in "\r\n"):
                raise AssertionError(f"septet 0x{s:02X} {char!r} needs a special combination")
            combo = char.encode("ascii")
        reprs.append(combo)
    literal = bytes(s for s in range(0x80) if len(reprs[s]) == 1)
    table = bytearray(range(256))
    for s in literal:
        table[s] = reprs[s][0]
    return tuple(reprs), literal, bytes(table)


_SEPTET_REPR, _LITERAL_SEPTETS, _LITERAL_TABLE = _build_tables()
_COMBINATION_SEPTET = {combo: s for s, combo in SPECIAL_COMBINATIONS.items()}
_CHAR_SEPTET = {c: s for s, c in enumerate(_SEPTET_CHAR) if s != _ESC}
# Septet (as the code point of a Latin-1 character) -> its CIMD2 bytes, for the C-speed
# charmap codec: measured 2-3x faster than joining per-septet bytes in Python.
_CHARMAP = dict(enumerate(_SEPTET_REPR))
_charmap_encode = codecs.charmap_encode


def septets_to_user_data(septets: bytes) -> bytes:
    """GSM 03.38 septets (unpacked, escapes included, as a GSM7 `Part` carries them) ->
    the value of user data (033). ValueError for an octet that is no septet."""
    if not septets.translate(None, _LITERAL_SEPTETS):
        return septets.translate(_LITERAL_TABLE)  # letters, digits, most punctuation
    try:
        return _charmap_encode(septets.decode("latin-1"), "strict", _CHARMAP)[0]
    except UnicodeEncodeError:
        raise ValueError("user data holds octets above 0x7F, which are no GSM septets") from None


def text_to_user_data(text: str) -> bytes:
    """Text -> user data (033); ValueError for a character the GSM alphabet lacks."""
    return septets_to_user_data(gsm.encode(text))


def user_data_to_text(data: bytes) -> str:
    """User data (033) as an SMS Center sends it -> text, leniently: a received message
    must not be lost to an odd byte.

    Special combinations are read as §8.1 defines them; any other byte is the Latin-1
    character it is (the spec's "8-bit wide link" form, and plain ASCII on a 7-bit link).
    After `_XX` the next character is looked up in the extension table; one that has no
    extension shows as itself, and a lone `_XX` at the end as a space (TS 23.038 §6.1.1).
    An underscore that starts no known combination is kept as an underscore.
    """
    if b"_" not in data:
        return data.decode("latin-1")
    out: list[str] = []
    n = len(data)
    i = 0
    esc = False
    while i < n:
        j = data.find(b"_", i)
        if j < 0:
            j = n
        if j > i:
            chunk = data[i:j].decode("latin-1")
            if esc:
                esc = False
                s = _CHAR_SEPTET.get(chunk[0])
                out.append(_EXTENSION.get(s, chunk[0]) if s is not None else chunk[0])
                chunk = chunk[1:]
            out.append(chunk)
            i = j
            continue
        s = _COMBINATION_SEPTET.get(data[i:i + 3])
        if s is None:
            out.append(" " if esc else "_")
            esc = False
            i += 1
            continue
        i += 3
        if s == _ESC:
            if esc:
                out.append(" ")  # escape, escape: SS2, shown as a space
            esc = not esc
            continue
        if esc:
            esc = False
            out.append(_EXTENSION.get(s, _SEPTET_CHAR[s]))
        else:
            out.append(_SEPTET_CHAR[s])
    if esc:
        out.append(" ")
    return "".join(out)


# --- data coding scheme (030) of received messages (TS 23.038 §4) ---------------------------


def dcs_coding(dcs: int) -> Coding | None:
    """The alphabet a data coding scheme announces, or None for 8-bit data or compressed
    text. CIMD2 carries the TS 23.038 octet as it is (unlike SMPP's data_coding 0-15)."""
    group = dcs >> 4
    if group < 0x8:  # 00xx general data coding, 01xx with automatic deletion
        if dcs & 0x20:  # compressed
            return None
        return (Coding.GSM7, None, Coding.UCS2, None)[(dcs >> 2) & 3]
    if group in (0xC, 0xD):  # message waiting, GSM 7-bit
        return Coding.GSM7
    if group == 0xE:  # message waiting, UCS-2
        return Coding.UCS2
    if group == 0xF:  # data coding / message class
        return None if dcs & 0x04 else Coding.GSM7
    return None  # reserved groups


def outbound_dcs(coding: Coding, flash: bool) -> int | None:
    """The data coding scheme (030) for a part, or None when the default (GSM 7-bit, no
    message class) needs no parameter. Flash is message class 0 (TS 23.038 §4)."""
    if coding == Coding.UCS2:
        return 0x18 if flash else 0x08
    if coding == Coding.GSM7:
        return 0x10 if flash else None
    raise ValueError(f"a part in {coding.name} cannot be sent over CIMD2")


# --- validity period relative (050; TS 23.040 §9.2.3.12.1) -----------------------------------


def relative_validity(seconds: float) -> int:
    """The largest TP-VP relative value whose period does not exceed `seconds`, so the
    message expires no later than asked; 0 (five minutes) for anything shorter."""
    minutes = seconds / 60
    if minutes >= 5 * 7 * 24 * 60:  # 197..255: (VP - 192) weeks
        return min(255, 192 + int(minutes // (7 * 24 * 60)))
    if minutes >= 2 * 24 * 60:  # 168..196: (VP - 166) days, from 2 days
        return min(196, 166 + int(minutes // (24 * 60)))
    if minutes >= 12 * 60 + 30:  # 144..167: 12 hours + (VP - 143) x 30 minutes
        return min(167, 143 + int((minutes - 12 * 60) // 30))
    return max(0, min(143, int(minutes // 5) - 1))  # 0..143: (VP + 1) x 5 minutes


def relative_validity_seconds(vp: int) -> int:
    """The period a TP-VP relative value stands for, in seconds."""
    if vp <= 143:
        return (vp + 1) * 5 * 60
    if vp <= 167:
        return 12 * 3600 + (vp - 143) * 30 * 60
    if vp <= 196:
        return (vp - 166) * 86400
    return (vp - 192) * 7 * 86400
