"""The sans-I/O SMPP session, in memory: bytes and `now` in, events and bytes out.

The SMSC's side of each exchange is written with smpplib (an independent codec), so
these tests do not only check the session against our own encoder.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from smpplib import smpp as smpplib_smpp

from omnigate.carriers.smpp import codec
from omnigate.carriers.smpp.session import (
    MAX_SEQUENCE,
    BindFailed,
    Bound,
    MoReceived,
    ProtocolError,
    ReceiptReceived,
    ResponseTimeout,
    Session,
    SessionError,
    State,
    SubmitFailed,
    SubmitOk,
    Unbound,
    Unexpected,
)
from omnigate.model import FailureKind, Status


class _Client:
    sequence = None

    def next_sequence(self) -> int:
        return 1


def smsc(command: str, sequence: int, **fields: Any) -> bytes:
    p = smpplib_smpp.make_pdu(command, client=_Client(), **fields)
    p.sequence = sequence
    return p.generate()


def parse(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split bytes the session wrote into (command_id, status, sequence, body)."""
    out = []
    pos = 0
    while pos < len(data):
        length, command_id, status, seq = codec.HEADER.unpack_from(data, pos)
        out.append((command_id, status, seq, data[pos + 16:pos + length]))
        pos += length
    assert pos == len(data)
    return out


BODY = codec.submit_sm_body(codec.address(5, 0, "Omnigate"), codec.address(1, 1, "4670"), b"hi")
T0 = 1000.0


def new_session(**kw: Any) -> Session:
    args: dict[str, Any] = dict(mode="transceiver", system_id="omni", password="pw",
                                window=3, enquire_link=30.0, response_timeout=10.0)
    args.update(kw)
    return Session(**args)


def bound(**kw: Any) -> Session:
    s = new_session(**kw)
    seq = s.bind(T0)
    s.data_to_send()
    resp = f"bind_{s.mode}_resp"
    events = s.feed(smsc(resp, seq, system_id="SMSC"), T0)
    assert events == [Bound("SMSC")]
    return s


# --- bind -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transceiver", "transmitter", "receiver"])
def test_bind_sends_credentials_and_binds(mode: str) -> None:
    s = new_session(mode=mode, system_type="VMA")
    assert s.state is State.OPEN and s.next_deadline() is None
    seq = s.bind(T0)
    assert s.state is State.BINDING
    [(command_id, _, got_seq, body)] = parse(s.data_to_send())
    req = smpplib_smpp.parse_pdu(codec.pdu(command_id, got_seq, body), client=_Client())
    assert req.command == f"bind_{mode}"
    assert (req.system_id, req.password, req.system_type) == (b"omni", b"pw", b"VMA")
    assert req.interface_version == 0x34 and got_seq == seq == 1
    assert s.next_deadline() == T0 + 10.0
    assert s.feed(smsc(f"bind_{mode}_resp", seq, system_id="SMSC"), T0 + 1) == [Bound("SMSC")]
    assert s.bound and s.peer_system_id == "SMSC"
    assert s.window_room == (0 if mode == "receiver" else 3)
    assert s.next_deadline() == T0 + 1 + 30.0  # keep-alive now


def test_bind_refused() -> None:
    s = new_session()
    seq = s.bind(T0)
    events = s.feed(smsc("bind_transceiver_resp", seq, status=codec.ESME_RINVPASWD), T0)
    assert events == [BindFailed(codec.ESME_RINVPASWD, "ESME_RINVPASWD (0x0000000E)")]
    assert s.state is State.CLOSED
    assert s.feed(smsc("enquire_link", 5), T0) == []  # a closed session reads nothing
    assert s.data_to_send() == codec.bind(codec.BIND_TRANSCEIVER, 1, "omni", "pw")


def test_bind_nacked() -> None:
    s = new_session()
    seq = s.bind(T0)
    events = s.feed(codec.header_only(codec.GENERIC_NACK, seq, codec.ESME_RINVCMDLEN), T0)
    assert isinstance(events[0], BindFailed) and s.state is State.CLOSED


def test_bind_timeout() -> None:
    s = new_session()
    seq = s.bind(T0)
    assert s.handle_timer(T0 + 9.99) == []
    assert s.handle_timer(T0 + 10) == [ResponseTimeout(codec.BIND_TRANSCEIVER, seq, None)]
    assert s.next_deadline() is None


def test_wrong_bind_resp_is_unexpected() -> None:
    s = new_session()
    seq = s.bind(T0)
    [ev] = s.feed(smsc("bind_transceiver_resp", seq + 5), T0)
    assert isinstance(ev, Unexpected) and s.state is State.BINDING


