"""Coding choice, splitting and concatenation UDH (3GPP TS 23.040 §9.2.3.24.1)."""

import dataclasses
import pickle
import random

import pytest

from omnigate.sms import gsm
from omnigate.sms.coding import Coding
from omnigate.sms.segment import (
    Segmented,
    TooLong,
    concat_udh,
    concat_udh16,
    count_parts,
    parse_concat,
    segment,
)

ESC = 0x1B
GSM_ALPHABET = "".join(sorted(gsm.GSM_CHARS))


def seg(text, max_parts=10, **kw):
    return segment(text, max_parts=max_parts, **kw)


def test_empty_text_is_one_empty_gsm_part():
    s = seg("")
    assert s == Segmented(Coding.GSM7, "", (b"",), 0)
    assert count_parts("") == (Coding.GSM7, 1)


def test_160_gsm_chars_fit_one_part_161_need_two():
    one = seg("a" * 160)
    assert (one.coding, one.parts, one.chars) == (Coding.GSM7, (b"a" * 160,), 160)
    two = seg("a" * 161)
    assert [len(p) for p in two.parts] == [153, 8]
    assert count_parts("a" * 160) == (Coding.GSM7, 1)
    assert count_parts("a" * 161) == (Coding.GSM7, 2)


def test_extension_chars_count_two_toward_the_limit():
    assert len(seg("a" * 158 + "€").parts) == 1  # 160 septets
    s = seg("a" * 159 + "€")  # 161 septets, 160 characters
    assert len(s.parts) == 2
    assert s.chars == 160


def test_escape_pair_straddling_153_moves_to_next_part():
    text = "a" * 152 + "€" + "b" * 10
    s = seg(text)
    assert s.parts[0] == b"a" * 152  # 152 septets: the escape did not fit
    assert s.parts[1] == b"\x1b\x65" + b"b" * 10
    assert "".join(gsm.decode(p) for p in s.parts) == text


def test_escape_pair_ending_exactly_at_153_stays():
    s = seg("a" * 151 + "€" + "b" * 10)
    assert s.parts[0] == b"a" * 151 + b"\x1b\x65"
    assert s.parts[1] == b"b" * 10


def test_153_boundary_exact_multiples():
    assert [len(p) for p in seg("a" * 306).parts] == [153, 153]
    assert [len(p) for p in seg("a" * 307).parts] == [153, 153, 1]


def test_gsm_parts_property():
    rng = random.Random(40)
    for _ in range(300):
        text = "".join(rng.choices(GSM_ALPHABET + "€€[[", k=rng.randrange(0, 1200)))
        s = seg(text, max_parts=255)
        assert s.coding is Coding.GSM7
        assert b"".join(s.parts) == gsm.encode(text)
        assert "".join(gsm.decode(p) for p in s.parts) == text
        limit = 160 if len(s.parts) == 1 else 153
        for p in s.parts:
            assert len(p) <= limit
            assert not p.endswith(b"\x1b")  # never half an escape pair
            assert len(gsm.decode(p)) == len(p) - p.count(ESC)
        assert count_parts(text) == (Coding.GSM7, len(s.parts))


