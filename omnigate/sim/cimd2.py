"""A CIMD2 SMS Center simulator: an independent peer for users, tests and benchmarks.

Like the SMPP simulator (`omnigate.sim.smpp`) it ships with the product: it takes
logins, answers submit messages, records what it received, sends deliver status reports
(23) and MO deliver messages (20), and injects faults on demand.

It is deliberately *not* built on omnigate's CIMD2 codec (`omnigate.carriers.cimd2`):
it frames, checks and converts packets with its own code and its own tables (the
character conversion here is keyed by character, the codec's by GSM septet), written
from the Nokia CIMD 2.0 interface specification, and both are tested against frames
computed by hand. Only the GSM 03.38 table and MO splitting are shared, with the SMPP
simulator, which has its own GSM table; faults, recording, DLR queues and the command
line come from `omnigate.sim.base`, as for every simulator.

The simulator is strict where a real SMS Center may be lenient, so that it catches our
mistakes instead of mirroring them. Each of these is logged as a *violation* (and kept
in `violations`) and answered as the specification has an SMS Center answer:

- a wrong checksum, or a packet number that is even, repeated or not the next odd one
  (001..255, wrapping): NACK (99);
- an unknown operation: general error response (98), error 1;
- an unknown parameter, or one the operation does not take: error 3; a value over its
  maximum length or not of its type: error 8; a malformed header or parameter: error 2;
- submit before login: error 1; user data (033) that is not the character conversion of
  §8.1 or too long: 302; 033 with 034, or 032 alone: 303; a data coding scheme that
  does not fit the user data: 304; bad validity: 305, originator: 306, status report
  request: 310, priority: 312, alphanumeric originator: 321; no destination: 300;
- more submits awaiting their response than the window granted at login (019, else 1);
- a deliver (status report) response that answers nothing we sent.

Faults (plain attributes, changeable at run time) as in the SMPP simulator:

- `throttle_every=N`: every Nth valid submit is answered error 10 (temporary congestion).
- `fail_every=N`: every Nth valid submit is answered error 300 (permanent).
- `drop_after=N`: per connection, after its Nth submit the connection is closed.
- `response_delay=S`: submit responses are sent S seconds late.
- `no_response=True`: submits are recorded but never answered.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
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
from omnigate.sim.smpp import GSM_BASIC, split_mo, udh_concat

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger("omnigate.sim.cimd2")

__all__ = ["Cimd2Simulator", "RecordedSubmit", "SimulatorError", "add_arguments", "run"]

# --------------------------------------------------------------------------
# Wire constants (CIMD2 specification §4, §5, §7.3)
# --------------------------------------------------------------------------

STX = b"\x02"
ETX = b"\x03"
TAB = b"\t"
# The longest packet the simulator reads before giving up on finding its ETX: a submit
# with every parameter at its longest is under 1,300 characters.
MAX_FRAME = 2048

OP_LOGIN, OP_LOGOUT, OP_SUBMIT, OP_ALIVE = 1, 2, 3, 40
OP_DELIVER, OP_REPORT = 20, 23
OP_DELIVER_RESP, OP_REPORT_RESP = 70, 73
OP_GENERAL_ERROR, OP_NACK = 98, 99
KNOWN_REQUESTS = {1, 2, 3, 4, 5, 6, 8, 9, 40}  # §5; the simulator serves 1, 2, 3 and 40

# Error codes answered (parameter 900), §7.3.
UNEXPECTED_OPERATION = 1
SYNTAX_ERROR = 2
UNSUPPORTED_PARAMETER = 3
FORMATTING_ERROR = 8
CONGESTION = 10
INVALID_LOGIN = 100
INVALID_WINDOW = 104
BAD_DESTINATION = 300
TOO_MANY_DESTINATIONS = 301
BAD_USER_DATA = 302
BAD_COMBINATION = 303
BAD_DCS = 304
BAD_VALIDITY = 305
BAD_ORIGINATOR = 306
BAD_REPORT_REQUEST = 310
BAD_PRIORITY = 312
BAD_ALPHA_ORIGINATOR = 321

# Parameters this SMS Center understands: code -> (maximum length, type). Types: "int",
# "addr" (digits, leading + allowed), "str" (printable ASCII), "hex", "ud" (user data),
# "time" (yyMMddhhmmss). §6.
PARAMS: dict[str, tuple[int, str]] = {
    "010": (32, "str"), "011": (32, "str"), "012": (3, "int"), "019": (3, "int"),
    "021": (20, "addr"), "023": (20, "addr"), "027": (11, "str"), "030": (3, "int"),
    "032": (280, "hex"), "033": (480, "ud"), "034": (280, "hex"), "044": (1, "int"),
    "050": (3, "int"), "051": (12, "time"), "052": (3, "int"), "053": (3, "int"),
    "054": (12, "time"), "055": (1, "int"), "056": (2, "int"), "058": (1, "int"),
    "060": (12, "time"), "064": (2, "int"), "065": (2, "int"), "067": (1, "int"),
    "900": (3, "int"), "901": (64, "str"),
}
# What each operation from the application may carry (§5).
ALLOWED: dict[int, frozenset[str]] = {
    OP_LOGIN: frozenset({"010", "011", "012", "019"}),
    OP_LOGOUT: frozenset(),
    OP_ALIVE: frozenset(),
    OP_SUBMIT: frozenset({"021", "023", "027", "030", "032", "033", "034", "044", "050", "051",
                          "052", "053", "054", "055", "056", "058", "064", "065", "067"}),
    OP_DELIVER_RESP: frozenset({"900", "901"}),
    OP_REPORT_RESP: frozenset({"900", "901"}),
}

# Delivery outcomes the simulator reports: name -> (status code 061, status report request
# bit of 056 that asks for it, status error code 062 or None). §6, §7.
DLR_STATUSES: dict[str, tuple[int, int, int | None]] = {
    "delivered": (4, 8, None),
    "failed": (3, 4, 1),  # delivery failed, unknown subscriber
    "expired": (2, 2, None),  # validity period expired
    "deleted": (8, 32, None),
}

# --------------------------------------------------------------------------
# The character conversion of user data (§8.1), keyed by character
# --------------------------------------------------------------------------

# Characters of the GSM default alphabet that are sent as special combinations.
COMBINATIONS: dict[str, str] = {
    "@": "_Oa", "£": "_L-", "¥": "_Y-", "è": "_e`", "é": "_e'", "ù": "_u`", "ì": "_i`",
    "ò": "_o`", "Ç": "_C,", "Ø": "_O/", "ø": "_o/", "Å": "_A*", "å": "_a*", "Δ": "_gd",
    "_": "_--", "Φ": "_gf", "Γ": "_gg", "Λ": "_gl", "Ω": "_go", "Π": "_gp", "Ψ": "_gi",
    "Σ": "_gs", "Θ": "_gt", "Ξ": "_gx", "Æ": "_AE", "æ": "_ae", "ß": "_ss", "É": "_E'",
    '"': "_qq", "¤": "_ox", "¡": "_!!", "Ä": '_A"', "Ö": '_O"', "Ñ": "_N~", "Ü": '_U"',
    "§": "_so", "¿": "_??", "ä": '_a"', "ö": '_o"', "ñ": "_n~", "ü": '_u"', "à": "_a`",
}
ESCAPE = "_XX"  # "reserved": the escape to the GSM extension table
# Extension characters: _XX, then the basic character whose code they share.
EXTENSIONS: dict[str, str] = {
    "\f": "\n", "^": "Λ", "{": "(", "}": ")", "\\": "/", "[": "<", "~": "=", "]": ">",
    "|": "¡", "€": "e",
}
_FROM_COMBINATION = {combo: char for char, combo in COMBINATIONS.items()}
_FROM_EXTENSION = {base: ext for ext, base in EXTENSIONS.items()}
_GSM_CHARS = frozenset(GSM_BASIC.replace("\x1b", ""))


class UserDataError(ValueError):
    pass


def ud_to_text(value: str) -> tuple[str, int]:
    """User data (033) -> (text, septets), strictly: every underscore must start a special
    combination, every other character must be a GSM character (7-bit or 8-bit link)."""
    out = []
    septets = 0
    i, n = 0, len(value)
    while i < n:
        if value.startswith(ESCAPE, i):
            i += 3
            if i >= n:
                raise UserDataError("_XX at the end of user data escapes nothing")
            if value[i] == "_":
                base = _FROM_COMBINATION.get(value[i:i + 3])
                i += 3
            else:
                base = value[i]
                i += 1
            ext = _FROM_EXTENSION.get(base or "")
            if ext is None:
                raise UserDataError(f"_XX before {base!r}, which has no extension character")
            out.append(ext)
            septets += 2
            continue
        c = value[i]
        if c == "_":
            char = _FROM_COMBINATION.get(value[i:i + 3])
            if char is None:
                raise UserDataError(f"{value[i:i + 3]!r} is no special combination")
            out.append(char)
            i += 3
        else:
            if c not in _GSM_CHARS:
                raise UserDataError(f"{c!r} is not a character of the GSM alphabet")
            out.append(c)
            i += 1
        septets += 1
    return "".join(out), septets


def text_to_ud(text: str) -> str:
    """Text -> user data (033) in the 7-bit form; ValueError for a non-GSM character."""
    out = []
    for c in text:
        if c in COMBINATIONS:
            out.append(COMBINATIONS[c])
        elif c in EXTENSIONS:
            base = EXTENSIONS[c]
            out.append(ESCAPE + COMBINATIONS.get(base, base))
        elif c in _GSM_CHARS and (" " <= c <= "~" or c in "\r\n"):
            out.append(c)
        else:
            raise ValueError(f"{c!r} cannot be sent as CIMD2 user data")
    return "".join(out)


def dcs_alphabet(dcs: int) -> str:
    """'gsm', '8bit', 'ucs2', 'compressed' or 'reserved' for a TS 23.038 §4 data coding
    scheme."""
    if dcs < 0x80:  # general data coding groups 00xx and 01xx
        if dcs & 0x20:
            return "compressed"
        return ("gsm", "8bit", "ucs2", "reserved")[(dcs & 0x0C) >> 2]
    if 0xC0 <= dcs <= 0xDF:
        return "gsm"
    if 0xE0 <= dcs <= 0xEF:
        return "ucs2"
    if dcs >= 0xF0:
        return "8bit" if dcs & 0x04 else "gsm"
    return "reserved"


def checksum(data: bytes) -> bytes:
    """Sum of the bytes from STX through the last TAB, modulo 256, two hex digits (§4)."""
    total = 0
    for b in data:
        total += b
    return b"%02X" % (total % 256)


def make_packet(op: int, number: int, params: list[tuple[str, str]] | None = None) -> bytes:
    data = STX + f"{op:02d}:{number:03d}\t".encode() + b"".join(
        f"{code}:{value}\t".encode("latin-1") for code, value in params or ())
    return data + checksum(data) + ETX


def _relative_validity_ok(value: int) -> bool:
    return 0 <= value <= 255


def _timestamp(t: float) -> str:
    return time.strftime("%y%m%d%H%M%S", time.gmtime(t))


# --------------------------------------------------------------------------
# What was received
# --------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class RecordedSubmit:
    """One accepted submit message. `destination` and `source` are as sent (a leading
    + kept); `user_data` holds the decoded text (033) or the octets (034), UDH apart."""

    message_id: str  # "destination:timestamp", what a status report names
    timestamp: str  # service centre time stamp (060) given in the response
    user: str
    destination: str
    source: str
    alphanumeric: bool
    data_coding: int
    udh: bytes | None
    text_data: str | None  # 033, converted
    binary: bytes | None  # 034
    status_report_request: int
    validity_relative: int | None
    priority: int | None
    received_at: float

    @property
    def coding(self) -> str:
        return "gsm" if self.binary is None else dcs_alphabet(self.data_coding)

    @property
    def text(self) -> str:
        if self.text_data is not None:
            return self.text_data
        if self.coding == "ucs2":
            return (self.binary or b"").decode("utf-16-be", "replace")
        return (self.binary or b"").hex()

    @property
    def concat(self) -> tuple[int, int, int] | None:
        return udh_concat(self.udh) if self.udh else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id, "user": self.user, "from": self.source,
            "to": self.destination, "text": self.text, "coding": self.data_coding,
            "udh": self.udh.hex() if self.udh else None, "concat": self.concat,
            "status_report_request": self.status_report_request,
            "validity_period_relative": self.validity_relative, "priority": self.priority,
            "at": self.received_at,
        }


class _Refused(Exception):
    """A request answered with an error code; a violation unless `fault` (our own)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------