def test_illegal_transitions_raise() -> None:
    s = new_session()
    with pytest.raises(SessionError, match="submit_sm while open"):
        s.submit(BODY, "p", T0)
    with pytest.raises(SessionError, match="open -> unbinding"):
        s.unbind(T0)
    s.bind(T0)
    with pytest.raises(SessionError, match="binding -> binding"):
        s.bind(T0)
    s = bound()
    with pytest.raises(SessionError):
        s.bind(T0)
    s.unbind(T0)
    with pytest.raises(SessionError):
        s.submit(BODY, "p", T0)
    s.close()
    with pytest.raises(SessionError, match="closed -> unbinding"):
        s.unbind(T0)
    r = bound(mode="receiver")
    with pytest.raises(SessionError, match="as receiver"):
        r.submit(BODY, "p", T0)
    with pytest.raises(ValueError, match="bind mode"):
        new_session(mode="sideways")


# --- submit, window, sequence numbers --------------------------------------------------


def test_submit_window_and_responses() -> None:
    s = bound()
    seqs = [s.submit(BODY, f"p{i}", T0 + i) for i in range(3)]
    assert seqs == [2, 3, 4]  # 1 was the bind
    assert s.window_room == 0 and s.in_window == 3
    with pytest.raises(SessionError, match="window full"):
        s.submit(BODY, "p3", T0)
    sent = parse(s.data_to_send())  # all three in one buffer
    assert [(c, seq) for c, _, seq, _ in sent] == [(codec.SUBMIT_SM, q) for q in seqs]
    assert sent[0][3] == BODY
    assert s.data_to_send() == b""
    assert s.next_deadline() == T0 + 10.0  # the oldest submit
    events = s.feed(smsc("submit_sm_resp", 3, message_id="m3")
                    + codec.header_only(codec.SUBMIT_SM_RESP, 2, codec.ESME_RTHROTTLED)
                    + codec.header_only(codec.SUBMIT_SM_RESP, 4, codec.ESME_RINVDSTADR), T0 + 3)
    assert events == [
        SubmitOk("p1", "m3"),
        SubmitFailed("p0", 0x58, FailureKind.THROTTLED, "ESME_RTHROTTLED (0x00000058)"),
        SubmitFailed("p2", 0x0B, FailureKind.PERMANENT, "ESME_RINVDSTADR (0x0000000B)"),
    ]
    assert s.window_room == 3 and s.in_window == 0


def test_feed_in_single_bytes_and_many_at_once() -> None:
    s = bound()
    for i in range(3):
        s.submit(BODY, i, T0)
    data = b"".join(smsc("submit_sm_resp", q, message_id=f"id{q}") for q in (2, 3, 4))
    events: list[Any] = []
    for i in range(len(data)):
        events += s.feed(data[i:i + 1], T0)
    assert events == [SubmitOk(0, "id2"), SubmitOk(1, "id3"), SubmitOk(2, "id4")]


def test_sequence_wraps_to_one() -> None:
    s = bound()
    s._next_seq = MAX_SEQUENCE
    assert s.submit(BODY, "a", T0) == MAX_SEQUENCE
    assert s.submit(BODY, "b", T0) == 1
    assert s.submit(BODY, "c", T0) == 2
    events = s.feed(smsc("submit_sm_resp", MAX_SEQUENCE, message_id="x")
                    + smsc("submit_sm_resp", 1, message_id="y"), T0)
    assert events == [SubmitOk("a", "x"), SubmitOk("b", "y")]


def test_submit_timeout_then_late_answer() -> None:
    s = bound()
    s.submit(BODY, "a", T0)
    s.submit(BODY, "b", T0 + 5)
    assert s.handle_timer(T0 + 10) == [ResponseTimeout(codec.SUBMIT_SM, 2, "a")]
    assert s.in_window == 1 and s.next_deadline() == T0 + 15
    [ev] = s.feed(smsc("submit_sm_resp", 2, message_id="late"), T0 + 11)
    assert isinstance(ev, Unexpected) and "not in the window" in ev.reason
    assert s.feed(smsc("submit_sm_resp", 3, message_id="ok"), T0 + 11) == [SubmitOk("b", "ok")]


