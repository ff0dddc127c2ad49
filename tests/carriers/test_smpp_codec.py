"""SMPP codec: every encoder byte for byte against smpplib, decoders on smpplib's output."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from typing import Any

import pytest
from smpplib import smpp as smpplib_smpp

from omnigate.carriers.smpp import codec
from omnigate.model import FailureKind, Status
from omnigate.sms.coding import Coding
from omnigate.sms.segment import concat_udh


class _Client:
    """What smpplib's PDU classes need of a client: a sequence source."""

    sequence = None

    def next_sequence(self) -> int:
        return 1


def smpplib_pdu(command: str, sequence: int, **fields: Any) -> bytes:
    p = smpplib_smpp.make_pdu(command, client=_Client(), **fields)
    p.sequence = sequence
    return p.generate()


def smpplib_submit(sequence: int, **fields: Any) -> bytes:
    base = dict(service_type="", source_addr_ton=1, source_addr_npi=1, source_addr="46700000001",
                dest_addr_ton=1, dest_addr_npi=1, destination_addr="46701234567",
                esm_class=0, registered_delivery=0, data_coding=0)
    base.update(fields)
    return smpplib_pdu("submit_sm", sequence, **base)


SRC = codec.address(1, 1, "46700000001")
DST = codec.address(1, 1, "46701234567")
GSM = bytes(range(0x20, 0x20 + 153))  # unpacked septets, as a part carries them
UCS2 = "Привет, мир! ✓".encode("utf-16-be")


# --- submit_sm, byte for byte ---------------------------------------------------------


def test_submit_sm_gsm_matches_smpplib() -> None:
    ours = codec.submit_sm(7, SRC, DST, GSM, registered_delivery=1)
    assert ours == smpplib_submit(7, registered_delivery=1, short_message=GSM)


def test_submit_sm_ucs2_flash_matches_smpplib() -> None:
    dc = codec.outbound_coding(Coding.UCS2, flash=True)
    assert dc == 0x18
    ours = codec.submit_sm(0x7FFFFFFF, SRC, DST, UCS2, data_coding=dc)
    assert ours == smpplib_submit(0x7FFFFFFF, data_coding=0x18, short_message=UCS2)


def test_submit_sm_udh_matches_smpplib() -> None:
    sm = concat_udh(0xAB, 3, 2) + GSM
    ours = codec.submit_sm(3, SRC, DST, sm, esm_class=codec.ESM_UDHI, registered_delivery=1)
    assert ours == smpplib_submit(3, esm_class=0x40, registered_delivery=1, short_message=sm)


def test_submit_sm_sar_matches_smpplib() -> None:
    ours = codec.submit_sm(4, SRC, DST, UCS2, data_coding=8, tlvs=codec.sar_tlvs(0x1234, 3, 1))
    theirs = smpplib_submit(4, data_coding=8, short_message=UCS2, sar_msg_ref_num=0x1234,
                            sar_total_segments=3, sar_segment_seqnum=1)
    assert ours == theirs


def test_submit_sm_payload_matches_smpplib() -> None:
    big = bytes(range(256)) * 3  # longer than short_message can hold
    ours = codec.submit_sm(5, SRC, DST, b"", tlvs=codec.payload_tlv(big))
    assert ours == smpplib_submit(5, message_payload=big)


def test_submit_sm_alphanumeric_source_and_validity_match_smpplib() -> None:
    src = codec.address(5, 0, "Omnigate £", "source")
    validity = codec.smpp_time(1_700_000_000)
    ours = codec.submit_sm(6, src, DST, GSM[:10], validity_period=validity, data_coding=0x10)
    theirs = smpplib_submit(6, source_addr_ton=5, source_addr_npi=0, source_addr="Omnigate £",
                            validity_period=validity.decode(), data_coding=0x10,
                            short_message=GSM[:10])
    assert ours == theirs


def test_submit_sm_empty_source_matches_smpplib() -> None:
    ours = codec.submit_sm(8, b"\x00\x00\x00", DST, b"hi")
    theirs = smpplib_submit(8, source_addr_ton=0, source_addr_npi=0, source_addr="",
                            short_message=b"hi")
    assert ours == theirs