# One application connection
# --------------------------------------------------------------------------


class _Connection(SimConnection[RecordedSubmit]):
    """The SMS Center side of one TCP connection: frame, check, answer, record."""

    sim: Cimd2Simulator

    def __init__(self, sim: Cimd2Simulator) -> None:
        super().__init__(sim)
        self.user: str | None = None  # logged in as
        self.window = 1
        self.expected: int | None = None  # next packet number from the application
        self.unanswered = 0  # submits received, response not yet written
        self._seq = -2  # our own packets: even numbers 000..254
        self._waiting: dict[int, tuple[int, asyncio.Future[int] | None]] = {}

    @property
    def receives_for(self) -> str | None:
        return self.user

    # asyncio.Protocol --------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.user is not None:
            log.info("CIMD2-SIM[%s] %r disconnected", self.peer, self.user)
        self.user = None
        for _, fut in self._waiting.values():
            if fut is not None and not fut.done():
                fut.set_exception(SimulatorError("connection lost before the response"))
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        late: list[bytes] = []
        close = False
        pos = 0
        while pos < len(buf):
            start = buf.find(STX, pos)
            if start < 0:
                self.violation(f"{len(buf) - pos} bytes outside any packet")
                pos = len(buf)
                break
            if start > pos:
                self.violation(f"{start - pos} bytes before STX")
            end = buf.find(ETX, start)
            if end < 0:
                pos = start
                if len(buf) - start > MAX_FRAME:
                    self.violation(f"no ETX within {MAX_FRAME} bytes; closing")
                    close = True
                break
            pos = end + 1
            close = self._on_frame(buf[start + 1:end], out, late)
            if close:
                break
        self._buf = b"" if close else buf[pos:]
        if self.sim._waiters:
            self.sim._wake_waiters()
        if self.transport is None or self._closed:
            return
        if out:
            self.transport.write(b"".join(out))
            self.unanswered -= sum(1 for p in out if p[1:3] == b"53")
        if late:
            self.sim._loop.call_later(self.sim.response_delay, self._write_late, late)
        if close:
            self._closed = True
            self.transport.close()

    # helpers -----------------------------------------------------------------

    def violation(self, what: str) -> None:
        self.sim.violations.append(what)
        log.warning("CIMD2-SIM[%s] violation: %s", self.peer, what)

    def next_number(self) -> int:
        self._seq = self._seq + 2 if self._seq < 254 else 0
        return self._seq

    def _write_late(self, packets: list[bytes]) -> None:
        if self.write(b"".join(packets)):
            self.unanswered -= len(packets)

    def request(self, op: int, params: list[tuple[str, str]],
                fut: asyncio.Future[int] | None) -> bytes:
        """A request packet of ours, its response awaited into `fut` (None: checked only)."""
        number = self.next_number()
        self._waiting[number] = (op, fut)
        return make_packet(op, number, params)

    # one packet --------------------------------------------------------------

    def _on_frame(self, frame: bytes, out: list[bytes], late: list[bytes]) -> bool:
        """Check and answer one packet (STX and ETX stripped); True to close after."""
        head = frame[:7]
        if (len(head) < 7 or head[2:3] != b":" or head[6:7] != TAB
                or not head[:2].isdigit() or not head[3:6].isdigit()):
            self.violation(f"header {head!r} is not OO:NNN<TAB>")
            out.append(make_packet(OP_GENERAL_ERROR, 0, [("900", str(SYNTAX_ERROR))]))
            return False
        op, number = int(head[:2]), int(head[3:6])
        body = frame[7:]
        if body and not body.endswith(TAB):  # a checksum follows the last TAB
            given, body = body[-2:], body[:-2]
            if (body and not body.endswith(TAB)) or len(given) != 2:
                self.violation(f"{op:02d}:{number:03d} does not end in TAB + checksum")
                out.append(make_packet(OP_GENERAL_ERROR, number, [("900", str(SYNTAX_ERROR))]))
                return False
            if given.upper() != checksum(STX + frame[:len(frame) - 2]):
                self.violation(f"{op:02d}:{number:03d} checksum {given!r} is wrong (expected "
                               f"{checksum(STX + frame[:len(frame) - 2]).decode()})")
                out.append(make_packet(OP_NACK, number))
                return False
        if op in (OP_DELIVER_RESP, OP_REPORT_RESP):
            params = self._params(op, number, body, None)
            if params is not None:
                self._on_response(op, number, params)
            return False
        if op >= 50:
            self.violation(f"{op:02d}:{number:03d} answers nothing the SMS Center sent")
            return False
        # A request from the application: odd, the next number, never repeated (§4).
        if number % 2 == 0 or not 1 <= number <= 255:
            self.violation(f"{op:02d}:{number:03d}: application packet numbers are odd "
                           "001..255")
            out.append(make_packet(OP_NACK, number))
            return False
        if self.expected is not None and number != self.expected:
            self.violation(f"{op:02d}:{number:03d}: packet number {number:03d}, expected "
                           f"{self.expected:03d}")
            out.append(make_packet(OP_NACK, number))
            return False
        self.expected = number + 2 if number < 255 else 1
        if op not in KNOWN_REQUESTS:
            self.violation(f"unknown operation {op:02d}")
            out.append(make_packet(OP_GENERAL_ERROR, number,
                                   [("900", str(UNEXPECTED_OPERATION))]))
            return False
        params = self._params(op, number, body, out)
        if params is None:
            return False
        if op == OP_SUBMIT:
            return self._on_submit(number, params, out, late)
        if op == OP_LOGIN:
            out.append(self._on_login(number, params))
        elif op == OP_ALIVE:
            self.sim.alive_count += 1
            out.append(make_packet(op + 50, number))
        elif op == OP_LOGOUT:
            out.append(make_packet(op + 50, number))
            log.info("CIMD2-SIM[%s] %r logged out", self.peer, self.user)
            self.user = None
            return True
        else:
            self.violation(f"operation {op:02d} is not served by the simulator")
            out.append(make_packet(op + 50, number, [("900", str(UNEXPECTED_OPERATION))]))
        return False

    def _params(self, op: int, number: int, body: bytes,
                out: list[bytes] | None) -> dict[str, str] | None:
        """The parameters of a packet, checked against `PARAMS` and `ALLOWED`; None after
        answering the error (or, for a response, after noting the violation)."""
        def refuse(code: int, why: str) -> None:
            self.violation(f"{op:02d}:{number:03d} {why}")
            if out is not None:
                out.append(make_packet(op + 50, number, [("900", str(code))]))

        params: dict[str, str] = {}
        fields = body.split(TAB)[:-1] if body else []
        for field in fields:
            text = field.decode("latin-1")
            code, colon, value = text[:3], text[3:4], text[4:]
            if colon != ":" or not code.isdigit() or len(code) != 3:
                refuse(SYNTAX_ERROR, f"field {text[:20]!r} is not PPP:value")
                return None
            spec = PARAMS.get(code)
            if spec is None or code not in ALLOWED[op]:
                refuse(UNSUPPORTED_PARAMETER, f"parameter {code} is not one "
                       f"{'CIMD2' if spec is None else f'operation {op:02d}'} has")
                return None
            if code in params:
                refuse(TOO_MANY_DESTINATIONS if code == "021" else SYNTAX_ERROR,
                       f"parameter {code} twice")
                return None
            limit, kind = spec
            if len(value) > limit:
                refuse(FORMATTING_ERROR, f"parameter {code} is {len(value)} characters, at "
                       f"most {limit}")
                return None
            ok = {
                "int": lambda v: v.isdigit() or (v[:1] == "-" and v[1:].isdigit()),
                "addr": lambda v: v.lstrip("+").isdigit() and v.count("+") <= 1
                and v.isascii(),
                "str": lambda v: all(" " <= c <= "~" for c in v),
                "hex": lambda v: len(v) % 2 == 0 and all(c in "0123456789abcdefABCDEF"
                                                         for c in v),
                "time": lambda v: len(v) == 12 and v.isdigit(),
                "ud": lambda v: "\x02" not in v and "\x03" not in v,
            }[kind](value)
            if not ok:
                refuse(FORMATTING_ERROR, f"parameter {code} {value[:20]!r} is not of type {kind}")
                return None
            params[code] = value
        return params

    def _on_response(self, op: int, number: int, params: dict[str, str]) -> None:
        entry = self._waiting.pop(number, None)
        if entry is None or entry[0] + 50 != op:
            self.violation(f"{op:02d}:{number:03d} answers nothing the SMS Center sent")
            return
        fut = entry[1]
        code = int(params.get("900", "0") or 0)
        if fut is not None and not fut.done():
            fut.set_result(code)

    def _on_login(self, number: int, params: dict[str, str]) -> bytes:
        sim = self.sim
        user, password = params.get("010"), params.get("011")
        if self.user is not None:
            self.violation("login while logged in")
            return make_packet(51, number, [("900", str(UNEXPECTED_OPERATION))])
        if user is None or password is None:
            self.violation("login without user identity or password")
            return make_packet(51, number, [("900", str(INVALID_LOGIN))])
        if ((sim.user is not None and user != sim.user)
                or (sim.password is not None and password != sim.password)):
            log.info("CIMD2-SIM[%s] login %r refused: invalid login", self.peer, user)
            return make_packet(51, number, [("900", str(INVALID_LOGIN)),
                                            ("901", "invalid login")])
        window = params.get("019")
        if window is not None:
            w = int(window)
            if not 1 <= w <= sim.max_window:
                log.info("CIMD2-SIM[%s] login %r refused: window %d", self.peer, user, w)
                return make_packet(51, number, [("900", str(INVALID_WINDOW))])
            self.window = w
        self.user = user
        log.info("CIMD2-SIM[%s] %r logged in (window %d)", self.peer, user, self.window)
        sim._loop.call_soon(sim._flush_held, self)
        return make_packet(51, number)

    def _on_submit(self, number: int, params: dict[str, str], out: list[bytes],
                   late: list[bytes]) -> bool:
        sim = self.sim
        if self.user is None:
            self.violation("submit before login")
            self.unanswered += 1  # its response is written below like any other
            out.append(make_packet(53, number, [("900", str(UNEXPECTED_OPERATION))]))
            return False
        if self.unanswered >= self.window:
            self.violation(f"submit {number:03d} with {self.unanswered} awaiting their "
                           f"response, window {self.window}")
        self.unanswered += 1
        self.submits += 1
        replies = late if sim.response_delay > 0 else out
        try:
            rec = self._check_submit(params)
        except _Refused as e:
            sim.rejected_count += 1
            self.violation(f"submit {number:03d} refused, error {e.code}: {e.reason}")
            if not sim.no_response:
                replies.append(make_packet(53, number, [("900", str(e.code))]))
            return self._drop_due()
        sim.received_count += 1
        count = sim.received_count
        if sim.throttle_every and count % sim.throttle_every == 0:
            sim.throttled_count += 1
            if not sim.no_response:
                replies.append(make_packet(53, number, [("900", str(CONGESTION))]))
            return self._drop_due()
        if sim.fail_every and count % sim.fail_every == 0:
            sim.failed_count += 1
            if not sim.no_response:
                replies.append(make_packet(53, number, [("900", str(BAD_DESTINATION))]))
            return self._drop_due()
        sim._accept(rec, self)
        if not sim.no_response:
            replies.append(make_packet(53, number, [("021", rec.destination),
                                                    ("060", rec.timestamp)]))
        return self._drop_due()

    def _check_submit(self, p: dict[str, str]) -> RecordedSubmit:
        """The semantic checks of a submit (§5, §7.3); raise _Refused."""
        dest = p.get("021")
        if not dest:
            raise _Refused(BAD_DESTINATION, "no destination address")
        if "023" in p and "027" in p:
            raise _Refused(BAD_ORIGINATOR, "both originating and alphanumeric originator")
        alpha = p.get("027")
        if alpha is not None and not alpha:
            raise _Refused(BAD_ALPHA_ORIGINATOR, "empty alphanumeric originating address")
        dcs = int(p.get("030", "0"))
        if not 0 <= dcs <= 255:
            raise _Refused(BAD_DCS, f"data coding scheme {dcs}")
        ud, binary = p.get("033"), p.get("034")
        if ud is not None and binary is not None:
            raise _Refused(BAD_COMBINATION, "user data and user data binary together")
        udh = bytes.fromhex(p["032"]) if "032" in p else None
        if udh is not None:
            if ud is None and binary is None:
                raise _Refused(BAD_COMBINATION, "user data header without user data")
            if not udh or udh[0] + 1 != len(udh):
                raise _Refused(FORMATTING_ERROR, f"user data header {udh.hex()} has a wrong "
                               "length octet")
        udh_len = len(udh) if udh else 0
        text = None
        data = None
        if binary is not None:
            alphabet = dcs_alphabet(dcs)
            if alphabet not in ("8bit", "ucs2"):
                raise _Refused(BAD_DCS, f"user data binary with data coding scheme {dcs} "
                               f"({alphabet})")
            data = bytes.fromhex(binary)
            if udh_len + len(data) > 140:
                raise _Refused(BAD_USER_DATA, f"{udh_len} + {len(data)} octets of header and "
                               "user data, at most 140")
            if alphabet == "ucs2" and len(data) % 2:
                raise _Refused(BAD_USER_DATA, "UCS-2 user data of an odd length")
        else:
            alphabet = dcs_alphabet(dcs)
            if alphabet != "gsm":
                raise _Refused(BAD_DCS, f"user data (text) with data coding scheme {dcs} "
                               f"({alphabet})")
            try:
                text, septets = ud_to_text(ud or "")
            except UserDataError as e:
                raise _Refused(BAD_USER_DATA, str(e)) from None
            room = 160 - (udh_len * 8 + 6) // 7 if udh_len else 160
            if septets > room:
                raise _Refused(BAD_USER_DATA, f"{septets} septets of user data, at most {room}")
        validity = p.get("050")
        if validity is not None and not _relative_validity_ok(int(validity)):
            raise _Refused(BAD_VALIDITY, f"validity period relative {validity}")
        srr = int(p.get("056", "0"))
        if not 0 <= srr <= 63:
            raise _Refused(BAD_REPORT_REQUEST, f"status report request {srr}")
        priority = p.get("067")
        if priority is not None and not 1 <= int(priority) <= 9:
            raise _Refused(BAD_PRIORITY, f"priority {priority}")
        ts = self.sim._timestamp_for(dest)
        return RecordedSubmit(
            f"{dest}:{ts}", ts, self.user or "", dest, alpha if alpha is not None
            else p.get("023", ""), alpha is not None, dcs, udh, text, data, srr,
            int(validity) if validity is not None else None,
            int(priority) if priority is not None else None, time.time())