def test_70_ucs2_units_fit_one_part_71_need_two():
    one = seg("Ж" * 70)
    assert one.coding is Coding.UCS2
    assert one.parts == (("Ж" * 70).encode("utf-16-be"),)
    assert [len(p) // 2 for p in seg("Ж" * 71).parts] == [67, 4]
    assert count_parts("Ж" * 71) == (Coding.UCS2, 2)


def test_emoji_counts_two_units():
    assert len(seg("Ж" * 68 + "😀").parts) == 1  # 70 units, 69 characters
    assert len(seg("Ж" * 69 + "😀").parts) == 2  # 71 units


def test_surrogate_pair_straddling_67_moves_to_next_part():
    text = "Ж" * 66 + "😀" + "Ж" * 5
    s = seg(text)
    assert s.parts[0] == ("Ж" * 66).encode("utf-16-be")  # 66 units
    assert s.parts[1][:4] == b"\xd8\x3d\xde\x00"
    assert "".join(p.decode("utf-16-be") for p in s.parts) == text


def test_ucs2_parts_property():
    rng = random.Random(41)
    alphabet = "aЖ€😀🇸🇪中"
    for _ in range(300):
        text = "".join(rng.choices(alphabet, k=rng.randrange(1, 800)))
        s = seg(text, max_parts=255)
        assert s.coding is Coding.UCS2
        assert s.text == text and s.chars == len(text)
        limit = 140 if len(s.parts) == 1 else 134
        for p in s.parts:
            assert len(p) <= limit and len(p) % 2 == 0
            p.decode("utf-16-be")  # strict: no part holds half a surrogate pair
        assert "".join(p.decode("utf-16-be") for p in s.parts) == text
        assert count_parts(text) == (Coding.UCS2, len(s.parts))


def test_full_parts_fit_140_octets_with_udh():
    udh = concat_udh(1, 2, 1)
    assert len(udh) + len(gsm.pack(b"a" * 153, fill_bits=1)) == 140
    assert len(udh) + 2 * 67 == 140


def test_transliteration_chooses_gsm_and_reports_the_sent_text():
    s = seg("Crème brûlée – 5€", transliterate=True)
    assert s.coding is Coding.GSM7
    assert s.text == "Crème brulée - 5€"
    assert s.chars == len(s.text)
    assert gsm.decode(s.parts[0]) == s.text
    assert count_parts("Crème brûlée", transliterate=True) == (Coding.GSM7, 1)


def test_without_transliteration_non_gsm_goes_ucs2():
    s = seg("Crème brûlée")
    assert s.coding is Coding.UCS2
    assert s.text == "Crème brûlée"
    assert count_parts("ça") == (Coding.UCS2, 1)


def test_untransliterable_text_sends_the_original_as_ucs2():
    text = "Crème brûlée 😀"
    s = seg(text, transliterate=True)
    assert s.coding is Coding.UCS2
    assert s.text == text
    assert s.parts[0] == text.encode("utf-16-be")


def test_transliteration_can_reduce_parts():
    text = "“quoted” " * 15  # 135 chars: UCS-2 needs 3 parts, GSM 1
    assert count_parts(text) == (Coding.UCS2, 3)
    assert count_parts(text, transliterate=True) == (Coding.GSM7, 1)


def test_too_long():
    assert len(seg("a" * 1530, max_parts=10).parts) == 10
    with pytest.raises(TooLong) as e:
        seg("a" * 1531, max_parts=10)
    assert (e.value.parts_needed, e.value.max_parts) == (11, 10)
    assert str(e.value) == "text needs 11 parts, at most 10 allowed"
    assert isinstance(e.value, ValueError)
    with pytest.raises(TooLong, match="text needs 2 parts, at most 1 allowed"):
        seg("Ж" * 71, max_parts=1)


def test_too_long_survives_pickling():
    e = pickle.loads(pickle.dumps(TooLong(12, 10)))
    assert str(e) == "text needs 12 parts, at most 10 allowed"
    assert e.parts_needed == 12


def test_max_parts_is_capped_by_the_one_octet_total():
    with pytest.raises(TooLong, match="text needs 256 parts, at most 255 allowed"):
        seg("a" * 153 * 256, max_parts=1000)
    assert count_parts("a" * 153 * 300) == (Coding.GSM7, 300)  # counters have no limit
    with pytest.raises(ValueError, match="at least 1"):
        seg("a", max_parts=0)


def test_segmented_is_frozen():
    s = seg("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.text = "x"


# --- UDH ---------------------------------------------------------------------------------


def test_concat_udh_bytes():
    assert concat_udh(0x2A, 3, 1) == b"\x05\x00\x03\x2a\x03\x01"
    assert concat_udh(0x1FF, 2, 2) == b"\x05\x00\x03\xff\x02\x02"
    assert concat_udh16(0x1234, 2, 1) == b"\x06\x08\x04\x12\x34\x02\x01"
    assert concat_udh16(0x12345, 255, 255) == b"\x06\x08\x04\x23\x45\xff\xff"


@pytest.mark.parametrize(("total", "seq"), [(0, 0), (2, 0), (2, 3), (256, 1)])
def test_concat_udh_rejects_impossible_positions(total, seq):
    with pytest.raises(ValueError, match="bad concatenation"):
        concat_udh(1, total, seq)
    with pytest.raises(ValueError, match="bad concatenation"):
        concat_udh16(1, total, seq)


def test_parse_concat_round_trips():
    for ref, total, seq in [(0, 1, 1), (0xAB, 3, 2), (0xFF, 255, 255)]:
        assert parse_concat(concat_udh(ref, total, seq)) == (ref, total, seq)
    assert parse_concat(concat_udh16(0xBEEF, 4, 3)) == (0xBEEF, 4, 3)


@pytest.mark.parametrize(
    ("udh", "expected"),
    [
        # application port addressing (IE 0x05) before the concatenation IE
        (b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x01", (7, 2, 1)),
        (b"\x0c\x05\x04\x0b\x84\x23\xf0\x08\x04\x01\x02\x02\x01", (0x102, 2, 1)),
        (b"\x05\x00\x03\x07\x02\x02" + b"user data follows", (7, 2, 2)),
        (b"\x0a\x00\x03\x01\x02\x01\x00\x03\x09\x02\x02", (9, 2, 2)),  # repeated: last wins
        (b"\x0a\x00\x03\x01\x02\x01\x00\x03\x09\x00\x00", (1, 2, 1)),  # ignored IE skipped
        (b"\x04\x05\x02\x0b\x84", None),  # no concatenation IE
        (b"", None),
        (b"\x00", None),
        (b"\x05\x00\x03\x07\x02", None),  # shorter than its UDHL
        (b"\x05\x00\x04\x07\x02\x01", None),  # IEDL runs past the UDH
        (b"\x05\x00\x02\x07\x02\x01", None),  # wrong IEDL for IE 0x00, then a truncated IE
        (b"\x03\x00\x01\x07", None),  # wrong IEDL
        (b"\x01\x00", None),  # IE header cut short
        (b"\x05\x00\x03\x07\x00\x00", None),  # total 0: ignore (§9.2.3.24.1)
        (b"\x05\x00\x03\x07\x02\x00", None),  # seq 0
        (b"\x05\x00\x03\x07\x02\x03", None),  # seq above total
    ],
)
def test_parse_concat_tolerates_and_rejects(udh, expected):
    assert parse_concat(udh) == expected


def test_lone_surrogate_from_a_sloppy_client_is_sent_not_crashed_on():
    s = seg("a\ud800b")  # json.loads('"a\\ud800b"') produces this
    assert s.coding is Coding.UCS2
    assert s.parts == (b"\x00a\xd8\x00\x00b",)


def test_forced_ucs2_for_a_gsm_text() -> None:
    seg = segment("Hej", max_parts=1, ucs2=True)
    assert seg.coding is Coding.UCS2
    assert seg.parts == ("Hej".encode("utf-16-be"),)
    assert len(segment("x" * 71, max_parts=2, ucs2=True).parts) == 2
