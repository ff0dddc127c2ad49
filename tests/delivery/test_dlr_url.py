"""Kannel dlr-url escapes."""

from __future__ import annotations

from omnigate.delivery.dlr_url import DlrEvent, expand

VALUES = {"d": "1", "A": "id:abc stat:DELIVRD", "i": "smsc1", "I": "42", "p": "+46701234567",
          "q": "46701234567", "P": "Alarm", "T": "1700000000"}


def test_known_escapes_are_replaced_and_encoded() -> None:
    url = "http://app/dlr?t=%d&a=%A&l=%i&id=%I&to=%p&n=%q&from=%P&at=%T"
    assert expand(url, VALUES) == (
        "http://app/dlr?t=1&a=id%3Aabc%20stat%3ADELIVRD&l=smsc1&id=42&to=%2B46701234567"
        "&n=46701234567&from=Alarm&at=1700000000")


def test_percent_literal_and_unknown_escapes_stay() -> None:
    assert expand("http://app/x?p=100%%&u=%u&end=%", VALUES) == "http://app/x?p=100%&u=%u&end=%"


def test_mask_bits_are_kannels() -> None:
    assert [int(e) for e in DlrEvent] == [1, 2, 4, 8, 16]
