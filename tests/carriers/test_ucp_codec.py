"""UCP/EMI codec against frames computed by hand from the spec (EMI 4.x §2), plus
property tests: encode/decode round trips, and random bytes never crash a decoder."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigate.carriers.ucp import codec
from omnigate.carriers.ucp.codec import CodecError, HeaderError
from omnigate.model import FailureKind
from omnigate.sms.coding import Coding

# Frames whose LEN and checksum were worked out by hand: LEN counts the characters
# between STX and ETX, CS sums the octets from TRN through the last '/'.
SPEC_OT30 = b"01/00045/O/30/66677789///1//////68656C6C6F/CE"  # EMI §2.1 example
SPEC_OT30_ACK = b"01/00041/R/30/A//66677789:180594141236/F3"
LOGIN = b"00/00054/O/60/4670000/6/5/1/736563726574//0100//////39"
LOGIN_ACK = b"00/00019/R/60/A//6D"
LOGIN_NACK = b"00/00044/R/60/N/07/Authentication failure/D6"
ALERT = b"05/00029/O/31/4670000/0539/5F"
SUBMIT_ALNUM = b"01/00079/O/51/46701234567/0641E110//1//3/////////////3//4869////////5039/////03"
SUBMIT_UCS2_PART = (b"02/00094/O/51/46701234567/72000/////////////////4/16/0416//////////"
                    b"0106050003070302020118///C2")
SUBMIT_ACK = b"01/00044/R/51/A//46701234567:010203040506/67"
SUBMIT_NACK = b"01/00038/R/51/N/24/Message too long/18"
MO = b"00/00083/O/52/4670000/46709999/////////////010203040506////3//48656A/////////////C8"
MO_ACK = b"00/00040/R/52/A//4670000:010203040506/87"
DLR = (b"01/00100/O/53/46701234567/4670000/////////////010203040506/0/000/010203040510/3//"
       b"4F4B/////////////FA")


def wrap(inner: bytes) -> bytes:
    return b"\x02" + inner + b"\x03"


# --- frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("inner", [SPEC_OT30, SPEC_OT30_ACK, LOGIN, LOGIN_ACK, LOGIN_NACK,
                                   ALERT, SUBMIT_ALNUM, SUBMIT_UCS2_PART, SUBMIT_ACK,
                                   SUBMIT_NACK, MO, MO_ACK, DLR])
def test_hand_computed_frames_parse_and_re_encode(inner: bytes) -> None:
    fr = codec.parse_frame(inner)
    assert codec.frame(fr.trn, fr.kind, fr.ot, b"/".join(fr.fields)) == wrap(inner)


def test_spec_example_fields() -> None:
    fr = codec.parse_frame(SPEC_OT30_ACK)
    assert (fr.trn, fr.kind, fr.ot) == (1, b"R", 30)
    assert fr.fields == [b"A", b"", b"66677789:180594141236"]
    assert codec.checksum(SPEC_OT30[:-2]) == b"CE"


def test_operations_we_send_match_hand_computed_frames() -> None:
    assert codec.frame(0, b"O", 60, codec.login_data("4670000", "secret", "6", "5")) == \
        wrap(LOGIN)
    assert codec.frame(5, b"O", 31, codec.alert_data("4670000")) == wrap(ALERT)
    assert codec.frame(0, b"R", 52, codec.ack_data(52, "4670000:010203040506")) == wrap(MO_ACK)
    assert codec.frame(0, b"R", 60, codec.ack_data(60)) == wrap(LOGIN_ACK)
    data = codec.submit_data(adc=b"46701234567", oadc=codec.alphanumeric_oadc("ABC").encode(),
                             otoa=b"5039", mt=b"3", msg=b"4869", nrq=b"1", nt=b"3")
    assert codec.frame(1, b"O", 51, data) == wrap(SUBMIT_ALNUM)
    data = codec.submit_data(adc=b"46701234567", oadc=b"72000", mt=b"4", nb=b"16", msg=b"0416",
                             xser=codec.xser(bytes((5, 0, 3, 7, 3, 2)), 0x18).encode())
    assert codec.frame(2, b"O", 51, data) == wrap(SUBMIT_UCS2_PART)


def test_wrong_checksum_and_length_keep_the_header() -> None:
    bad_cs = SUBMIT_ACK[:-2] + b"68"
    with pytest.raises(HeaderError) as e:
        codec.parse_frame(bad_cs)
    assert (e.value.ec, e.value.trn, e.value.kind, e.value.ot) == ("01", 1, b"R", 51)
    bad_len = ALERT.replace(b"00029", b"00030")
    with pytest.raises(HeaderError) as e:
        codec.parse_frame(bad_len)
    assert e.value.ec == "02" and "LEN says 30" in e.value.reason
    for junk in (b"", b"xx/00019/R/60/A//6D", b"00/00019/X/60/A//6D", b"00-00019/R/60/A//6D"):
        with pytest.raises(CodecError) as e2:
            codec.parse_frame(junk)
        assert e2.value.ec == "02"
    assert codec.parse_frame(LOGIN_ACK[:-2] + b"6d").ot == 60  # lower-case hex is read


def test_frame_length_limit() -> None:
    with pytest.raises(CodecError):
        codec.frame(0, b"O", 51, b"A" * codec.MAX_FRAME)


# --- fields -----------------------------------------------------------------------------


def test_operation_table_is_the_spec() -> None:
    assert len(codec.FIELDS_5X) == 33 and len(codec.FIELDS_60) == 12
    op = codec.OPERATIONS[51]
    assert (op.index("AdC"), op.index("VP"), op.index("MT"), op.index("Msg"),
            op.index("OTOA"), op.index("XSer")) == (0, 12, 18, 20, 28, 30)
    assert codec.op_name(53) == "OT 53 (delivery notification)" and codec.op_name(1) == "OT 01"


def test_encode_and_decode_fields() -> None:
    raw = codec.encode_fields(codec.FIELDS_31, {"AdC": "123", "PID": "0539"})
    assert raw == b"123/0539"
    assert codec.decode_fields(codec.FIELDS_31, raw.split(b"/")) == {"AdC": "123", "PID": "0539"}
    for bad in ({"Nope": "1"}, {"AdC": "1/2"}, {"PID": "05390"}, {"AdC": "Å"}):
        with pytest.raises(CodecError):
            codec.encode_fields(codec.FIELDS_31, bad)
    with pytest.raises(CodecError):
        codec.decode_fields(codec.FIELDS_31, [b"1"])


def test_alphanumeric_oadc() -> None:
    # 'A' 'B' 'C' = septets 41 42 43, packed LSB first: 41 E1 10; 21 bits = 6 semi-octets
    assert codec.alphanumeric_oadc("ABC") == "0641E110"
    eleven = codec.alphanumeric_oadc("Omnigate123")
    assert len(eleven) == 22  # EMI §5.2: 22 characters carry 11
    for text in ("ABC", "Omnigate", "Omnigate123", "Ä@_ {x}"[:5]):
        assert codec.decode_oadc(codec.alphanumeric_oadc(text), "5039") == text
    assert codec.decode_oadc("4670000", "") == "4670000"
    for bad in ("", "TwelveChars!", "Привет"):
        with pytest.raises(CodecError):
            codec.alphanumeric_oadc(bad)
    with pytest.raises(CodecError):
        codec.decode_oadc("0Gzz", "5039")


def test_password_is_ira_encoded() -> None:
    assert codec.ira_hex("secret") == "736563726574"
    assert codec.ira_hex("pässwd") == "70E473737764"  # ISO 8859-1 beyond ASCII
    with pytest.raises(CodecError):
        codec.ira_hex("пароль")


def test_xser() -> None:
    assert codec.xser(bytes((5, 0, 3, 7, 3, 2)), None) == "0106050003070302"
    assert codec.xser(None, 8) == "020108"
    assert codec.parse_xser("0106050003070302020108") == {1: bytes((5, 0, 3, 7, 3, 2)),
                                                          2: b"\x08"}
    for bad in ("01", "0105050003", "zz"):
        with pytest.raises(CodecError):
            codec.parse_xser(bad)


def test_times() -> None:
    tz = codec.zone("Europe/Stockholm")
    assert codec.ucp_time(1_900_000_000, codec.zone("UTC")) == "1703301746"
    assert codec.ucp_time(1_900_000_000, tz) == "1703301846"  # CET, UTC+1 in March
    assert codec.parse_scts("010203040506", UTC) == datetime(2003, 2, 1, 4, 5, 6, tzinfo=UTC)
    assert codec.parse_scts("0102030405", UTC) == datetime(2003, 2, 1, 4, 5, tzinfo=UTC)
    assert codec.parse_scts("320203040506", UTC) is None
    assert codec.parse_scts("abc", UTC) is None


@pytest.mark.parametrize(("dcs", "coding"), [
    (0x00, Coding.GSM7), (0x08, Coding.UCS2), (0x04, None), (0x10, Coding.GSM7),
    (0x18, Coding.UCS2), (0x24, None), (0xC0, Coding.GSM7), (0xE0, Coding.UCS2),
    (0xF0, Coding.GSM7), (0xF4, None), (0x80, None)])
def test_dcs_coding(dcs: int, coding: Coding | None) -> None:
    assert codec.dcs_coding(dcs) is coding


def test_error_table() -> None:
    kinds = {ec: kind for ec, (_, kind) in codec.ERRORS.items()}
    assert kinds["01"] is FailureKind.TEMPORARY
    assert kinds["02"] is FailureKind.PERMANENT
    assert kinds["04"] is FailureKind.THROTTLED
    for ec in ("05", "06", "08", "22", "23", "24", "26", "28"):
        assert kinds[ec] is FailureKind.PERMANENT, ec
    for ec in ("07", "30", "50", "55"):
        assert kinds[ec] is FailureKind.TEMPORARY, ec
    assert codec.error_kind("93") is FailureKind.TEMPORARY  # proprietary: unknown
    assert codec.error_text("24", "too long") == "EC 24 (message too long): too long"
    assert codec.error_text("93") == "EC 93"


# --- what the SMSC sends ------------------------------------------------------------------


def test_parse_deliver_and_notification() -> None:
    d = codec.parse_deliver(codec.parse_frame(MO).fields)
    assert (d.recipient, d.sender, d.scts, d.coding, d.data, d.udh) == (
        "4670000", "46709999", "010203040506", Coding.GSM7, b"Hej", None)
    n = codec.parse_notification(codec.parse_frame(DLR).fields)
    assert (n.adc, n.scts, n.dst, n.rsn, n.dscts, n.text) == (
        "46701234567", "010203040506", "0", "000", "010203040510", "OK")
    assert codec.carrier_ref(n.adc, n.scts) == "46701234567:010203040506"


def fields_5x(**values: str) -> list[bytes]:
    f = [b""] * codec.N_5X
    for name, value in values.items():
        f[codec.OPERATIONS[52].index(name)] = value.encode()
    return f


def test_parse_deliver_variants() -> None:
    ucs2 = codec.parse_deliver(fields_5x(AdC="1", OAdC=codec.alphanumeric_oadc("Bank"),
                                         OTOA="5039", MT="4", NB="16", Msg="0416",
                                         XSer="0106050003070302020108"))
    assert (ucs2.sender, ucs2.coding, ucs2.data, ucs2.udh) == (
        "Bank", Coding.UCS2, "Ж".encode("utf-16-be"), bytes((5, 0, 3, 7, 3, 2)))
    packed = codec.parse_deliver(fields_5x(AdC="1", OAdC="2", MT="4", NB="21", Msg="41E110",
                                           XSer="020100"))
    assert (packed.coding, packed.data) == (Coding.GSM7, b"ABC")  # 7-bit packed TMsg
    binary = codec.parse_deliver(fields_5x(AdC="1", OAdC="2", MT="4", NB="16", Msg="00FF"))
    assert (binary.coding, binary.data) == (None, b"\x00\xff")
    for bad, ec in ((dict(MT="3", Msg="4G"), "02"), (dict(MT="3", Msg="80"), "02"),
                    (dict(MT="4", NB="8", Msg="0000"), "02"), (dict(MT="2", Msg=""), "23"),
                    (dict(MT="3", Msg="41", XSer="01"), "02")):
        with pytest.raises(CodecError) as e:
            codec.parse_deliver(fields_5x(AdC="1", OAdC="2", **bad))
        assert e.value.ec == ec, bad
    with pytest.raises(CodecError):
        codec.parse_notification(fields_5x(AdC="1", SCTS="0102"))


# --- properties ---------------------------------------------------------------------------

_field_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                             exclude_characters="/"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(trn=st.integers(0, 99), kind=st.sampled_from([b"O", b"R"]), ot=st.integers(0, 99),
       fields=st.lists(_field_text, min_size=1, max_size=40))
def test_frame_round_trip(trn: int, kind: bytes, ot: int, fields: list[str]) -> None:
    data = "/".join(fields).encode()
    raw = codec.frame(trn, kind, ot, data)
    assert raw[0] == codec.STX and raw[-1] == codec.ETX
    fr = codec.parse_frame(raw[1:-1])
    assert (fr.trn, fr.kind, fr.ot, b"/".join(fr.fields)) == (trn, kind, ot, data)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(
    "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿axyzäöñüà{}[]€"),
    min_size=1, max_size=11))
def test_alphanumeric_oadc_round_trip(text: str) -> None:
    try:
        encoded = codec.alphanumeric_oadc(text)
    except CodecError:
        assert sum(2 if c in "{}[]€" else 1 for c in text) > 11  # escapes take two septets
        return
    assert len(encoded) <= 22
    assert codec.decode_oadc(encoded, "5039") == text


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_frame_parser(raw: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.parse_frame(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=33, max_size=33))
def test_random_fields_never_crash_the_operation_parsers(fields: list[bytes]) -> None:
    for parse in (codec.parse_deliver, codec.parse_notification):
        with contextlib.suppress(CodecError):
            parse(fields)