def test_smpp_time_is_absolute_utc() -> None:
    # 2023-11-14 22:13:20 UTC
    assert codec.smpp_time(1_700_000_000) == b"231114221320000+"
    assert len(codec.smpp_time(0)) == codec.TIME_MAX


def test_submit_sm_limits() -> None:
    with pytest.raises(ValueError, match="254"):
        codec.submit_sm_body(SRC, DST, b"x" * 255)
    with pytest.raises(ValueError, match="20 octets"):
        codec.address(1, 1, "1" * 21, "destination")
    with pytest.raises(ValueError, match="cannot carry"):
        codec.address(5, 0, "Δelta", "source")
    with pytest.raises(ValueError, match="out of range"):
        codec.address(256, 0, "x")
    with pytest.raises(ValueError, match="at most 65535"):
        codec.payload_tlv(b"x" * 0x10000)


# --- other requests, byte for byte ---------------------------------------------------


@pytest.mark.parametrize(("command_id", "name"), [
    (codec.BIND_TRANSMITTER, "bind_transmitter"),
    (codec.BIND_RECEIVER, "bind_receiver"),
    (codec.BIND_TRANSCEIVER, "bind_transceiver"),
])
def test_bind_matches_smpplib(command_id: int, name: str) -> None:
    ours = codec.bind(command_id, 1, "omnigate", "secret", "VMA")
    theirs = smpplib_pdu(name, 1, system_id="omnigate", password="secret", system_type="VMA")
    assert ours == theirs


def test_bind_limits() -> None:
    with pytest.raises(ValueError, match="8 octets"):
        codec.bind(codec.BIND_TRANSCEIVER, 1, "id", "123456789")
    with pytest.raises(ValueError, match="15 octets"):
        codec.bind(codec.BIND_TRANSCEIVER, 1, "x" * 16, "pw")
    with pytest.raises(ValueError, match="not a bind"):
        codec.bind(codec.SUBMIT_SM, 1, "id", "pw")


@pytest.mark.parametrize(("command_id", "name", "status"), [
    (codec.ENQUIRE_LINK, "enquire_link", 0),
    (codec.ENQUIRE_LINK_RESP, "enquire_link_resp", 0),
    (codec.UNBIND, "unbind", 0),
    (codec.UNBIND_RESP, "unbind_resp", 0),
    (codec.GENERIC_NACK, "generic_nack", codec.ESME_RINVCMDID),
])
def test_header_only_matches_smpplib(command_id: int, name: str, status: int) -> None:
    assert codec.header_only(command_id, 42, status) == smpplib_pdu(name, 42, status=status)


def test_deliver_sm_resp_matches_smpplib() -> None:
    assert codec.deliver_sm_resp(9) == smpplib_pdu("deliver_sm_resp", 9)
    assert codec.deliver_sm_resp(9, codec.ESME_RSYSERR) == smpplib_pdu(
        "deliver_sm_resp", 9, status=codec.ESME_RSYSERR)


# --- responses ------------------------------------------------------------------------


def test_submit_sm_resp_message_id() -> None:
    raw = smpplib_pdu("submit_sm_resp", 3, message_id="a1b2c3")
    length, command_id, status, seq = codec.HEADER.unpack_from(raw)
    assert (length, command_id, status, seq) == (len(raw), codec.SUBMIT_SM_RESP, 0, 3)
    assert codec.message_id(raw[16:]) == "a1b2c3"
    assert codec.message_id(b"") == ""  # error answers carry no body (§4.4.2)
    assert codec.message_id(b"no-nul") == "no-nul"  # lenient: the part went out
    assert len(codec.message_id(b"x" * 100 + b"\x00")) == codec.MESSAGE_ID_MAX


def test_bind_resp_system_id() -> None:
    raw = smpplib_pdu("bind_transceiver_resp", 1, system_id="SMSC", sc_interface_version=0x34)
    assert codec.bind_resp_system_id(raw[16:]) == "SMSC"
    assert codec.bind_resp_system_id(b"") == ""


# --- deliver_sm -----------------------------------------------------------------------


