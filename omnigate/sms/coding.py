"""Data coding schemes as SMPP numbers them (SMPP 3.4 §5.2.19 data_coding)."""

from __future__ import annotations

import enum

from . import gsm


class Coding(enum.IntEnum):
    """The codings omnigate sends (GSM7, UCS2) or meets in what carriers send (LATIN1)."""

    GSM7 = 0  # SMSC default alphabet (GSM 03.38)
    LATIN1 = 3  # ISO-8859-1 (only used when decoding what carriers send)
    UCS2 = 8


def decode(data: bytes, coding: Coding) -> str:
    """Text of a received short message's user data (UDH already removed).

    GSM7 takes unpacked septets with 0x1B escapes (TS 23.038 §6.2.1). UCS2 is read as
    UTF-16BE, a superset, and with errors replaced: a carrier's odd byte must not lose the MO.
    """
    if coding == Coding.GSM7:
        return gsm.decode(data)
    if coding == Coding.UCS2:
        return data.decode("utf-16-be", errors="replace")
    if coding == Coding.LATIN1:
        return data.decode("latin-1")
    raise ValueError(f"unsupported data coding {coding!r}")
