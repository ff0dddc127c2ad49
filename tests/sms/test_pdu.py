"""3GPP TS 23.040 PDUs: published vectors, fields checked by hand against the spec,
round trips and random input (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigate.sms import gsm, pdu
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from omnigate.sms.pdu import Deliver, PduError, StatusReport, Submit
from omnigate.sms.segment import concat_udh, concat_udh16, parse_concat, segment

INTL = Address("46708251358", 1, 1)


# --- published vectors -------------------------------------------------------------------


def test_hellohello_submit_as_published() -> None:
    # The classic example (dreamfabric "SMS and the PDU format"): to +46708251358,
    # relative validity AA (4 days), user data "hellohello" -> E8329BFD4697D9EC37.
    data, length = pdu.encode_submit(INTL, Coding.GSM7, gsm.encode("hellohello"),
                                     validity=4 * 86400)
    assert data.hex().upper() == "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"
    assert length == len(data) - 1  # AT+CMGS counts the TPDU, not the SMSC field "00"


def test_hellohello_deliver_as_published() -> None:
    # The same page's SMS-DELIVER: SMSC +27381000015, sender 27838890001 (TOA C8),
    # SCTS 99-03-29 15:16:59 +02:00 (TZ "80" swapped: 8 quarter hours).
    d = pdu.decode_hex("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD"
                       "4697D9EC37")
    assert isinstance(d, Deliver)
    assert d.smsc == "+27381000015"
    assert d.sender == Address("27838890001", 4, 8)
    assert d.scts == datetime(2099, 3, 29, 15, 16, 59, tzinfo=timezone(timedelta(hours=2)))
    assert (d.coding, pdu.text_of(d.coding, d.data), d.udh) == (Coding.GSM7, "hellohello",
                                                                 b"")


def test_gsm_packing_of_the_23038_example() -> None:
    # TS 23.038 §6.1.2.1.1 packs septets LSB first: "hellohello" is the usual check.
    assert gsm.pack(gsm.encode("hellohello")).hex().upper() == "E8329BFD4697D9EC37"


# --- SMS-SUBMIT fields by hand -------------------------------------------------------------


def test_submit_first_octet_flags_and_fields() -> None:
    udh = concat_udh(0x42, 2, 1)
    data, length = pdu.encode_submit(Address("0701234567", 2, 1), Coding.UCS2,
                                     "ä€".encode("utf-16-be"), udh=udh, smsc="+46705008999",
                                     report=True, flash=True, reject_duplicates=True,
                                     validity=3600)
    smsc = bytes.fromhex("07916407058099F9")
    assert data[:8] == smsc and length == len(data) - 8
    tpdu = data[8:]
    # MTI 01 | RD 04 | VPF relative 10 | SRR 20 | UDHI 40 = 75
    assert tpdu[0] == 0x75 and tpdu[1] == 0x00  # TP-MR 0: the modem sets it
    assert tpdu[2:9] == bytes.fromhex("0AA1") + bytes.fromhex("7010325476")  # national, swapped
    assert tpdu[9:11] == bytes((0x00, 0x18))  # PID, DCS UCS2 class 0
    assert tpdu[11] == 11  # 60 min -> (11+1)*5
    assert tpdu[12] == 6 + 4 and tpdu[13:19] == udh and tpdu[19:] == bytes.fromhex("00E420AC")


def test_alphanumeric_destination_packs_septets() -> None:
    data, _ = pdu.encode_submit(Address("Info", 5, 0), Coding.GSM7, b"")
    # 4 septets = 28 bits = 7 semi-octets; TOA D0 (TON 5, NPI 0); "Info" packed 49B7F90D
    assert data[3:9] == bytes.fromhex("07D049B7F90D")
    back = pdu.decode(data)
    assert isinstance(back, Submit) and back.destination == Address("Info", 5, 0)


def test_gsm7_after_udh_starts_on_a_septet_boundary() -> None:
    # A 6-octet UDH is 48 bits: one fill bit makes 49 = 7 septets; UDL counts them.
    udh = concat_udh(1, 2, 2)
    data, _ = pdu.encode_submit(INTL, Coding.GSM7, gsm.encode("A"), udh=udh)
    tpdu = data[1:]
    udl, ud = tpdu[12], tpdu[13:]  # first, MR, DA (2 + 6), PID, DCS, UDL
    assert udl == 7 + 1
    assert ud[:6] == udh and ud[6:] == bytes((0x41 << 1,))  # 'A' after one fill bit
    back = pdu.decode(data)
    assert isinstance(back, Submit) and back.data == b"A" and back.udh == udh


def test_sixteen_bit_concatenation_uses_its_own_fill() -> None:
    udh = concat_udh16(0x1234, 3, 2)  # 7 octets = 56 bits = 8 septets, no fill
    data, _ = pdu.encode_submit(INTL, Coding.GSM7, gsm.encode("hi"), udh=udh)
    back = pdu.decode(data)
    assert isinstance(back, Submit)
    assert parse_concat(back.udh) == (0x1234, 3, 2) and back.data == gsm.encode("hi")
    assert data[13] == 8 + 2  # UDL, after SMSC 00 and 12 TPDU octets


@pytest.mark.parametrize(("seconds", "vp"), [
    (0, 0), (300, 0), (301, 1), (12 * 3600, 143), (12 * 3600 + 1, 144), (86400, 167),
    (2 * 86400, 168), (30 * 86400, 196), (31 * 86400, 197), (63 * 7 * 86400, 255),
    (10**9, 255)])
def test_relative_validity_steps(seconds: float, vp: int) -> None:
    assert pdu.relative_validity(seconds) == vp
    assert pdu.validity_seconds(vp) >= min(seconds, 63 * 7 * 86400)


@pytest.mark.parametrize(("coding", "flash", "dcs"), [
    (Coding.GSM7, False, 0x00), (Coding.GSM7, True, 0x10), (None, False, 0x04),
    (None, True, 0x14), (Coding.UCS2, False, 0x08), (Coding.UCS2, True, 0x18)])
def test_dcs(coding: Coding | None, flash: bool, dcs: int) -> None:
    assert pdu.dcs_for(coding, flash) == dcs
    assert pdu.dcs_alphabet(dcs) == (coding, 0 if flash else None)


def test_dcs_groups_when_reading() -> None:
    assert pdu.dcs_alphabet(0xF0) == (Coding.GSM7, 0)
    assert pdu.dcs_alphabet(0xF6) == (None, 2)
    assert pdu.dcs_alphabet(0xE0) == (Coding.UCS2, None)
    assert pdu.dcs_alphabet(0x80) == (Coding.GSM7, None)  # reserved: default alphabet
    with pytest.raises(PduError, match="compressed"):
        pdu.dcs_alphabet(0x20)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"destination": Address("", 1, 1)}, "1-20 digits"),
    ({"destination": Address("46x", 1, 1)}, "address digits"),
    ({"destination": Address("Ünïcødé-name", 5, 0)}, "GSM 03.38|septets"),
    ({"data": b"a" * 161}, "septets do not fit"),
    ({"coding": Coding.UCS2, "data": b"ab" * 71}, "octets do not fit"),
    ({"udh": b"\x05\x00\x03"}, "UDH length"),
    ({"coding": Coding.LATIN1}, "cannot be sent"),
    ({"smsc": "+46abc"}, "service centre")])
def test_bad_submits_raise_pdu_error(kwargs: dict, match: str) -> None:
    args = {"destination": INTL, "coding": Coding.GSM7, "data": b"hi"} | kwargs
    with pytest.raises(PduError, match=match):
        pdu.encode_submit(args.pop("destination"), args.pop("coding"), args.pop("data"),
                          **args)


def test_every_extension_character_round_trips() -> None:
    text = "".join(sorted(gsm.EXTENSION_CHARS))
    data, _ = pdu.encode_submit(INTL, Coding.GSM7, gsm.encode(text))
    back = pdu.decode(data)
    assert isinstance(back, Submit) and gsm.decode(back.data) == text
    assert data[13] == 2 * len(text)  # each takes ESC + code


def test_ucs2_with_emoji_round_trips() -> None:
    seg = segment("Hej 😀 ✓", max_parts=1)
    data, _ = pdu.encode_submit(INTL, seg.coding, seg.parts[0])
    back = pdu.decode(data)
    assert isinstance(back, Submit) and pdu.text_of(back.coding, back.data) == "Hej 😀 ✓"


# --- SMS-DELIVER and SMS-STATUS-REPORT --------------------------------------------------------


def _deliver(sender: bytes, dcs: int, ud: bytes, udl: int, first: int = 0x04) -> bytes:
    scts = bytes.fromhex("42101261730040")  # 24-01-21 16:37:00 +01:00 (4 quarters)
    return b"\x00" + bytes((first,)) + sender + bytes((0, dcs)) + scts + bytes((udl,)) + ud


def test_deliver_multipart_with_8bit_reference() -> None:
    udh = concat_udh(0xAB, 3, 2)
    septets = gsm.encode("part two")
    ud = udh + gsm.pack(septets, 1)
    raw = _deliver(bytes.fromhex("0B916407281553F8"), 0x00, ud, 7 + len(septets), 0x44)
    d = pdu.decode(raw)
    assert isinstance(d, Deliver)
    assert d.sender == INTL and parse_concat(d.udh) == (0xAB, 3, 2)
    assert gsm.decode(d.data) == "part two"
    assert d.scts.astimezone(UTC) == datetime(2024, 1, 21, 15, 37, tzinfo=UTC)


def test_deliver_ucs2_with_16bit_reference_and_alphanumeric_sender() -> None:
    udh = concat_udh16(0xBEEF, 2, 1)
    body = "Привет".encode("utf-16-be")
    # "Bank": 4 septets = 28 bits -> 7 semi-octets, packed C2B07B0D
    raw = _deliver(bytes.fromhex("07D0C2B07B0D"), 0x08, udh + body, len(udh) + len(body), 0x44)
    d = pdu.decode(raw)
    assert isinstance(d, Deliver)
    assert d.sender == Address("Bank", 5, 0)
    assert parse_concat(d.udh) == (0xBEEF, 2, 1)
    assert pdu.text_of(d.coding, d.data) == "Привет"


def test_status_report_by_hand() -> None:
    # 06: MTI 10 | SRQ 0 | MMS; MR 0x2A; RA +46708251358; SCTS; DT; ST 00
    scts, dt = bytes.fromhex("42101261730040"), bytes.fromhex("42101261831540")
    raw = bytes.fromhex("00062A0B916407281553F8") + scts + dt + b"\x00"
    r = pdu.decode(raw)
    assert isinstance(r, StatusReport)
    assert (r.mr, r.recipient, r.status, r.final, r.delivered) == (42, INTL, 0, True, True)
    assert r.done_at.astimezone(UTC) == datetime(2024, 1, 21, 15, 38, 51, tzinfo=UTC)
    for tp_st, final, delivered in ((0x21, False, False), (0x46, True, False),
                                    (0x62, True, False)):
        r = pdu.decode(raw[:-1] + bytes((tp_st,)))
        assert isinstance(r, StatusReport) and (r.final, r.delivered) == (final, delivered)


@pytest.mark.parametrize("hexpdu", ["", "00", "0003", "07917283010010", "00C0",
                                    "0004", "00040B91640728", "zz"])
def test_truncated_or_wrong_pdus_raise_pdu_error(hexpdu: str) -> None:
    with pytest.raises(PduError):
        pdu.decode_hex(hexpdu)


# --- properties ---------------------------------------------------------------------------------

_gsm_text = st.text(alphabet=sorted(gsm.GSM_CHARS), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=_gsm_text, ucs2=st.booleans(), flash=st.booleans(), report=st.booleans(),
       concat=st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.integers(1, 9))),
       validity=st.one_of(st.none(), st.integers(0, 10**8)),
       number=st.text(alphabet="0123456789", min_size=1, max_size=20),
       ton=st.sampled_from([0, 1, 2]))
def test_decode_of_encode_is_identity(text: str, ucs2: bool, flash: bool, report: bool,
                                      concat: tuple[int, int] | None, validity: int | None,
                                      number: str, ton: int) -> None:
    seg = segment(text, max_parts=1, ucs2=ucs2)
    udh = b""
    if concat is not None:
        ref, total = concat
        udh = concat_udh16(ref, total, total) if ref > 255 else concat_udh(ref, total, 1)
    dest = Address(number, ton, 1)
    data, length = pdu.encode_submit(dest, seg.coding, seg.parts[0][:120], udh=udh,
                                     flash=flash, report=report, validity=validity)
    back = pdu.decode(data)
    assert back == Submit(None, dest, seg.coding, seg.parts[0][:120], udh, flash, report,
                          False, None if validity is None else pdu.relative_validity(validity),
                          0, 0)
    assert length == len(data) - 1


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_the_decoder(raw: bytes) -> None:
    try:
        decoded = pdu.decode(raw)
    except PduError as exc:
        assert str(exc)  # one error type, saying what is wrong
        return
    assert isinstance(decoded, Deliver | StatusReport | Submit)


@settings(max_examples=1000, deadline=None)
@given(st.binary(min_size=1, max_size=60), st.integers(0, 255), st.booleans())
def test_deliver_with_random_user_data_never_crashes(ud: bytes, udl: int, udhi: bool) -> None:
    raw = _deliver(bytes.fromhex("0B916407281553F8"), 0x00, ud, udl, 0x44 if udhi else 0x04)
    try:
        d = pdu.decode(raw)
    except PduError:
        return
    assert isinstance(d, Deliver)