def _deliver(**fields: Any) -> codec.DeliverSm:
    base = dict(service_type="", source_addr_ton=1, source_addr_npi=1,
                source_addr="46701234567", dest_addr_ton=0, dest_addr_npi=1,
                destination_addr="72000", esm_class=0, data_coding=0)
    base.update(fields)
    raw = smpplib_pdu("deliver_sm", 5, **base)
    assert codec.HEADER.unpack_from(raw)[1] == codec.DELIVER_SM
    return codec.decode_deliver_sm(raw[16:])


def test_deliver_sm_mo_gsm() -> None:
    d = _deliver(short_message=b"Hello")
    assert (d.source_ton, d.source_npi, d.source_addr) == (1, 1, b"46701234567")
    assert (d.dest_ton, d.dest_npi, d.destination_addr) == (0, 1, b"72000")
    assert d.short_message == b"Hello" and d.user_data == b"Hello"
    assert not d.is_receipt and d.tlvs == {}


def test_deliver_sm_mo_ucs2_udh_and_sar() -> None:
    sm = concat_udh(7, 2, 1) + UCS2
    d = _deliver(esm_class=0x40, data_coding=8, short_message=sm, sar_msg_ref_num=7,
                 sar_total_segments=2, sar_segment_seqnum=1)
    assert d.esm_class == 0x40 and d.data_coding == 8 and d.short_message == sm
    assert d.tlvs[codec.TAG_SAR_MSG_REF_NUM] == b"\x00\x07"
    assert d.tlvs[codec.TAG_SAR_TOTAL_SEGMENTS] == b"\x02"


def test_deliver_sm_payload() -> None:
    d = _deliver(message_payload=b"long text " * 40)
    assert d.short_message == b"" and d.user_data == b"long text " * 40


def test_receipt_from_tlvs_preferred_over_text() -> None:
    d = _deliver(esm_class=0x04, receipted_message_id="ABC123", message_state=5,
                 short_message=b"id:zzz sub:001 dlvrd:001 submit date:2311142213 "
                               b"done date:2311142214 stat:DELIVRD err:000 text:hi")
    assert d.is_receipt
    r = codec.parse_receipt(d)
    assert r is not None
    assert r.message_id == "ABC123"
    assert r.status is Status.UNDELIVERED and r.stat == "UNDELIV"
    assert r.done_at == datetime(2023, 11, 14, 22, 14, tzinfo=UTC)


@pytest.mark.parametrize(("stat", "status"), [
    ("DELIVRD", Status.DELIVERED), ("EXPIRED", Status.EXPIRED),
    ("UNDELIV", Status.UNDELIVERED), ("REJECTD", Status.UNDELIVERED),
    ("DELETED", Status.UNDELIVERED), ("UNKNOWN", Status.UNDELIVERED),
    ("ENROUTE", None), ("ACCEPTD", None), ("BOGUS", None),
])
def test_receipt_from_appendix_b_text(stat: str, status: Status | None) -> None:
    err = "000" if stat == "DELIVRD" else "001"
    text = (f"id:0123456789 sub:001 dlvrd:001 submit date:2311142213 done date:231114221459 "
            f"stat:{stat} err:{err} text:hello").encode()
    r = codec.parse_receipt(_deliver(esm_class=0x04, short_message=text))
    assert r is not None
    assert r.message_id == "0123456789" and r.status is status and r.stat == stat
    assert r.done_at == datetime(2023, 11, 14, 22, 14, 59, tzinfo=UTC)
    assert r.error == (None if stat == "DELIVRD" else f"{stat} err:001")


def test_receipt_variants() -> None:
    # lower case keys, no done date, esm_class 0 but receipted_message_id present
    d = _deliver(short_message=b"ID:77 STAT:delivrd ERR:0", receipted_message_id="77")
    assert d.is_receipt
    r = codec.parse_receipt(d)
    assert r is not None and (r.message_id, r.status, r.error, r.done_at) == (
        "77", Status.DELIVERED, None, None)
    # network_error_code TLV joins the error (§5.3.2.31)
    d = _deliver(esm_class=0x04, receipted_message_id="88", message_state=8,
                 network_error_code=b"\x01\x00\x22")
    r = codec.parse_receipt(d)
    assert r is not None and r.status is Status.UNDELIVERED
    assert r.error == "REJECTD err:000 net:1:34"
    # a receipt that names no message
    assert codec.parse_receipt(_deliver(esm_class=0x04, short_message=b"stat:DELIVRD")) is None
    # 'dlvrd:' must not be read as 'id:'
    d = _deliver(esm_class=0x04, short_message=b"sub:1 dlvrd:1 id:X9 stat:EXPIRED")
    r = codec.parse_receipt(d)
    assert r is not None and r.message_id == "X9" and r.status is Status.EXPIRED


