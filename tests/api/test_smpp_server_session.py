"""The SMPP server's sans-I/O session in memory, with PDUs from smpplib's codec (the
independent implementation), plus property tests: random bytes and random PDUs never
crash the session, and every request it can frame gets exactly one answer."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import smpplib.consts as c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smpplib import smpp

from omnigate.api.smpp import Refused, read_submit
from omnigate.api.smppsession import (
    BindRequested,
    DeliverAnswered,
    Inactive,
    ServerSession,
    SubmitRequested,
)
from omnigate.carriers.smpp import codec
from omnigate.carriers.smpp.session import (
    BIND_MODES,
    ProtocolError,
    ResponseTimeout,
    State,
    Unbound,
)


class _Seq:
    """The 'client' smpplib's PDU classes want: a sequence source."""

    def __init__(self) -> None:
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


def ref(command: str, **fields: Any) -> bytes:
    return smpp.make_pdu(command, client=_Seq(), **fields).generate()


def answers(data: bytes) -> list[tuple[int, int, int]]:
    """(command_id, status, sequence) of every PDU in `data`."""
    out, pos = [], 0
    while pos < len(data):
        length, cid, status, seq = struct.unpack_from(">IIII", data, pos)
        out.append((cid, status, seq))
        pos += length
    return out


def bound(mode: str = "transceiver") -> ServerSession:
    s = ServerSession(system_id="omnigate", window=2, inactivity=30, response_timeout=5)
    (ev,) = s.feed(ref(f"bind_{mode}", system_id="acme", password="pw"), 0.0)
    assert isinstance(ev, BindRequested) and (ev.mode, ev.system_id, ev.password) == (
        mode, "acme", "pw")
    s.accept_bind()
    (resp,) = answers(s.data_to_send())
    assert resp == (codec.BIND_RESPONSE[BIND_MODES[mode]], 0, 1)
    return s


def test_bind_then_submit_window_and_answers_in_completion_order() -> None:
    s = bound()
    sm = ref("submit_sm", source_addr="Alarm", destination_addr="46705123456",
             short_message=b"hi", registered_delivery=1)
    events = s.feed(sm + sm + sm, 1.0)  # three with a window of two
    assert [type(e) for e in events] == [SubmitRequested, SubmitRequested]
    assert answers(s.data_to_send()) == [(codec.SUBMIT_SM_RESP, codec.ESME_RMSGQFUL, 1)]
    first = events[0]
    assert isinstance(first, SubmitRequested) and first.sm.short_message == b"hi"
    s.refuse_submit(1, codec.ESME_RINVDSTADR)
    s.answer_submit(1, "42")
    assert answers(s.data_to_send()) == [(codec.SUBMIT_SM_RESP, codec.ESME_RINVDSTADR, 1),
                                         (codec.SUBMIT_SM_RESP, 0, 1)]
    assert s.submits_open == 0


def test_deliver_sm_window_answer_timeout_and_close_returns_tokens() -> None:
    s = bound("receiver")
    assert s.window_room == 2
    seq1 = s.deliver(b"\x00" * 20, "row1", 1.0)
    seq2 = s.deliver(b"\x00" * 20, "row2", 1.0)
    assert s.window_room == 0
    resp = smpp.make_pdu("deliver_sm_resp", client=_Seq())
    resp.sequence = seq1
    assert s.feed(resp.generate(), 2.0) == [DeliverAnswered("row1", 0)]
    (timeout,) = s.handle_timer(6.5)
    assert isinstance(timeout, ResponseTimeout) and timeout.token == "row2"
    s.deliver(b"\x00" * 20, "row3", 7.0)
    assert s.close() == ["row3"] and seq2 == seq1 + 1


def test_receiver_may_not_submit_and_transmitter_gets_no_deliver() -> None:
    s = bound("receiver")
    s.feed(ref("submit_sm", source_addr="a", destination_addr="1", short_message=b"x"), 1.0)
    assert answers(s.data_to_send()) == [(codec.SUBMIT_SM_RESP, codec.ESME_RINVBNDSTS, 1)]
    assert bound("transmitter").window_room == 0


def test_before_bind_and_second_bind() -> None:
    s = ServerSession(system_id="omnigate")
    s.feed(ref("submit_sm", source_addr="a", destination_addr="1", short_message=b"x"), 0.0)
    assert answers(s.data_to_send()) == [(codec.SUBMIT_SM_RESP, codec.ESME_RINVBNDSTS, 1)]
    s = bound()
    s.feed(ref("bind_transmitter", system_id="acme", password="pw"), 1.0)
    assert answers(s.data_to_send()) == [(codec.BIND_TRANSMITTER_RESP, codec.ESME_RALYBND, 1)]
    assert s.state is State.BOUND


def test_refused_bind_closes() -> None:
    s = ServerSession(system_id="omnigate")
    s.feed(ref("bind_transmitter", system_id="acme", password="bad"), 0.0)
    s.refuse_bind(codec.ESME_RINVPASWD)
    assert answers(s.data_to_send()) == [(codec.BIND_TRANSMITTER_RESP, codec.ESME_RINVPASWD, 1)]
    assert s.state is State.CLOSED


def test_enquire_link_unbind_unknown_and_inactivity() -> None:
    s = bound()
    s.feed(ref("enquire_link"), 1.0)
    s.feed(ref("query_sm", message_id="1", source_addr="x"), 1.0)
    assert answers(s.data_to_send()) == [(codec.ENQUIRE_LINK_RESP, 0, 1),
                                         (codec.GENERIC_NACK, codec.ESME_RINVCMDID, 1)]
    assert s.next_deadline() == 31.0  # inactivity counts from the last PDU
    assert s.handle_timer(30.0) == []
    (ev,) = s.handle_timer(31.0)
    assert isinstance(ev, Inactive)
    assert s.feed(ref("unbind"), 32.0) == [Unbound(by_peer=True)]
    assert answers(s.data_to_send()) == [(codec.UNBIND_RESP, 0, 1)]


