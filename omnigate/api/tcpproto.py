"""The TCP line protocol without I/O: framing, telnet bytes, dot-stuffing, command words.

`LineFramer` turns the bytes a client writes into complete lines, whatever
the chunking: lines end with LF or CRLF; telnet commands (RFC 854: IAC
WILL/WONT/DO/DONT <option>, IAC SB ... IAC SE, the two-byte commands) and the
NUL of telnet's "CR NUL" are removed, so a person in `telnet` never sees an
error for bytes they did not type. A line longer than the limit is dropped as
it streams (memory stays bounded) and reported once, where it ends, so the
answers of pipelined commands keep their order.

Multi-line answers and DATA texts are dot-terminated and dot-stuffed as in
SMTP (RFC 5321 §4.5.2) and POP3 (RFC 1939 §3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# RFC 854 command bytes
IAC = 255
_SB = 250
_SE = 240  # also the lowest command byte
_WILL_TO_DONT = range(251, 255)  # WILL, WONT, DO, DONT: one option byte follows
# A subnegotiation that never ends is binary garbage, not telnet: NAWS is 4
# bytes, TERMINAL-TYPE a name; give up on it after this many.
_MAX_SUBNEGOTIATION = 64

_DATA, _COMMAND, _OPTION, _SUB, _SUB_IAC = range(5)


@dataclass(frozen=True, slots=True)
class Overflow:
    """Where a line was: it was longer than `limit` bytes and has been dropped."""

    limit: int


class LineFramer:
    """Bytes in, lines out (bytes without the line end and telnet commands)."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._dropping = False  # inside an overlong line: discard up to its end
        self._telnet = _DATA
        self._sub = 0  # bytes of the current subnegotiation

    def feed(self, data: bytes) -> list[bytes | Overflow]:
        if self._telnet != _DATA or IAC in data:
            data = self._strip_telnet(data)
        if 0 in data:
            data = data.replace(b"\0", b"")
        out: list[bytes | Overflow] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._take(data, start, end)
            start = end + 1
            line = bytes(self._buf[:-1] if self._buf.endswith(b"\r") else self._buf)
            self._buf.clear()
            if self._dropping or len(line) > self.max_line:
                out.append(Overflow(self.max_line))
                self._dropping = False
            else:
                out.append(line)
        self._take(data, start, len(data))
        return out

    def _take(self, data: bytes, start: int, end: int) -> None:
        if self._dropping:
            return
        if len(self._buf) + end - start > self.max_line + 1:  # + 1: room for the CR
            self._dropping = True
            self._buf.clear()
            return
        self._buf += data[start:end]

    def _strip_telnet(self, data: bytes) -> bytes:
        """Data bytes only; the state carries over commands split between reads."""
        out = bytearray()
        state = self._telnet
        for byte in data:
            if state == _DATA:
                if byte == IAC:
                    state = _COMMAND
                else:
                    out.append(byte)
            elif state == _COMMAND:
                if byte == IAC:  # IAC IAC: a data byte 255
                    out.append(byte)
                    state = _DATA
                elif byte in _WILL_TO_DONT:
                    state = _OPTION
                elif byte == _SB:
                    state = _SUB
                    self._sub = 0
                else:
                    state = _DATA
                    if byte < _SE:  # not a command (RFC 854 has 240-255): garbage, kept as data
                        out.append(byte)
            elif state == _OPTION:
                state = _DATA
            else:  # in a subnegotiation
                self._sub += 1
                if self._sub > _MAX_SUBNEGOTIATION:  # garbage, not telnet: data again
                    state = _DATA
                    out.append(byte)
                elif state == _SUB_IAC:
                    state = _DATA if byte == _SE else _SUB
                elif byte == IAC:
                    state = _SUB_IAC
        self._telnet = state
        return bytes(out)


# -- commands and answers -----------------------------------------------------


def split_command(line: str) -> tuple[str, str]:
    """('SEND', '0701234567 Hello  you') from 'send 0701234567 Hello  you'."""
    parts = line.strip().split(None, 1)
    if not parts:
        return "", ""
    return parts[0].upper(), parts[1] if len(parts) > 1 else ""


def unstuff(line: str) -> str:
    """A DATA line as the client meant it (RFC 5321 §4.5.2: one leading dot removed)."""
    return line[1:] if line.startswith(".") else line


def stuffed(lines: Iterable[str]) -> str:
    """Lines of a multi-line answer, dot-stuffed (RFC 1939 §3), each ending CRLF."""
    return "".join(f".{line}\r\n" if line.startswith(".") else f"{line}\r\n" for line in lines)


def multiline(head: str, lines: Iterable[str]) -> str:
    """'+OK head', the lines dot-stuffed, and the closing '.'."""
    return f"+OK {head}\r\n{stuffed(lines)}.\r\n"


def one_line(text: str) -> str:
    """Whatever a value holds (line breaks from a carrier's error text), on one line."""
    return " ".join(text.split())


# -- arguments ----------------------------------------------------------------

_DURATION = re.compile(r"^(\d{1,9})([smhd])$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(word: str, now: float) -> float:
    """'2h', '30m', '7d', '90s' back from `now`, or an ISO 8601 time with its zone;
    epoch seconds. Raises ValueError saying what is expected."""
    m = _DURATION.match(word)
    if m:
        return now - int(m.group(1)) * _SECONDS[m.group(2).lower()]
    try:
        when = datetime.fromisoformat(word)
    except ValueError:
        raise ValueError(f"{word!r} is neither a duration (30m, 2h, 7d) "
                         "nor an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{word!r} needs a time zone (e.g. 2026-11-22T08:00+01:00)")
    return when.timestamp()


def parse_numbers(word: str) -> list[str]:
    """'0701234567,+46708321321' -> the numbers as given; ValueError on an empty entry."""
    numbers = word.split(",")
    if any(not n for n in numbers):
        raise ValueError(f"empty number in {word!r}: separate numbers with single commas")
    return numbers
