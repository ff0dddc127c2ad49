"""GSM 03.38 alphabet, transliteration and septet packing (3GPP TS 23.038)."""

import random

import pytest

from omnigate.sms import gsm

BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}
ALL_GSM = BASIC.replace("\x1b", "") + "".join(EXTENSION)


@pytest.mark.parametrize(
    ("char", "septet"),
    [("@", 0x00), ("£", 0x01), ("$", 0x02), ("¥", 0x03), ("Ç", 0x09), ("\n", 0x0A),
     ("\r", 0x0D), ("Δ", 0x10), ("_", 0x11), ("É", 0x1F), (" ", 0x20), ("¤", 0x24),
     ("¡", 0x40), ("A", 0x41), ("Ä", 0x5B), ("§", 0x5F), ("¿", 0x60), ("a", 0x61),
     ("ü", 0x7E), ("à", 0x7F)],
)
def test_basic_table_vectors(char, septet):
    assert gsm.encode(char) == bytes([septet])
    assert gsm.decode(bytes([septet])) == char


@pytest.mark.parametrize(("char", "code"), sorted(EXTENSION.items()))
def test_extension_table_is_escaped(char, code):
    assert gsm.encode(char) == bytes([0x1B, code])
    assert gsm.decode(bytes([0x1B, code])) == char
    assert gsm.septet_count(char) == 2


def test_alphabet_has_exactly_137_characters():
    assert len(set(ALL_GSM)) == 127 + 10
    assert frozenset(ALL_GSM) == gsm.GSM_CHARS


def test_is_gsm():
    assert gsm.is_gsm(ALL_GSM)
    assert gsm.is_gsm("")
    for c in ["`", "ç", "á", "Ж", "😀", "\t", "\x1b", "\u00a0", "’", "ê"]:
        assert not gsm.is_gsm("abc" + c), c


@pytest.mark.parametrize(
    ("text", "count"),
    [("", 0), ("abc", 3), ("€", 2), ("[x]", 5), ("\f", 2), ("a{b}c", 7),
     ("^\\|~", 8), ("Hello, €5 [ok]", 17), ("Ä" * 160, 160)],
)
def test_septet_count(text, count):
    assert gsm.septet_count(text) == count
    assert len(gsm.encode(text)) == count


def test_encode_rejects_non_gsm_naming_the_character():
    with pytest.raises(ValueError, match=r"'ç' \(U\+00E7\) at index 2 is not in the GSM 03.38"):
        gsm.encode("Caça")
    assert gsm.encode_or_none("Caça") is None
    assert gsm.encode_or_none("Casa") == b"Casa"


def test_ascii_fast_path_agrees_with_the_tables():
    for cp in range(128):
        c = chr(cp)
        if c in EXTENSION:
            expected = bytes([0x1B, EXTENSION[c]])
        elif c in ALL_GSM:
            expected = bytes([BASIC.index(c)])
        else:  # '`' and control characters other than LF, CR, FF
            assert gsm.encode_or_none(c) is None, repr(c)
            assert gsm.encode_or_none("plain " + c) is None, repr(c)
            continue
        assert gsm.encode(c) == expected
        assert gsm.encode("x" + c + "y") == b"x" + expected + b"y"
    assert gsm.encode_or_none("".join(map(chr, range(128)))) is None


def test_every_single_character_round_trips():
    for c in ALL_GSM:
        assert gsm.decode(gsm.encode(c)) == c
    assert gsm.decode(gsm.encode(ALL_GSM)) == ALL_GSM


@pytest.mark.parametrize("alphabet", [ALL_GSM, "".join(c for c in ALL_GSM if c.isascii())])
def test_random_texts_round_trip(alphabet):
    rng = random.Random(2303)
    for _ in range(500):
        text = "".join(rng.choices(alphabet, k=rng.randrange(0, 400)))
        data = gsm.encode(text)
        assert len(data) == gsm.septet_count(text)
        assert max(data, default=0) < 0x80
        assert gsm.decode(data) == text


def test_every_septet_decodes_to_a_character_that_encodes_back():
    for septet in range(0x80):
        if septet == 0x1B:
            continue
        assert gsm.encode(gsm.decode(bytes([septet]))) == bytes([septet])


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x1bA", "A"),  # unknown escape: the basic character (§6.2.1.1)
        (b"\x1be", "€"),
        (b"\x1b\x0d", "\r"),  # CR2 is unassigned: shown as the basic CR
        (b"\x1b\x1bA", " A"),  # SS2: shown as a space
        (b"ab\x1b", "ab "),  # trailing escape: shown as a space
        (b"\x1b\x1b", " "),
        (b"\x1b\x0a\x0a", "\f\n"),
        (b"a\x80b", "a\ufffdb"),  # not a septet
    ],
)
def test_decode_is_lenient_per_spec(data, text):
    assert gsm.decode(data) == text


