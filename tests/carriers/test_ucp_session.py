"""The UCP/EMI session in memory: bytes and an injected `now` in, events and bytes out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigate.carriers.ucp import codec
from omnigate.carriers.ucp.session import (
    LoggedIn,
    LoginFailed,
    MoReceived,
    NotificationReceived,
    ProtocolError,
    ResponseTimeout,
    Session,
    SessionError,
    State,
    SubmitFailed,
    SubmitOk,
    Unexpected,
)
from omnigate.model import FailureKind
from omnigate.sms.coding import Coding
from tests.carriers.test_ucp_codec import (
    ALERT,
    DLR,
    LOGIN,
    LOGIN_ACK,
    LOGIN_NACK,
    MO,
    MO_ACK,
    wrap,
)

T0 = 1000.0
BODY = codec.submit_data(adc=b"46701234567", oadc=b"4670000", mt=b"3", msg=b"4869")


def result(trn: int, ot: int, *fields: str) -> bytes:
    return codec.frame(trn, b"R", ot, "/".join(fields).encode())


def ack51(trn: int, ref: str = "") -> bytes:
    return result(trn, 51, "A", "", ref or f"46701234567:0102030405{trn:02d}")


def frames(data: bytes) -> list[codec.Frame]:
    return [codec.parse_frame(part[1:]) for part in data.split(b"\x03") if part]


def logged_in(window: int = 10, keepalive: float = 30.0) -> Session:
    s = Session(user="4670000", password="secret", window=window, keepalive=keepalive,
                response_timeout=10.0)
    assert s.window_room == 0
    s.login(T0)
    assert s.data_to_send() == wrap(LOGIN)
    assert s.state is State.LOGGING_IN and s.window_room == 0
    assert s.feed(wrap(LOGIN_ACK), T0) == [LoggedIn()]
    assert s.state is State.READY
    return s


def test_login_and_submit() -> None:
    s = logged_in()
    assert s.window_room == 10
    assert [s.submit(BODY, t, T0) for t in "abc"] == [1, 2, 3]
    assert s.in_window == 3 and s.window_room == 7
    sent = frames(s.data_to_send())
    assert [(f.trn, f.kind, f.ot) for f in sent] == [(1, b"O", 51), (2, b"O", 51), (3, b"O", 51)]
    assert b"/".join(sent[0].fields) == BODY
    events = s.feed(ack51(1) + result(2, 51, "N", "24", "too long") + result(3, 51, "N", "04", ""),
                    T0 + 1)
    assert events == [
        SubmitOk("a", "46701234567:010203040501"),
        SubmitFailed("b", "24", FailureKind.PERMANENT, "EC 24 (message too long): too long"),
        SubmitFailed("c", "04", FailureKind.THROTTLED,
                     "EC 04 (operation not allowed (at this point in time))"),
    ]
    assert s.in_window == 0 and s.window_room == 10


def test_login_refused() -> None:
    s = Session(user="4670000", password="wrong")
    s.login(T0)
    s.data_to_send()
    [ev] = s.feed(wrap(LOGIN_NACK), T0)
    assert ev == LoginFailed("07", "EC 07 (authentication failure): Authentication failure")
    assert s.state is State.CLOSED and s.window_room == 0


def test_illegal_requests_raise() -> None:
    s = Session(user="1", password="p", window=1)
    with pytest.raises(SessionError):
        s.submit(BODY, None, T0)
    s = logged_in(window=1)
    s.submit(BODY, "a", T0)
    with pytest.raises(SessionError, match="window full"):
        s.submit(BODY, "b", T0)
    with pytest.raises(SessionError, match="ready -> logging in"):
        s.login(T0)
    with pytest.raises(ValueError):
        Session(user="1", password="p", window=100)


def test_results_read_leniently() -> None:
    s = logged_in()
    s.submit(BODY, "a", T0)
    s.submit(BODY, "b", T0)
    # an SMSC that leaves MVP out; a lower-case checksum
    lower = result(2, 51, "A", "", "x:1")
    lower = lower[:-3] + lower[-3:-1].lower() + b"\x03"
    assert s.feed(result(1, 51, "A", "1:2"), T0) + s.feed(lower, T0) == [
        SubmitOk("a", "1:2"), SubmitOk("b", "x:1")]


def test_trn_wraps_and_never_reuses_an_outstanding_one() -> None:
    s = logged_in(window=5)
    s.submit(BODY, "slow", T0)  # TRN 01, never answered here
    for trn in range(2, 101):  # 02 .. 99, then 00
        # window 5 with one outstanding, and no further than the TRN still in use
        assert s.window_room == min(4, (1 - trn) % 100), trn
        assert s.submit(BODY, trn, T0) == trn % 100
        s.feed(ack51(trn % 100), T0)
    # the next TRN would be 01, still waiting: no room, whatever the window says
    assert s.in_window == 1 and s.window_room == 0
    with pytest.raises(SessionError, match="TRN 01"):
        s.submit(BODY, "x", T0)
    assert s.feed(ack51(1), T0) == [SubmitOk("slow", "46701234567:010203040501")]
    assert s.window_room == 5 and s.submit(BODY, "y", T0) == 1


def test_window_room_counts_free_trns_up_to_the_oldest() -> None:
    s = logged_in(window=99)
    for i in range(99):
        s.submit(BODY, i, T0)  # TRN 01 .. 99
    for trn in range(2, 100):
        s.feed(ack51(trn), T0)
    # TRN 01 outstanding; 00 is free, then 01 is in use
    assert s.in_window == 1 and s.window_room == 1


def test_response_timeout_and_late_result() -> None:
    s = logged_in(keepalive=100)
    s.submit(BODY, "a", T0 + 1)
    assert s.next_deadline() == T0 + 11
    assert s.handle_timer(T0 + 10) == []
    assert s.handle_timer(T0 + 11) == [ResponseTimeout(51, 1, "a")]
    assert s.in_window == 0
    [ev] = s.feed(ack51(1), T0 + 12)
    assert isinstance(ev, Unexpected) and "not waiting for" in ev.reason


def test_keepalive_alert() -> None:
    s = logged_in(keepalive=30)
    assert s.next_deadline() == T0 + 30
    assert s.handle_timer(T0 + 29) == [] and s.data_to_send() == b""
    assert s.handle_timer(T0 + 30) == []
    [alert] = frames(s.data_to_send())
    assert (alert.trn, alert.kind, alert.ot, alert.fields) == (1, b"O", 31, [b"4670000", b"0539"])
    assert s.next_deadline() == T0 + 40  # its result is due like any other
    assert s.feed(result(1, 31, "A", ""), T0 + 31) == []
    assert s.next_deadline() == T0 + 61
    # an unanswered alert times out (the link then drops the connection)
    s.handle_timer(T0 + 61)
    s.data_to_send()
    assert s.handle_timer(T0 + 71) == [ResponseTimeout(31, 2, None)]


def test_alert_uses_the_trn_sequence_like_the_spec_example() -> None:
    s = logged_in()
    for _ in range(4):
        s.submit(BODY, None, T0)
        s.data_to_send()
    for trn in range(1, 5):
        s.feed(ack51(trn), T0)
    s.handle_timer(T0 + 30)
    assert s.data_to_send() == wrap(ALERT)  # TRN 05


def test_mo_and_notification_are_answered() -> None:
    s = logged_in()
    [mo] = s.feed(wrap(MO), T0)
    assert isinstance(mo, MoReceived)
    assert (mo.deliver.sender, mo.deliver.recipient, mo.deliver.data,
            mo.deliver.coding) == ("46709999", "4670000", b"Hej", Coding.GSM7)
    assert s.data_to_send() == wrap(MO_ACK)
    [dlr] = s.feed(wrap(DLR), T0)
    assert isinstance(dlr, NotificationReceived) and dlr.notification.dst == "0"
    [ack] = frames(s.data_to_send())
    assert (ack.trn, ack.kind, ack.ot, ack.fields) == (
        1, b"R", 53, [b"A", b"", b"46701234567:010203040506"])


def test_smsc_operations_we_cannot_take() -> None:
    s = logged_in()
    bad_hex = MO.replace(b"48656A", b"48656G")
    bad_hex = bad_hex[:-2] + codec.checksum(bad_hex[:-2])
    events = s.feed(wrap(bad_hex) + codec.frame(7, b"O", 1, b"123//3/4869")
                    + codec.frame(8, b"O", 31, b"4670000/0539"), T0)
    assert [type(e) for e in events] == [Unexpected, Unexpected]
    assert "EC 02" in events[0].reason and "EC 03" in events[1].reason
    answers = frames(s.data_to_send())
    assert [(f.trn, f.ot, f.fields[:2]) for f in answers] == [
        (0, 52, [b"N", b"02"]), (7, 1, [b"N", b"03"]), (8, 31, [b"A", b""])]


def test_damaged_frames() -> None:
    s = logged_in()
    s.submit(BODY, "a", T0)
    s.data_to_send()
    bad_cs = wrap(MO[:-2] + b"00")
    bad_len = wrap(MO.replace(b"00083", b"00084"))
    damaged_result = ack51(1)[:-3] + b"00\x03"
    events = s.feed(bad_cs + bad_len + damaged_result, T0)
    assert [type(e) for e in events] == [Unexpected] * 3
    assert "damaged result" in events[2].reason
    answers = frames(s.data_to_send())
    assert [(f.trn, f.ot, f.fields[:2]) for f in answers] == [(0, 52, [b"N", b"01"]),
                                                               (0, 52, [b"N", b"02"])]
    assert s.in_window == 1  # the damaged result is left to its deadline


def test_framing() -> None:
    s = logged_in()
    s.submit(BODY, "a", T0)
    s.submit(BODY, "b", T0)
    data = ack51(1) + ack51(2)
    events = []
    for i in range(len(data)):  # one octet at a time
        events += s.feed(data[i:i + 1], T0)
    assert [type(e) for e in events] == [SubmitOk, SubmitOk]
    s.submit(BODY, "c", T0)
    events = s.feed(b"noise" + b"\x0201/000" + ack51(3), T0)  # a cut frame, then a whole one
    assert [type(e) for e in events] == [Unexpected, Unexpected, SubmitOk]


def test_no_etx_is_a_protocol_error() -> None:
    s = logged_in()
    events = s.feed(b"\x02" + b"0" * (codec.MAX_FRAME + 2), T0)
    assert isinstance(events[-1], ProtocolError) and s.state is State.CLOSED
    assert s.feed(wrap(MO), T0) == []


def test_close_returns_the_tokens_in_order() -> None:
    s = logged_in(keepalive=5)
    for t in "abc":
        s.submit(BODY, t, T0)
    s.feed(ack51(2), T0)
    s.handle_timer(T0 + 5)  # an alert: it has no token
    assert s.close() == ["a", "c"]
    assert s.state is State.CLOSED and s.in_window == 0 and s.data_to_send() == b""


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), st.sampled_from(
    [wrap(MO), wrap(DLR), b"\x02", b"\x03", ack51(1), wrap(MO)[:40]])), max_size=12))
def test_random_bytes_never_crash_the_session(chunks: list[bytes]) -> None:
    s = logged_in()
    s.submit(BODY, "a", T0)
    for chunk in chunks:
        for ev in s.feed(chunk, T0):
            assert not isinstance(ev, Exception)
        s.data_to_send()
    s.handle_timer(T0 + 100)
    s.close()