def test_generic_nack_fails_the_submit() -> None:
    s = bound()
    seq = s.submit(BODY, "a", T0)
    events = s.feed(codec.header_only(codec.GENERIC_NACK, seq, codec.ESME_RINVCMDLEN), T0)
    assert events == [SubmitFailed("a", 2, FailureKind.PERMANENT,
                                   "generic_nack ESME_RINVCMDLEN (0x00000002)")]
    assert s.in_window == 0
    [ev] = s.feed(codec.header_only(codec.GENERIC_NACK, 0, codec.ESME_RINVCMDLEN), T0)
    assert isinstance(ev, Unexpected)


def test_close_returns_held_tokens_in_order() -> None:
    s = bound()
    for t in ("a", "b", "c"):
        s.submit(BODY, t, T0)
    s.feed(smsc("submit_sm_resp", 3, message_id="m"), T0)
    assert s.close() == ["a", "c"]
    assert s.state is State.CLOSED and s.in_window == 0 and s.window_room == 0
    assert s.close() == []


# --- keep-alive ---------------------------------------------------------------------


def test_enquire_link_after_idle_and_answer() -> None:
    s = bound()
    assert s.handle_timer(T0 + 29) == [] and s.data_to_send() == b""
    s.feed(smsc("enquire_link_resp", 99), T0 + 20)  # any PDU from the SMSC is life
    assert s.next_deadline() == T0 + 50
    assert s.handle_timer(T0 + 50) == []
    [(command_id, _, seq, _)] = parse(s.data_to_send())
    assert command_id == codec.ENQUIRE_LINK
    assert s.next_deadline() == T0 + 60  # its answer is due; no second enquire_link
    assert s.handle_timer(T0 + 55) == [] and s.data_to_send() == b""
    assert s.feed(smsc("enquire_link_resp", seq), T0 + 56) == []
    assert s.next_deadline() == T0 + 86


def test_enquire_link_unanswered_times_out() -> None:
    s = bound()
    s.handle_timer(T0 + 30)
    [(_, _, seq, _)] = parse(s.data_to_send())
    assert s.handle_timer(T0 + 40) == [ResponseTimeout(codec.ENQUIRE_LINK, seq, None)]


def test_enquire_link_nack_counts_as_life() -> None:
    s = bound()
    s.handle_timer(T0 + 30)
    [(_, _, seq, _)] = parse(s.data_to_send())
    assert s.feed(codec.header_only(codec.GENERIC_NACK, seq, codec.ESME_RINVCMDID), T0 + 31) == []
    assert s.next_deadline() == T0 + 61


# --- requests from the SMSC ------------------------------------------------------------


def test_answers_enquire_link() -> None:
    s = bound()
    assert s.feed(smsc("enquire_link", 77), T0) == []
    assert s.data_to_send() == smsc("enquire_link_resp", 77)


def test_unbind_from_smsc() -> None:
    s = bound()
    s.submit(BODY, "a", T0)
    s.data_to_send()
    # nothing after the unbind is read: the session is over
    assert s.feed(smsc("unbind", 50) + smsc("submit_sm_resp", 2, message_id="x"), T0) == [
        Unbound(by_peer=True)]
    assert s.state is State.CLOSED
    assert s.data_to_send() == smsc("unbind_resp", 50)
    assert s.close() == ["a"]  # the owner settles what was held


def test_our_unbind() -> None:
    s = bound()
    s.submit(BODY, "a", T0)
    seq = s.unbind(T0)
    assert s.state is State.UNBINDING and s.window_room == 0
    assert [c for c, *_ in parse(s.data_to_send())] == [codec.SUBMIT_SM, codec.UNBIND]
    # outstanding submits may still be answered while unbinding
    assert s.feed(smsc("submit_sm_resp", 2, message_id="x"), T0) == [SubmitOk("a", "x")]
    assert s.feed(smsc("unbind_resp", seq), T0) == [Unbound(by_peer=False)]
    assert s.state is State.CLOSED


def test_our_unbind_times_out() -> None:
    s = bound()
    seq = s.unbind(T0)
    assert s.next_deadline() == T0 + 10  # no keep-alive while unbinding
    assert s.handle_timer(T0 + 10) == [ResponseTimeout(codec.UNBIND, seq, None)]


def test_stray_unbind_resp() -> None:
    s = bound()
    [ev] = s.feed(smsc("unbind_resp", 9), T0)
    assert isinstance(ev, Unexpected) and s.bound


def mo(seq: int, **fields: Any) -> bytes:
    base = dict(source_addr_ton=1, source_addr_npi=1, source_addr="46701234567",
                dest_addr_ton=0, dest_addr_npi=1, destination_addr="72000", esm_class=0,
                data_coding=0, short_message=b"Hello")
    base.update(fields)
    return smsc("deliver_sm", seq, **base)


