"""GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1) and septet packing (§6.1.2.1).

Septets are handled "unpacked", one per byte, as SMPP/CIMD2/UCP carry them; `pack`/`unpack`
convert to and from the packed octets of a TP-User-Data field for modem PDUs.
The national language shift tables (Annex A) are not supported.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from functools import lru_cache

# §6.2.1 default alphabet, indexed by septet. 0x1B is the escape to the extension table;
# we decode a stray one to ESC here and resolve it in `decode`. 0x09 is drawn as Ç in the
# spec (unicode.org's GSM0338.TXT maps it to ç instead); we follow the spec.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# §6.2.1.1 extension table: septet following 0x1B -> character. FF (0x0A) is a page break.
_EXTENSION = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}
ESC = 0x1B

assert len(_BASIC) == 128

EXTENSION_CHARS = frozenset(_EXTENSION.values())
GSM_CHARS = frozenset(_BASIC.replace("\x1b", "")) | EXTENSION_CHARS

_ENCODE: dict[int, bytes] = {ord(c): bytes((i,)) for i, c in enumerate(_BASIC) if i != ESC}
_ENCODE.update({ord(c): bytes((ESC, s)) for s, c in _EXTENSION.items()})

# Fast path for ASCII text, the common case: ASCII characters with a one-septet code are
# mapped by bytes.translate (C speed); anything left over takes the general path.
_ASCII_ONE = bytes(ord(c) for c in _BASIC if c.isascii() and c != "\x1b")
_ASCII_TABLE = bytes.maketrans(_ASCII_ONE, bytes(_BASIC.index(chr(b)) for b in _ASCII_ONE))

# Bytes >= 0x80 cannot be septets; decode them as U+FFFD rather than guess.
_DECODE = _BASIC + "\ufffd" * 128
# After ESC: the extension character, else per §6.2.1.1 the basic character ("shall display
# the character shown in the main default 7 bit alphabet table"). SS2 (ESC ESC) "shall display
# a space", and so does a trailing ESC (footnote to the basic table: shown as a space).
_AFTER_ESC = {c: c for c in _BASIC}
_AFTER_ESC.update({_BASIC[s]: c for s, c in _EXTENSION.items()})
_AFTER_ESC["\x1b"] = " "
_AFTER_ESC[""] = " "
_ESC_RE = re.compile("\x1b(.?)", re.DOTALL)


def _after_esc(m: re.Match[str]) -> str:
    c = m.group(1)
    return _AFTER_ESC.get(c, c)


def is_gsm(text: str) -> bool:
    """True if every character is in the default alphabet or its extension table."""
    return GSM_CHARS.issuperset(text)


def septet_count(text: str) -> int:
    """Septets `text` takes: extension characters cost two (ESC + code, §6.2.1.1).

    Characters outside the alphabet count one; check `is_gsm` first where that matters.
    """
    return len(text) + sum(map(text.count, EXTENSION_CHARS))


def encode(text: str) -> bytes:
    """Unpacked septets, extension characters as 0x1B + code; ValueError if not GSM."""
    data = encode_or_none(text)
    if data is None:
        i, c = next((i, c) for i, c in enumerate(text) if c not in GSM_CHARS)
        raise ValueError(f"{c!r} (U+{ord(c):04X}) at index {i} is not in the GSM 03.38 alphabet")
    return data


def encode_or_none(text: str) -> bytes | None:
    """`encode`, but None instead of an exception: the segmenter's test and encoding in one."""
    if text.isascii():
        data = text.encode("ascii")
        if not data.translate(None, _ASCII_ONE):
            return data.translate(_ASCII_TABLE)
    try:
        return codecs.charmap_encode(text, "strict", _ENCODE)[0]
    except UnicodeEncodeError:
        return None


def decode(data: bytes) -> str:
    """Inverse of `encode`, lenient as §6.2.1.1 asks of a receiving entity."""
    text = codecs.charmap_decode(data, "strict", _DECODE)[0]
    if "\x1b" in text:
        text = _ESC_RE.sub(_after_esc, text)
    return text


# Characters GSM lacks that have an obvious plain form; the NFKD fallback handles accents.
_TRANSLIT_MAP: dict[str, str] = {
    # punctuation typed by word processors and phones
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
    "‹": "'", "›": "'",
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    "…": "...", "¦": "|", "ˆ": "^", "˜": "~", "×": "x", "\t": " ",
    # spaces (NBSP, narrow NBSP, en/em/thin..., ideographic) and invisible formatting
    "\u00a0": " ", "\u202f": " ", "\u205f": " ", "\u3000": " ",
    **{chr(c): " " for c in range(0x2000, 0x200B)},
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "", "\u00ad": "",
    # letters with no decomposition
    "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ħ": "h", "Ħ": "H",
    "ı": "i", "ŀ": "l", "Ŀ": "L", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th",
    "ŧ": "t", "Ŧ": "T", "ĸ": "k", "ŋ": "n", "Ŋ": "N", "ŉ": "'n", "ƒ": "f",
    # Greek capitals GSM leaves out because they look like Latin ones (§6.2.1 has only
    # the distinct ones: Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ)
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}


@lru_cache(maxsize=4096)
def _plain(c: str) -> str:
    """One character GSM lacks -> its plain form: from the table, else its accent-stripped
    NFKD form if that is GSM, else itself."""
    if c in _TRANSLIT_MAP:
        return _TRANSLIT_MAP[c]
    base = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
    if base and not base.isspace() and is_gsm(base):
        return base
    return c


def transliterate(text: str) -> str:
    """Replace characters GSM lacks by plain ones so the text fits GSM 7-bit.

    Characters GSM has (å ä ö é ü ñ ß æ ø ...) are kept; characters without a plain form
    (Cyrillic, CJK, emoji) are left as they are, so the caller falls back to UCS-2.
    """
    if GSM_CHARS.issuperset(text):
        return text
    # Replace per distinct character: texts repeat few of them, and str.replace is C speed.
    for c in set(text).difference(GSM_CHARS):
        text = text.replace(c, _plain(c))
    return text


def _check_fill(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")


def pack(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets (§6.1.2.1.1).

    `fill_bits` zero bits come first so that, after a UDH, the first septet starts on a
    septet boundary (TS 23.040 §9.2.3.24).
    """
    _check_fill(fill_bits)
    if septets and max(septets) > 0x7F:
        raise ValueError("septet values must be below 0x80")
    acc = 0
    for s in reversed(septets):
        acc = (acc << 7) | s
    nbits = 7 * len(septets) + fill_bits
    return (acc << fill_bits).to_bytes((nbits + 7) // 8, "little")


def unpack(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Inverse of `pack`: `count` septets after `fill_bits` skipped bits.

    The count must come from the PDU (TP-UDL): seven trailing spare bits are
    indistinguishable from an '@' (§6.1.2.3.1).
    """
    _check_fill(fill_bits)
    if count < 0 or 7 * count + fill_bits > 8 * len(data):
        raise ValueError(
            f"{len(data)} octets cannot hold {count} septets after {fill_bits} fill bits"
        )
    acc = int.from_bytes(data, "little") >> fill_bits
    return bytes((acc >> (7 * i)) & 0x7F for i in range(count))