def _body(*chunks: bytes) -> bytes:
    return b"".join(chunks)


def test_deliver_sm_errors_name_a_status() -> None:
    head = _body(b"\x00", b"\x01\x01", b"4670\x00", b"\x00\x01", b"720\x00",
                 b"\x00\x00\x00", b"\x00", b"\x00", b"\x00\x00\x00\x00")
    ok = head + b"\x02hi"
    assert codec.decode_deliver_sm(ok).short_message == b"hi"
    assert codec.decode_deliver_sm(ok + b"\x00\x00").tlvs == {}  # padding under 4 octets
    with pytest.raises(codec.CodecError) as e:
        codec.decode_deliver_sm(head + b"\x09hi")
    assert e.value.status == codec.ESME_RINVMSGLEN
    with pytest.raises(codec.CodecError) as e:
        codec.decode_deliver_sm(ok + struct.pack(">HH", 0x0424, 10) + b"abc")
    assert e.value.status == codec.ESME_RINVOPTPARSTREAM
    with pytest.raises(codec.CodecError, match="ends inside"):
        codec.decode_deliver_sm(head[:-2])
    with pytest.raises(codec.CodecError, match="longer than 20"):
        codec.decode_deliver_sm(b"\x00\x01\x01" + b"9" * 30 + b"\x00" + head[8:])
    with pytest.raises(codec.CodecError, match="no terminating NUL"):
        codec.decode_deliver_sm(b"\x00\x01\x01" + b"9" * 5)


# --- tables ---------------------------------------------------------------------------


def test_status_table() -> None:
    assert codec.status_kind(codec.ESME_RTHROTTLED) is FailureKind.THROTTLED
    assert codec.status_kind(codec.ESME_RMSGQFUL) is FailureKind.THROTTLED
    assert codec.status_kind(codec.ESME_RSYSERR) is FailureKind.TEMPORARY
    assert codec.status_kind(codec.ESME_RSUBMITFAIL) is FailureKind.TEMPORARY
    assert codec.status_kind(codec.ESME_RX_T_APPN) is FailureKind.TEMPORARY
    for permanent in (0x0B, 0x0A, 0x01, 0x43, 0x62, 0x66):
        assert codec.status_kind(permanent) is FailureKind.PERMANENT
    assert codec.status_kind(0x0400) is FailureKind.TEMPORARY  # vendor-specific
    assert codec.status_text(0x58) == "ESME_RTHROTTLED (0x00000058)"
    assert codec.status_name(0x0401) == "0x00000401"
    assert codec.command_name(codec.DELIVER_SM) == "deliver_sm"
    assert codec.command_name(0x1234) == "command 0x00001234"
    names = [name for name, _ in codec.STATUS.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("dc", "coding"), [
    (0x00, Coding.GSM7), (0x01, Coding.LATIN1), (0x03, Coding.LATIN1), (0x08, Coding.UCS2),
    (0x02, None), (0x04, None), (0x10, Coding.GSM7), (0x18, Coding.UCS2), (0x14, None),
    (0x30, None), (0xF0, Coding.GSM7), (0xF4, None), (0xC0, Coding.GSM7),
    (0xE0, Coding.UCS2), (0x80, None),
])
def test_inbound_coding(dc: int, coding: Coding | None) -> None:
    assert codec.inbound_coding(dc) is coding


def test_outbound_coding() -> None:
    assert codec.outbound_coding(Coding.GSM7, False) == 0
    assert codec.outbound_coding(Coding.GSM7, True) == 0x10
    assert codec.outbound_coding(Coding.UCS2, True) == 0x18
    assert codec.outbound_coding(Coding.LATIN1, True) == 3  # no class for Latin-1