# --------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------

class Cimd2Simulator(Simulator[RecordedSubmit, _Connection]):
    """A CIMD2 SMS Center on a real TCP port. See the module docstring for faults."""

    NAME = "CIMD2 simulator"
    LOG_PREFIX = "CIMD2-SIM"
    UNITS = "submits"
    DLR_STATUSES = DLR_STATUSES
    DLR_STATUS_DEFAULT = "delivered"
    log = log

    def __init__(self, *, user: str | None = None, max_window: int = 128,
                 **options: Unpack[SimulatorOptions]) -> None:
        super().__init__(**options)
        self.user = user
        self.max_window = max_window
        self.alive_count = 0
        self.violations: list[str] = []
        self._last_ts: dict[str, int] = {}  # destination -> last time stamp given (s)

    def _connection(self) -> _Connection:
        return _Connection(self)

    @property
    def logged_in(self) -> int:
        return sum(1 for c in self._connections if c.user is not None)

    bound = logged_in  # the SMPP simulator's word, for code written against both

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "alive_count": self.alive_count,
                "violations": len(self.violations), "logged_in": self.logged_in}

    # recording ---------------------------------------------------------------

    def _timestamp_for(self, destination: str) -> str:
        """A service centre time stamp unique for the destination: the spec names a
        message by the pair, so two in the same second get consecutive seconds."""
        now = int(time.time())
        last = self._last_ts.get(destination, 0)
        t = max(now, last + 1)
        self._last_ts[destination] = t
        if len(self._last_ts) > 100_000:
            self._last_ts.clear()
        return _timestamp(t)

    def _join(self, parts: list[RecordedSubmit]) -> str:
        if parts[0].binary is None:
            return "".join(r.text for r in parts)
        data = b"".join(r.binary or b"" for r in parts)
        return data.decode("utf-16-be", "replace") if parts[0].coding == "ucs2" else data.hex()

    # status reports ----------------------------------------------------------

    def _wants_dlr(self, rec: RecordedSubmit) -> bool:
        return bool(rec.status_report_request & DLR_STATUSES[self.dlr_status][1])

    def _owner(self, rec: RecordedSubmit) -> str:
        return rec.user

    def _dlr_frames(self, conn: _Connection, recs: list[RecordedSubmit]) -> list[bytes]:
        code, _, error = DLR_STATUSES[self.dlr_status]
        done = _timestamp(time.time())
        frames = []
        for rec in recs:
            params = [("021", rec.destination), ("060", rec.timestamp), ("061", str(code))]
            if error is not None:
                params.append(("062", str(error)))
            params.append(("063", done))
            frames.append(conn.request(OP_REPORT, params, None))
        return frames

    # MO ----------------------------------------------------------------------

    async def inject_mo(self, source: str, destination: str, text: str, *,
                        timeout: float = 5.0) -> None:
        """Send an MO text as deliver message(s) (20) to a logged-in application.

        Connections take turns. Returns once every part is answered (70); raises
        SimulatorError if none is logged in, a part is refused or not answered in time.
        """
        conn = self._mo_target("no application is logged in to take an MO")
        coding, esm_class, parts = split_mo(text, next(self._mo_ref))
        packets, futures = [], []
        ts = _timestamp(time.time())
        for sm in parts:
            udh = sm[:sm[0] + 1] if esm_class & 0x40 else b""
            data = sm[len(udh):]
            params = [("021", destination)]
            digits = source.lstrip("+")
            if digits.isdigit():
                params.append(("023", source))
            else:
                params.append(("027", source))
            params.append(("060", ts))
            if udh:
                params.append(("032", udh.hex()))
            if coding == 0x08:
                params += [("030", "8"), ("034", data.hex())]
            else:
                params.append(("033", text_to_ud(_septets_text(data))))
            fut = self._loop.create_future()
            futures.append(fut)
            packets.append(conn.request(OP_DELIVER, params, fut))
        conn.write(b"".join(packets))
        self.mo_count += len(parts)
        codes = await self._await_mo(futures, timeout, "no deliver message response")
        refused = [c for c in codes if c]
        if refused:
            raise SimulatorError(f"the application refused the MO with error {refused[0]}")