# --- transliteration -----------------------------------------------------------------------


def test_transliterate_keeps_gsm_text_unchanged():
    assert gsm.transliterate(ALL_GSM) == ALL_GSM
    kept = "åäöéüñÄÖÅÜÑßæøÆØèùìòàÇÉ"
    assert gsm.transliterate(kept) == kept
    assert gsm.transliterate(kept + "á") == kept + "a"


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("á", "a"), ("ç", "c"), ("š", "s"), ("ł", "l"), ("Ł", "L"), ("œ", "oe"), ("Œ", "OE"),
        ("ê", "e"), ("À", "A"), ("ő", "o"), ("ž", "z"), ("đ", "d"), ("ı", "i"), ("þ", "th"),
        ("‘x’", "'x'"), ("“x”", '"x"'), ("„x“", '"x"'), ("«x»", '"x"'),
        ("a–b", "a-b"), ("a—b", "a-b"), ("a−b", "a-b"), ("wait…", "wait..."),
        ("a\u00a0b", "a b"), ("a\u202fb", "a b"), ("a\tb", "a b"), ("a\u200bb", "ab"),
        ("`x´", "'x'"), ("ﬁne", "fine"), ("x²", "x2"), ("™", "TM"), ("ＡＢ", "AB"),
        ("ΑΘΗΝΑ", "AΘHNA"), ("Ω", "Ω"),  # ohm sign -> Greek capital omega, which GSM has
        ("Crème brûlée", "Crème brulée"), ("Łódź", "Lodz"), ("Straße", "Straße"),
    ],
)
def test_transliterate_maps_to_plain_gsm(text, plain):
    assert gsm.transliterate(text) == plain
    assert gsm.is_gsm(plain)


@pytest.mark.parametrize("text", ["Привет", "你好", "😀", "עברית", "¨", "½"])
def test_transliterate_leaves_characters_without_plain_form(text):
    assert gsm.transliterate(text) == text
    assert not gsm.is_gsm(gsm.transliterate(text))


def test_transliterate_mixed_keeps_the_rest():
    assert gsm.transliterate("naïve 😀 café") == "naive 😀 café"


def test_transliterate_covers_latin1_and_latin_extended_a_letters():
    for cp in range(0xC0, 0x180):
        c = chr(cp)
        if c in "×÷":
            continue
        assert gsm.is_gsm(gsm.transliterate(c)), f"U+{cp:04X} {c}"


# --- packing (§6.1.2.1.1) -------------------------------------------------------------------


def _reference_pack(septets: bytes, fill: int) -> bytes:
    """Bit by bit, LSB first, as drawn in §6.1.2.1.1."""
    bits = [0] * fill
    for s in septets:
        bits += [(s >> i) & 1 for i in range(7)]
    bits += [0] * (-len(bits) % 8)
    return bytes(sum(b << i for i, b in enumerate(bits[k : k + 8])) for k in range(0, len(bits), 8))


def test_pack_classic_vector():
    packed = gsm.pack(gsm.encode("hellohello"))
    assert packed.hex() == "e8329bfd4697d9ec37"
    assert gsm.decode(gsm.unpack(packed, 10)) == "hellohello"


@pytest.mark.parametrize(("n", "octets"), [(0, 0), (1, 1), (7, 7), (8, 7), (9, 8), (160, 140)])
def test_pack_length(n, octets):
    assert len(gsm.pack(b"\x7f" * n)) == octets


def test_pack_with_fill_bits_after_udh():
    # A 6-octet UDH is 48 bits; 1 fill bit aligns the first septet on bit 49 (TS 23.040).
    assert gsm.pack(b"\x01", fill_bits=1) == b"\x02"
    assert gsm.pack(b"\x7f", fill_bits=6) == b"\xc0\x1f"
    assert len(gsm.pack(b"a" * 153, fill_bits=1)) == 134


def test_pack_matches_reference_and_round_trips():
    rng = random.Random(7)
    for n in range(0, 40):
        for fill in range(7):
            septets = bytes(rng.randrange(128) for _ in range(n))
            packed = gsm.pack(septets, fill)
            assert packed == _reference_pack(septets, fill)
            assert gsm.unpack(packed, n, fill) == septets


def test_pack_and_unpack_reject_bad_input():
    with pytest.raises(ValueError, match="below 0x80"):
        gsm.pack(b"\x80")
    with pytest.raises(ValueError, match=r"0\.\.6"):
        gsm.pack(b"a", fill_bits=7)
    with pytest.raises(ValueError, match=r"0\.\.6"):
        gsm.unpack(b"a", 1, fill_bits=-1)
    with pytest.raises(ValueError, match="cannot hold 10 septets"):
        gsm.unpack(bytes.fromhex("e8329bfd4697d9ec"), 10)
