"""Choose the coding and split a text into concatenated parts (TS 23.040 §9.2.3.24.1).

Per-part sizes assume one concatenation IE with an 8-bit reference, the usual UDH
(6 octets: UDHL, IEI 0x00, IEDL 3, ref, total, seq): 140 octets of user data leave
134 octets = 153 septets (1072 bits // 7) or 67 UTF-16 code units.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import gsm
from .coding import Coding

GSM7_SINGLE = 160  # septets in one 140-octet TP-UD (TS 23.040 §9.2.3.16)
GSM7_MULTI = 153  # after a 6-octet UDH: (140 - 6) * 8 // 7
UCS2_SINGLE = 70  # UTF-16 code units in 140 octets
UCS2_MULTI = 67  # (140 - 6) // 2
MAX_PARTS = 255  # the concatenation IE's "maximum number" is one octet (§9.2.3.24.1)


class TooLong(ValueError):
    """The text needs more parts than allowed."""

    def __init__(self, parts_needed: int, max_parts: int) -> None:
        super().__init__(parts_needed, max_parts)
        self.parts_needed = parts_needed
        self.max_parts = max_parts

    def __str__(self) -> str:
        return f"text needs {self.parts_needed} parts, at most {self.max_parts} allowed"


@dataclass(frozen=True, slots=True)
class Segmented:
    """A text ready to send: its coding and the user data of each part, without UDH."""

    coding: Coding  # GSM7 or UCS2
    text: str  # the text actually sent (after transliteration)
    parts: tuple[bytes, ...]  # unpacked septets for GSM7, UTF-16BE for UCS2
    chars: int  # len(text), for the traffic log


def _ends(data: bytes, single: int, multi: int, unit: int) -> list[int]:
    """Byte offsets where the parts of `data` end.

    A part never ends inside a pair: an escape (0x1B + code, TS 23.038 §6.2.1.1) for
    unit 1, a UTF-16 surrogate pair for unit 2. Split halves would show as garbage.
    """
    n = len(data)
    if n <= single:
        return [n]
    ends = []
    start = 0
    while start < n:
        end = start + multi
        if end >= n:
            end = n
        elif unit == 1:
            if data[end - 1] == gsm.ESC:
                end -= 1
        elif 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2
        ends.append(end)
        start = end
    return ends


def _encoded(text: str, transliterate: bool, ucs2: bool = False) -> tuple[Coding, str, bytes]:
    if not ucs2:
        sent = gsm.transliterate(text) if transliterate else text
        septets = gsm.encode_or_none(sent)
        if septets is not None:
            return Coding.GSM7, sent, septets
    # surrogatepass: a lone surrogate from a sloppy client goes out as the unit it is.
    return Coding.UCS2, text, text.encode("utf-16-be", "surrogatepass")


def _ends_for(coding: Coding, data: bytes) -> list[int]:
    if coding is Coding.GSM7:
        return _ends(data, GSM7_SINGLE, GSM7_MULTI, 1)
    return _ends(data, 2 * UCS2_SINGLE, 2 * UCS2_MULTI, 2)


def segment(text: str, *, max_parts: int, transliterate: bool = False,
            ucs2: bool = False) -> Segmented:
    """Encode `text` as GSM7 if it (optionally transliterated) fits, else as UCS-2 of the
    original, and split it into parts. Empty text gives one empty part. `ucs2` forces
    UCS-2 (a client asking for it, as Kannel's coding=2).

    Raises TooLong beyond `max_parts` (capped at 255, the most a UDH can count).
    """
    if max_parts < 1:
        raise ValueError(f"max_parts must be at least 1, got {max_parts}")
    coding, sent, data = _encoded(text, transliterate, ucs2)
    ends = _ends_for(coding, data)
    limit = min(max_parts, MAX_PARTS)
    if len(ends) > limit:
        raise TooLong(len(ends), limit)
    if len(ends) == 1:
        parts: tuple[bytes, ...] = (data,)
    else:
        starts = [0, *ends[:-1]]
        parts = tuple(data[a:b] for a, b in zip(starts, ends, strict=True))
    return Segmented(coding, sent, parts, len(sent))


def count_parts(text: str, *, transliterate: bool = False) -> tuple[Coding, int]:
    """Coding and number of parts `segment` would produce, without any limit (UI counters)."""
    coding, _, data = _encoded(text, transliterate)
    return coding, len(_ends_for(coding, data))


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """Full UDH with IE 0x00, concatenation with an 8-bit reference (§9.2.3.24.1)."""
    _check_concat(total, seq)
    return bytes((5, 0x00, 3, ref & 0xFF, total, seq))


def concat_udh16(ref: int, total: int, seq: int) -> bytes:
    """Full UDH with IE 0x08, concatenation with a 16-bit reference (§9.2.3.24.8)."""
    _check_concat(total, seq)
    return bytes((6, 0x08, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seq))


def _check_concat(total: int, seq: int) -> None:
    # §9.2.3.24.1: a receiver ignores the IE if total is 0 or seq is 0 or above total.
    if not 1 <= seq <= total <= MAX_PARTS:
        raise ValueError(f"bad concatenation: part {seq} of {total}")


def parse_concat(udh: bytes) -> tuple[int, int, int] | None:
    """(ref, total, seq) from a full UDH (starting with UDHL), or None.

    Other IEs are skipped. IEs the spec says to ignore (total 0, seq 0 or above total) are
    ignored; if the concatenation IE repeats, the last one counts (§9.2.3.24). A UDH whose
    length fields run past its end is malformed: None.
    """
    if not udh:
        return None
    end = 1 + udh[0]
    if len(udh) < end:
        return None
    found = None
    i = 1
    while i < end:
        if i + 2 > end:
            return None
        iei, iedl = udh[i], udh[i + 1]
        data = udh[i + 2 : i + 2 + iedl]
        i += 2 + iedl
        if i > end:
            return None
        if iei == 0x00 and iedl == 3:
            ref, total, seq = data
        elif iei == 0x08 and iedl == 4:
            ref, total, seq = (data[0] << 8) | data[1], data[2], data[3]
        else:
            continue
        if 1 <= seq <= total:
            found = (ref, total, seq)
    return found