def _septets_text(septets: bytes) -> str:
    """Unpacked GSM septets of one MO part back to its characters."""
    out = []
    esc = False
    for s in septets:
        if s == 0x1B:
            esc = True
            continue
        c = GSM_BASIC[s]
        out.append(_FROM_EXTENSION.get(c, c) if esc else c)
        esc = False
    return "".join(out)


# --------------------------------------------------------------------------
# Command line: `omnigate sim cimd2 ...` (wired in by omnigate/cli.py)
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(
        parser, Cimd2Simulator, port=9971, peers="applications", logins="logins",
        unit="submit", response="submit response", throttle="error 10 (temporary congestion)",
        fail="error 300 (permanent)",
        dlr="send status reports when the submit's status report request asks",
        dlr_delay="seconds between the submit response and the status report",
        dlr_status="outcome the status reports give (default delivered)")
    parser.add_argument("--user", help="accept logins only with this user identity")
    parser.add_argument("--max-window", type=int, default=128, metavar="N",
                        help="largest window size (019) a login may ask for (default 128)")


def simulator_from_args(args: argparse.Namespace) -> Cimd2Simulator:
    return Cimd2Simulator(user=args.user, max_window=args.max_window, **common_options(args))


async def run(args: argparse.Namespace) -> None:
    """Entry point for `omnigate sim cimd2`; runs until cancelled."""
    await serve(simulator_from_args(args), args.control)


def main(argv: list[str] | None = None) -> None:
    """`python -m omnigate.sim.cimd2`, for use without the omnigate command."""
    cli_main("python -m omnigate.sim.cimd2", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    from omnigate.sim.cimd2 import main as _main

    _main()