def test_deliver_sm_mo_is_answered_and_reported() -> None:
    s = bound()
    [ev] = s.feed(mo(11), T0)
    assert isinstance(ev, MoReceived) and ev.pdu.short_message == b"Hello"
    assert s.data_to_send() == smsc("deliver_sm_resp", 11)


def test_deliver_sm_receipt() -> None:
    s = bound()
    [ev] = s.feed(mo(12, esm_class=0x04, receipted_message_id="abc", message_state=2,
                     short_message=b"id:abc stat:DELIVRD err:000"), T0)
    assert isinstance(ev, ReceiptReceived)
    assert (ev.receipt.message_id, ev.receipt.status) == ("abc", Status.DELIVERED)
    [ev] = s.feed(mo(13, esm_class=0x04, short_message=b"nothing useful"), T0)
    assert isinstance(ev, Unexpected) and "names no message" in ev.reason
    assert parse(s.data_to_send()) == [(codec.DELIVER_SM_RESP, 0, 12, b"\x00"),
                                       (codec.DELIVER_SM_RESP, 0, 13, b"\x00")]


def test_undecodable_deliver_sm_is_refused_and_the_session_goes_on() -> None:
    s = bound()
    bad = codec.pdu(codec.DELIVER_SM, 14, b"\x00\x01\x01" + b"9" * 40)
    events = s.feed(bad + mo(15), T0)
    assert isinstance(events[0], Unexpected) and "undecodable deliver_sm" in events[0].reason
    assert isinstance(events[1], MoReceived)
    assert [(c, st, q) for c, st, q, _ in parse(s.data_to_send())] == [
        (codec.DELIVER_SM_RESP, codec.ESME_RINVCMDLEN, 14), (codec.DELIVER_SM_RESP, 0, 15)]


def test_unknown_request_is_nacked_and_the_session_goes_on() -> None:
    s = bound()
    events = s.feed(codec.pdu(0x00000099, 20, b"junk") + codec.pdu(codec.DATA_SM, 21, b"")
                    + codec.pdu(codec.ALERT_NOTIFICATION, 22, b"\x00") + smsc("enquire_link", 23),
                    T0)
    assert [type(e) for e in events] == [Unexpected, Unexpected, Unexpected]
    assert parse(s.data_to_send()) == [
        (codec.GENERIC_NACK, codec.ESME_RINVCMDID, 20, b""),
        (codec.GENERIC_NACK, codec.ESME_RINVCMDID, 21, b""),
        (codec.ENQUIRE_LINK_RESP, 0, 23, b""),  # alert_notification has no response
    ]
    assert s.bound


def test_unknown_response_is_ignored() -> None:
    s = bound()
    [ev] = s.feed(codec.pdu(codec.QUERY_SM_RESP, 5, b"x\x00"), T0)
    assert isinstance(ev, Unexpected) and s.data_to_send() == b""


# --- framing --------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 15, codec.MAX_PDU_LENGTH + 1, 0xFFFFFFFF])
def test_bad_command_length_is_a_protocol_error(length: int) -> None:
    s = bound()
    s.submit(BODY, "a", T0)
    data = struct.pack(">IIII", length, codec.SUBMIT_SM_RESP, 0, 2)
    [ev] = s.feed(data, T0)
    assert isinstance(ev, ProtocolError) and str(length) in ev.reason
    assert s.state is State.CLOSED
    assert s.close() == ["a"]


def test_bad_length_is_caught_before_the_header_is_complete() -> None:
    s = bound()
    [ev] = s.feed(struct.pack(">I", 1 << 20) + b"\x00\x00", T0)
    assert isinstance(ev, ProtocolError)


def test_good_pdus_before_a_bad_length_are_handled() -> None:
    s = bound()
    s.submit(BODY, "a", T0)
    events = s.feed(smsc("submit_sm_resp", 2, message_id="m") + struct.pack(">I", 3), T0)
    assert events[0] == SubmitOk("a", "m") and isinstance(events[1], ProtocolError)


def test_largest_pdu_is_accepted() -> None:
    s = bound()
    payload = b"x" * (codec.MAX_PDU_LENGTH - 16 - 40)
    raw = mo(30, short_message=b"", message_payload=payload)
    assert len(raw) <= codec.MAX_PDU_LENGTH
    [ev] = s.feed(raw, T0)
    assert isinstance(ev, MoReceived) and ev.pdu.user_data == payload
