"""Decoding received user data by SMPP data_coding."""

import pytest

from omnigate.sms.coding import Coding, decode


def test_values_are_smpp_data_coding():
    assert (Coding.GSM7, Coding.LATIN1, Coding.UCS2) == (0, 3, 8)
    assert Coding(8) is Coding.UCS2


def test_decode_gsm7_unpacked_with_escape():
    assert decode(b"Pris: 5\x1be [ok", Coding.GSM7) == "Pris: 5€ Äok"  # '[' is 0x5B = Ä
    assert decode(b"\x1b\x3cx\x1b\x3e", Coding.GSM7) == "[x]"
    assert decode(b"\x00\x01\x02", Coding.GSM7) == "@£$"


def test_decode_latin1():
    assert decode(b"caf\xe9 \xa4", Coding.LATIN1) == "café ¤"


def test_decode_ucs2_including_surrogate_pairs():
    assert decode("Привет 😀".encode("utf-16-be"), Coding.UCS2) == "Привет 😀"
    assert decode(b"\xd8\x3d\xde\x00", Coding.UCS2) == "😀"


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"\x00A\x00", "A\ufffd"), (b"\xd8\x3d\x00A", "\ufffdA"), (b"", "")],
)
def test_decode_ucs2_is_lenient(data, text):
    assert decode(data, Coding.UCS2) == text


def test_decode_unknown_coding():
    with pytest.raises(ValueError, match="unsupported data coding"):
        decode(b"x", 4)
