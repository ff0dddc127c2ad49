"""The CIMD2 codec against frames computed by hand from the specification, the character
conversion of §8.1 both ways, and properties (hypothesis): decode(encode(x)) == x and
random bytes never crash a decoder.

The expected frames below are literals, their checksums summed by hand (the alive packet:
0x02 + '4' 0x34 + '0' 0x30 + ':' 0x3A + '0' 0x30 + '0' 0x30 + '1' 0x31 + TAB 0x09 =
314 = 0x13A, so "3A"), not computed by the code under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigate.carriers.cimd2 import codec
from omnigate.carriers.cimd2.codec import FrameError
from omnigate.model import FailureKind, Status
from omnigate.sim import cimd2 as sim_cimd2
from omnigate.sms import gsm
from omnigate.sms.coding import Coding

ALIVE = b"\x0240:001\t3A\x03"
LOGIN = b"\x0201:001\t010:MyUserId\t011:my()\t29\x03"
# The spec's 7-bit example of the first GSM characters (Example 22), with a status
# report request of 62 (every final outcome).
SUBMIT = (b"\x0203:003\t021:+358401234567\t033:_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,\t056:62\t"
          b"22\x03")
SUBMIT_RESP = b"\x0253:003\t021:+358401234567\t060:250317174640\tF2\x03"
REPORT = (b"\x0223:002\t021:+358401234567\t060:250317174640\t061:4\t063:250317174702\t"
          b"3F\x03")
REFUSED = b"\x0253:005\t900:300\t901:incorrect destination address\t1F\x03"


# --- framing ---------------------------------------------------------------------------


def test_packets_match_hand_computed_frames() -> None:
    assert codec.packet(codec.ALIVE, 1) == ALIVE
    assert codec.packet(codec.LOGIN, 1, codec.param(10, "MyUserId")
                        + codec.param(11, "my()")) == LOGIN
    body = (codec.param(21, "+358401234567") + codec.param(33, b"_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,")
            + codec.param(56, 62))
    assert codec.packet(codec.SUBMIT, 3, body) == SUBMIT
    assert codec.packet(codec.ALIVE, 1, with_checksum=False) == b"\x0240:001\t\x03"
    assert codec.checksum(b"\x0240:001\t") == b"3A"


def test_parse_hand_computed_frames() -> None:
    resp = codec.parse(SUBMIT_RESP[1:-1])
    assert (resp.op, resp.number, resp.checksum) == (53, 3, True)
    assert resp.params == {21: b"+358401234567", 60: b"250317174640"}
    assert resp.error is None and resp.name == "submit message response"
    report = codec.parse(REPORT[1:-1])
    assert (report.op, report.number) == (codec.DELIVER_STATUS_REPORT, 2)
    assert report.int(codec.STATUS_CODE) == 4 and report.text(63) == "250317174702"
    refused = codec.parse(REFUSED[1:-1])
    assert refused.error == 300 and refused.text(901) == "incorrect destination address"
    bare = codec.parse(b"51:001\t")
    assert bare == codec.Packet(51, 1, {}, False)
    assert codec.parse(ALIVE[1:-1]).params == {}


@pytest.mark.parametrize(("frame", "nack", "why"), [
    (b"53:003\t021:+358401234567\t060:250317174640\tF3", True, "checksum F2"),  # one off
    (b"5:003\t", False, "header"),
    (b"53-003\t", False, "header"),
    (b"5x:003\t", False, "header"),
    (b"53:003", False, "header"),
    (b"53:003\t021+358\t", False, "PPP:value"),
    (b"53:003\t02:1\t", False, "PPP:value"),
    (b"53:003\t021:1\tF", False, "checksum"),
    (b"53:003\t021:1\tZZ", False, "checksum"),
])
def test_parse_refuses(frame: bytes, nack: bool, why: str) -> None:
    with pytest.raises(FrameError) as e:
        codec.parse(frame)
    assert e.value.nack is nack and why.split()[0] in e.value.reason
    assert e.value.code == codec.ERR_SYNTAX


def test_param_table_checks_every_kind() -> None:
    ok = [(10, b"x" * 32), (19, b"128"), (21, b"+4670"), (30, b"255"), (32, b"050003"),
          (33, b"_Oa$"), (50, b"-1"), (56, b"62"), (60, b"250317174640"), (67, b"9")]
    for number, value in ok:
        assert codec.param_problem(number, value) is None, (number, value)
    bad = [(10, b"x" * 33, 8), (10, b"caf\xe9", 8), (19, b"129", 8), (19, b"", 8),
           (21, b"+46-70", 8), (21, b"", 8), (30, b"256", 8), (32, b"05000", 8),
           (32, b"zz", 8), (33, b"a\tb", 8), (56, b"-1", 8), (60, b"2503171746", 8),
           (67, b"0", 8), (999, b"1", 3), (33, b"x" * 481, 8)]
    for number, value, code in bad:
        problem = codec.param_problem(number, value)
        assert problem is not None and problem[0] == code, (number, value, problem)
    with pytest.raises(ValueError, match="at most 32"):
        codec.param(11, "p" * 33)
    assert codec.param(21, "+4670") == b"021:+4670\t"
    assert codec.param(56, 62) == b"056:62\t"


def test_describe_names_parameters_and_hides_the_password() -> None:
    line = codec.describe(codec.parse(LOGIN[1:-1]))
    assert line == "login 001 (user identity='MyUserId', password='***')"
    assert "my()" not in line
    assert codec.describe(codec.parse(b"77:002\t999:x\t")).startswith("operation 77 002")


def test_max_packet_is_derived_from_the_table() -> None:
    longest = sum(4 + p.max_length + 1 for p in codec.PARAMETERS.values())
    assert longest + 11 == codec.MAX_PACKET
    assert 1000 < codec.MAX_PACKET < 2048  # and the simulator reads up to 2048


# --- error and status tables -------------------------------------------------------------


def test_error_kinds() -> None:
    assert codec.error_kind(10) is FailureKind.THROTTLED
    assert codec.error_kind(300) is FailureKind.PERMANENT
    assert codec.error_kind(302) is FailureKind.PERMANENT
    assert codec.error_kind(1) is FailureKind.TEMPORARY
    assert codec.error_kind(6) is FailureKind.TEMPORARY
    assert codec.error_kind(9) is FailureKind.TEMPORARY
    assert codec.error_kind(777) is FailureKind.TEMPORARY  # unknown: nothing lost
    assert codec.error_text(300) == "error 300 incorrect destination address"
    assert codec.error_text(300, "no such number") == (
        "error 300 incorrect destination address (no such number)")
    assert codec.error_text(777) == "error 777 unknown error"


def test_status_codes() -> None:
    finals = {c: s for c, (_, s) in codec.STATUS_CODES.items() if s is not None}
    assert finals == {2: Status.EXPIRED, 3: Status.UNDELIVERED, 4: Status.DELIVERED,
                      6: Status.UNDELIVERED, 7: Status.UNDELIVERED, 8: Status.UNDELIVERED,
                      9: Status.UNDELIVERED}
    assert codec.REPORT_FINAL == 62


# --- character conversion (§8.1) ------------------------------------------------------------

# Every GSM character and its 7-bit CIMD2 form, written out from the specification's table.
SPEC_TABLE = {
    "@": "_Oa", "£": "_L-", "$": "$", "¥": "_Y-", "è": "_e`", "é": "_e'", "ù": "_u`",
    "ì": "_i`", "ò": "_o`", "Ç": "_C,", "\n": "\n", "Ø": "_O/", "ø": "_o/", "\r": "\r",
    "Å": "_A*", "å": "_a*", "Δ": "_gd", "_": "_--", "Φ": "_gf", "Γ": "_gg", "Λ": "_gl",
    "Ω": "_go", "Π": "_gp", "Ψ": "_gi", "Σ": "_gs", "Θ": "_gt", "Ξ": "_gx", "Æ": "_AE",
    "æ": "_ae", "ß": "_ss", "É": "_E'", " ": " ", "!": "!", '"': "_qq", "#": "#", "¤": "_ox",
    "%": "%", "&": "&", "'": "'", "(": "(", ")": ")", "*": "*", "+": "+", ",": ",", "-": "-",
    ".": ".", "/": "/", ":": ":", ";": ";", "<": "<", "=": "=", ">": ">", "?": "?",
    "¡": "_!!", "Ä": '_A"', "Ö": '_O"', "Ñ": "_N~", "Ü": '_U"', "§": "_so", "¿": "_??",
    "ä": '_a"', "ö": '_o"', "ñ": "_n~", "ü": '_u"', "à": "_a`",
    # the extension table: _XX and the character sharing the code
    "|": "_XX_!!", "^": "_XX_gl", "€": "_XXe", "{": "_XX(", "}": "_XX)", "\f": "_XX\n",
    "[": "_XX<", "]": "_XX>", "~": "_XX=", "\\": "_XX/",
}
SPEC_TABLE.update({c: c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"})


def test_every_gsm_character_converts_as_the_spec_says() -> None:
    assert set(SPEC_TABLE) == set(gsm.GSM_CHARS)
    for char, cimd in SPEC_TABLE.items():
        assert codec.text_to_user_data(char) == cimd.encode("latin-1"), char
        assert codec.user_data_to_text(cimd.encode("latin-1")) == char, char
        assert sim_cimd2.text_to_ud(char) == cimd, char  # the simulator's own table agrees
        assert sim_cimd2.ud_to_text(cimd) == (char, 2 if cimd.startswith("_XX") else 1)


def test_spec_examples_7bit_and_8bit_link() -> None:
    # Example 22 (7-bit link) and Example 21 (8-bit link, ISO Latin-1 octets).
    assert codec.user_data_to_text(b"_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,") == "@£$¥èéùìòÇ"
    assert codec.user_data_to_text("@£$¥èéùìòÇ".encode("latin-1")) == "@£$¥èéùìòÇ"
    assert sim_cimd2.ud_to_text("@£$¥èéùìòÇ") == ("@£$¥èéùìòÇ", 10)


def test_user_data_decoding_is_lenient() -> None:
    assert codec.user_data_to_text(b"a_zzb") == "a_zzb"  # unknown combination: kept
    assert codec.user_data_to_text(b"x_XX") == "x "  # trailing escape: a space
    assert codec.user_data_to_text(b"_XX_XX") == " "  # escape escape: SS2, a space
    assert codec.user_data_to_text(b"_XXA") == "A"  # no extension: the basic character
    assert codec.user_data_to_text(b"_XX_a*") == "å"
    with pytest.raises(sim_cimd2.UserDataError):  # the simulator is strict about the same
        sim_cimd2.ud_to_text("a_zzb")
    with pytest.raises(sim_cimd2.UserDataError):
        sim_cimd2.ud_to_text("_XXA")
    with pytest.raises(sim_cimd2.UserDataError):
        sim_cimd2.ud_to_text("[")  # not in the GSM alphabet on its own


def test_septets_refuse_octets_above_0x7f() -> None:
    with pytest.raises(ValueError, match="0x7F"):
        codec.septets_to_user_data(b"\x00\x80")
    with pytest.raises(ValueError):
        codec.text_to_user_data("Привет")


def test_dcs_and_validity() -> None:
    assert codec.dcs_coding(0) is Coding.GSM7 and codec.dcs_coding(0x08) is Coding.UCS2
    assert codec.dcs_coding(0x04) is None and codec.dcs_coding(0x24) is None
    assert codec.dcs_coding(0x10) is Coding.GSM7 and codec.dcs_coding(0x18) is Coding.UCS2
    assert codec.dcs_coding(0xF4) is None and codec.dcs_coding(0xF0) is Coding.GSM7
    assert codec.dcs_coding(0xE0) is Coding.UCS2 and codec.dcs_coding(0x90) is None
    assert codec.outbound_dcs(Coding.GSM7, False) is None
    assert codec.outbound_dcs(Coding.GSM7, True) == 0x10
    assert codec.outbound_dcs(Coding.UCS2, True) == 0x18
    # TS 23.040 §9.2.3.12.1 boundaries; never longer than asked.
    for seconds, vp in [(60, 0), (300, 0), (3600, 11), (12 * 3600, 143), (24 * 3600, 167),
                        (2 * 86400, 168), (30 * 86400, 196), (35 * 86400, 197),
                        (10 ** 9, 255)]:
        assert codec.relative_validity(seconds) == vp, seconds
    for vp in range(256):
        period = codec.relative_validity_seconds(vp)
        assert codec.relative_validity(period) == vp
        assert codec.relative_validity_seconds(codec.relative_validity(period + 59)) <= period + 59


# --- properties ------------------------------------------------------------------------------

_values = {
    codec.Kind.STR: st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=11)
    .map(str.encode),
    codec.Kind.ADDR: st.from_regex(r"\+?[0-9]{1,19}", fullmatch=True).map(str.encode),
    codec.Kind.HEX: st.binary(max_size=140).map(lambda b: b.hex().encode()),
    codec.Kind.TIME: st.from_regex(r"[0-9]{12}", fullmatch=True).map(str.encode),
    codec.Kind.UD: st.text(alphabet=sorted(gsm.GSM_CHARS), max_size=160)
    .map(codec.text_to_user_data).filter(lambda v: len(v) <= 480),
}


def _value(p: codec.Param) -> st.SearchStrategy[bytes]:
    if p.kind is codec.Kind.INT:
        return st.integers(p.low, p.high).map(lambda n: b"%d" % n)
    return _values[p.kind]


_params = st.dictionaries(st.sampled_from(sorted(codec.PARAMETERS)), st.none(),
                          max_size=8).flatmap(
    lambda keys: st.fixed_dictionaries({n: _value(codec.PARAMETERS[n]) for n in keys}))


@settings(max_examples=300, deadline=None)
@given(op=st.integers(0, 99), number=st.integers(0, 999), params=_params,
       with_checksum=st.booleans())
def test_parse_inverts_packet(op: int, number: int, params: dict[int, bytes],
                              with_checksum: bool) -> None:
    body = b"".join(codec.param(n, v) for n, v in params.items())
    raw = codec.packet(op, number, body, with_checksum)
    assert raw[0] == codec.STX and raw[-1] == codec.ETX and raw.count(b"\x03") == 1
    pkt = codec.parse(raw[1:-1])
    assert pkt == codec.Packet(op, number, params, with_checksum)
    assert codec.problems(pkt) == []


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    try:
        pkt = codec.parse(data)
    except FrameError:
        return
    codec.problems(pkt)
    codec.describe(pkt)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=sorted(gsm.GSM_CHARS), max_size=200))
def test_user_data_round_trip(text: str) -> None:
    ud = codec.text_to_user_data(text)
    assert codec.user_data_to_text(ud) == text
    assert ud.translate(None, bytes(range(32, 127)) + b"\r\n") == b""  # 7-bit safe
    assert sim_cimd2.ud_to_text(ud.decode("latin-1"))[0] == text
    assert sim_cimd2.text_to_ud(text) == ud.decode("latin-1")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_user_data_decoding(data: bytes) -> None:
    assert isinstance(codec.user_data_to_text(data), str)