def test_bad_command_length_is_a_protocol_error() -> None:
    s = bound()
    (ev,) = s.feed(struct.pack(">IIII", 8, 4, 0, 1), 1.0)
    assert isinstance(ev, ProtocolError) and s.state is State.CLOSED


def test_read_submit_maps_fields() -> None:
    sm = codec.decode_submit_sm(ref(
        "submit_sm", source_addr_ton=1, source_addr="46700000001", dest_addr_ton=1,
        destination_addr="46705123456", short_message="Hej".encode("utf-16-be"),
        data_coding=8, registered_delivery=2, priority_flag=2,
        validity_period="000001000000000R")[16:])
    msg = read_submit(sm, 1000.0)
    assert (msg.to, msg.sender, msg.report_mask, msg.priority) == (
        "+46705123456", "+46700000001", 2 | 16, 2)
    assert msg.validity == 86400 and msg.data == "Hej".encode("utf-16-be")
    flash = codec.decode_submit_sm(ref("submit_sm", source_addr="a", destination_addr="1",
                                       short_message=b"x", data_coding=0x10)[16:])
    assert read_submit(flash, 0.0).flash
    late = codec.decode_submit_sm(ref("submit_sm", source_addr="a", destination_addr="1",
                                      short_message=b"x",
                                      validity_period="200101000000000+")[16:])
    with pytest.raises(Refused) as err:
        read_submit(late, 2e9)
    assert err.value.status == codec.ESME_RINVEXPIRY


def test_smpp_time() -> None:
    # 2026-11-22 10:00:00 at UTC+1 (4 quarter hours) is 09:00 UTC
    assert codec.parse_smpp_time(b"261122100000004+", 0) == 1795338000.0
    assert codec.parse_smpp_time(b"000000000130000R", 5.0) == 95.0
    assert codec.parse_smpp_time(b"", 5.0) is None
    for bad in (b"2611221000", b"261322100000004+", b"26112210000000xR"):
        with pytest.raises(ValueError):
            codec.parse_smpp_time(bad, 0)


# -- properties ---------------------------------------------------------------------------

_REQUESTS = [codec.SUBMIT_SM, codec.BIND_TRANSMITTER, codec.BIND_RECEIVER, codec.ENQUIRE_LINK,
             codec.UNBIND, codec.DELIVER_SM_RESP, codec.GENERIC_NACK, codec.QUERY_SM,
             codec.DATA_SM, codec.OUTBIND, 0x12345678, codec.ENQUIRE_LINK_RESP]


@st.composite
def pdus(draw: st.DrawFn) -> bytes:
    command = draw(st.sampled_from(_REQUESTS))
    body = draw(st.binary(max_size=300))
    status = draw(st.sampled_from([0, 0, 0x58, 0xFFFFFFFF]))
    seq = draw(st.integers(0, 0xFFFFFFFF))
    return struct.pack(">IIII", 16 + len(body), command, status, seq) + body


def _expected_answers(frames: list[bytes]) -> int:
    """Requests answered once each, up to and including an unbind (which ends the session)."""
    n = 0
    for f in frames:
        cid = struct.unpack_from(">I", f, 4)[0]
        if cid & codec.RESPONSE_BIT or cid in codec.NO_RESPONSE:
            continue
        n += 1
        if cid == codec.UNBIND:
            break
    return n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pdus(), max_size=12), st.binary(max_size=64), st.integers(1, 50))
def test_random_pdus_never_crash_and_requests_get_one_answer(
        frames: list[bytes], tail: bytes, chunk: int) -> None:
    s = bound()
    stream = b"".join(frames)
    events: list[Any] = []
    for i in range(0, len(stream), chunk):  # cut anywhere: framing must not care
        events += s.feed(stream[i:i + chunk], 1.0)
    for ev in events:  # the owner answers what it was asked, as the server does
        if isinstance(ev, SubmitRequested):
            s.answer_submit(ev.sequence, "1")
    out = answers(s.data_to_send())
    assert all(cid & codec.RESPONSE_BIT for cid, _, _ in out)
    assert len(out) == _expected_answers(frames)
    s.feed(tail, 2.0)  # garbage after: answered or a protocol error, never an exception
    s.handle_timer(1e9)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    s = ServerSession(system_id="omnigate")
    for ev in s.feed(data, 0.0):
        assert not isinstance(ev, SubmitRequested)  # nothing is submitted before a bind
    s.data_to_send()
    s.handle_timer(1e9)


def test_smpplib_constants_agree() -> None:
    assert (c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RINVPASWD) == (codec.ESME_RTHROTTLED,
                                                               codec.ESME_RINVPASWD)


def test_submit_sm_resp_matches_smpplib_byte_for_byte() -> None:
    resp = smpp.make_pdu("submit_sm_resp", client=_Seq(), message_id="488442227449856")
    resp.sequence = 5
    assert codec.submit_sm_resp(5, "488442227449856") == resp.generate()
    parsed = smpp.parse_pdu(codec.submit_sm_resp(6, "", codec.ESME_RTHROTTLED), client=_Seq())
    assert (parsed.command, parsed.status, parsed.sequence) == ("submit_sm_resp", 0x58, 6)
