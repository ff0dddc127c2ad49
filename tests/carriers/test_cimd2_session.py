"""The sans-I/O CIMD2 session: bytes and an injected `now` in, events and bytes out.

Frames from the SMS Center are written out by hand where their exact bytes matter
(checksums summed by hand, see test_cimd2_codec.py); elsewhere `codec.packet` builds them.
"""

from __future__ import annotations

import pytest

from omnigate.carriers.cimd2 import codec
from omnigate.carriers.cimd2.session import (
    LoggedIn,
    LoggedOut,
    LoginFailed,
    MoReceived,
    ProtocolError,
    ReportReceived,
    ResponseTimeout,
    Session,
    SessionError,
    State,
    SubmitFailed,
    SubmitOk,
    Unexpected,
)
from omnigate.model import FailureKind

T0 = 1000.0
BODY = (b"021:+358401234567\t033:_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,\t056:62\t")


def pkt(op: int, number: int, *params: tuple[int, str | int]) -> bytes:
    return codec.packet(op, number, b"".join(codec.param(n, v) for n, v in params))


def logged_in(**kw: object) -> Session:
    s = Session(user="MyUserId", password="my()", **kw)  # type: ignore[arg-type]
    s.login(T0)
    s.data_to_send()
    assert s.feed(b"\x0251:001\t3C\x03", T0) == [LoggedIn()]
    return s


def test_login_frames_and_ready() -> None:
    s = Session(user="MyUserId", password="my()")
    assert s.state is State.OPEN and s.window_room == 0
    assert s.login(T0) == 1
    assert s.data_to_send() == b"\x0201:001\t010:MyUserId\t011:my()\t29\x03"
    assert s.next_deadline() == T0 + 10.0
    assert s.feed(b"\x0251:001\t3C\x03", T0 + 1) == [LoggedIn()]
    assert s.ready and s.window_room == 1 and s.in_window == 0
    assert s.next_deadline() == T0 + 1 + 60.0  # keep-alive after a minute of silence


def test_login_asks_for_a_window_above_one() -> None:
    s = Session(user="u", password="p", window=8)
    s.login(T0)
    assert b"\t019:8\t" in s.data_to_send()


def test_login_refused() -> None:
    s = Session(user="u", password="wrong")
    s.login(T0)
    [ev] = s.feed(b"\x0251:001\t900:100\tA9\x03", T0)
    assert ev == LoginFailed(100, "error 100 invalid login")
    assert s.state is State.CLOSED


def test_submit_frame_numbers_and_response() -> None:
    s = logged_in(window=3)
    assert s.submit(BODY, "part-a", T0) == 3  # login took 001
    assert s.data_to_send() == (b"\x0203:003\t" + BODY + b"22\x03")
    assert s.in_window == 1 and s.window_room == 2
    [ok] = s.feed(b"\x0253:003\t021:+358401234567\t060:250317174640\tF2\x03", T0 + 0.1)
    assert ok == SubmitOk("part-a", "250317174640", "+358401234567")
    assert s.in_window == 0


def test_packet_numbers_are_odd_and_wrap() -> None:
    s = logged_in(window=127)
    numbers = []
    for i in range(130):
        if s.window_room == 0:
            n = numbers[-127]
            s.feed(pkt(53, n, (21, "1"), (60, "250317174640")), T0)
        numbers.append(s.submit(b"021:1\t033:x\t", i, T0))
    assert numbers[:3] == [3, 5, 7] and numbers[125:129] == [253, 255, 1, 3]
    assert all(n % 2 for n in numbers)


def test_window_and_state_are_enforced() -> None:
    s = Session(user="u", password="p")
    with pytest.raises(SessionError, match="while open"):
        s.submit(BODY, 1, T0)
    with pytest.raises(ValueError, match="window"):
        Session(user="u", password="p", window=128)
    s = logged_in()
    s.submit(BODY, 1, T0)
    assert s.window_room == 0
    with pytest.raises(SessionError, match="window full"):
        s.submit(BODY, 2, T0)
    with pytest.raises(SessionError, match="illegal"):
        s.login(T0)


@pytest.mark.parametrize(("params", "code", "kind"), [
    (((900, 300), (901, "incorrect destination address")), 300, FailureKind.PERMANENT),
    (((900, 10),), 10, FailureKind.THROTTLED),
    (((900, 6),), 6, FailureKind.TEMPORARY),
    (((900, 555),), 555, FailureKind.TEMPORARY),
])
def test_submit_refused(params: tuple[tuple[int, object], ...], code: int,
                        kind: FailureKind) -> None:
    s = logged_in()
    s.submit(BODY, "p", T0)
    [ev] = s.feed(pkt(53, 3, *params), T0)  # type: ignore[arg-type]
    assert isinstance(ev, SubmitFailed) and (ev.token, ev.code, ev.kind) == ("p", code, kind)
    assert str(code) in ev.reason and s.in_window == 0


def test_submit_response_without_time_stamp_fails_temporary() -> None:
    s = logged_in()
    s.submit(BODY, "p", T0)
    [ev] = s.feed(pkt(53, 3, (21, "+1")), T0)
    assert isinstance(ev, SubmitFailed) and ev.kind is FailureKind.TEMPORARY


def test_response_timeout_and_late_answer() -> None:
    s = logged_in(response_timeout=5.0)
    s.submit(BODY, "p", T0 + 1)
    assert s.next_deadline() == T0 + 6
    assert s.handle_timer(T0 + 5.9) == []
    assert s.handle_timer(T0 + 6) == [ResponseTimeout(codec.SUBMIT, 3, "p")]
    assert s.in_window == 0
    [ev] = s.feed(pkt(53, 3, (21, "1"), (60, "250317174640")), T0 + 7)
    assert isinstance(ev, Unexpected) and "answers nothing" in ev.reason


def test_keepalive_after_silence() -> None:
    s = logged_in(keepalive=30.0)
    assert s.handle_timer(T0 + 29) == [] and s.data_to_send() == b""
    assert s.handle_timer(T0 + 30) == []
    assert s.data_to_send() == b"\x0240:003\t" + codec.checksum(b"\x0240:003\t") + b"\x03"
    assert s.handle_timer(T0 + 35) == [] and s.data_to_send() == b""  # one at a time
    assert s.feed(pkt(90, 3), T0 + 36) == []
    assert s.next_deadline() == T0 + 36 + 30  # traffic resets the idle clock
    s.handle_timer(T0 + 66)
    s.data_to_send()
    [ev] = s.handle_timer(T0 + 76.1)  # the alive went unanswered
    assert ev == ResponseTimeout(codec.ALIVE, 5, None)


def test_deliver_message_and_status_report_are_answered() -> None:
    s = logged_in()
    mo = b"\x0220:002\t021:72000\t023:+46709999999\t033:Hej d_a`\t" + b"00\x03"
    mo = mo[:-3] + codec.checksum(mo[:-3]) + b"\x03"
    [ev] = s.feed(mo, T0)
    assert isinstance(ev, MoReceived) and ev.packet.text(23) == "+46709999999"
    assert s.data_to_send() == b"\x0270:002\t3E\x03"
    report = (b"\x0223:002\t021:+358401234567\t060:250317174640\t061:4\t063:250317174702\t"
              b"3F\x03")
    [ev] = s.feed(report, T0)
    assert isinstance(ev, ReportReceived) and ev.packet.int(61) == 4
    assert s.data_to_send() == b"\x0273:002\t41\x03"


def test_bad_checksum_from_the_smsc_is_nacked() -> None:
    s = logged_in()
    bad = (b"\x0223:004\t021:+358401234567\t060:250317174640\t061:4\t063:250317174702\t"
           b"40\x03")
    [ev] = s.feed(bad, T0)
    assert isinstance(ev, Unexpected) and "NACK sent" in ev.reason
    assert s.data_to_send() == codec.packet(codec.NACK, 4)


def test_nack_resends_once_then_fails() -> None:
    s = logged_in()
    s.submit(BODY, "p", T0)
    sent = s.data_to_send()
    [ev] = s.feed(pkt(99, 3), T0 + 1)
    assert isinstance(ev, Unexpected) and "sent again" in ev.reason
    assert s.data_to_send() == sent and s.in_window == 1
    assert s.next_deadline() == T0 + 11
    [ev] = s.feed(pkt(99, 3), T0 + 2)
    assert isinstance(ev, SubmitFailed) and ev.kind is FailureKind.TEMPORARY
    assert "NACK twice" in ev.reason and s.in_window == 0


def test_general_error_response_refuses_a_submit_or_login() -> None:
    s = logged_in()
    s.submit(BODY, "p", T0)
    [ev] = s.feed(pkt(98, 3, (900, 2)), T0)
    assert isinstance(ev, SubmitFailed) and (ev.code, ev.kind) == (2, FailureKind.PERMANENT)
    s2 = Session(user="u", password="p")
    s2.login(T0)
    [ev2] = s2.feed(pkt(98, 1, (900, 1)), T0)
    assert isinstance(ev2, LoginFailed) and s2.state is State.CLOSED


def test_unknown_request_gets_general_error_response() -> None:
    s = logged_in()
    [ev] = s.feed(pkt(7, 2), T0)
    assert isinstance(ev, Unexpected)
    assert s.data_to_send() == pkt(98, 2, (900, 1))
    [ev] = s.feed(b"\x0220:0x2\t\x03", T0)  # unreadable header: nothing to answer
    assert isinstance(ev, Unexpected) and s.data_to_send() == b""
    [ev] = s.feed(b"\x0220:002\tjunk\t\x03", T0)  # readable header: syntax error
    assert isinstance(ev, Unexpected) and s.data_to_send() == pkt(98, 2, (900, 2))


def test_smsc_alive_is_answered() -> None:
    s = logged_in()
    assert s.feed(pkt(40, 2), T0) == []
    assert s.data_to_send() == pkt(90, 2)


def test_framing_across_reads_and_garbage() -> None:
    s = logged_in()
    s.submit(BODY, "p", T0)
    frame = pkt(53, 3, (21, "+1"), (60, "250317174640"))
    events = []
    for b in b"junk" + frame:
        events += s.feed(bytes((b,)), T0)
    assert [type(e) for e in events] == [Unexpected, Unexpected, Unexpected, Unexpected,
                                         SubmitOk]
    s.submit(BODY, "q", T0)
    cut = pkt(53, 5, (21, "+1"), (60, "250317174640"))
    events = s.feed(cut[:10] + cut, T0)  # a packet cut short by a new STX
    assert [type(e) for e in events] == [Unexpected, SubmitOk]


def test_runaway_packet_is_a_protocol_error() -> None:
    s = logged_in()
    s.submit(BODY, "p", T0)
    [ev] = s.feed(b"\x0253:003\t" + b"x" * codec.MAX_PACKET, T0)
    assert isinstance(ev, ProtocolError) and s.state is State.CLOSED
    assert s.close() == ["p"]
    assert s.feed(b"anything", T0) == []


def test_logout_and_close() -> None:
    s = logged_in(window=3)
    s.submit(BODY, "a", T0)
    s.submit(BODY, "b", T0)
    s.logout(T0)
    assert s.data_to_send().endswith(pkt(2, 7))
    assert s.window_room == 0
    [ok] = s.feed(pkt(53, 3, (21, "1"), (60, "250317174640")), T0)  # still answered
    assert isinstance(ok, SubmitOk)
    assert s.feed(pkt(52, 7), T0) == [LoggedOut(by_peer=False)]
    assert s.state is State.CLOSED
    assert s.close() == ["b"]


def test_smsc_logout() -> None:
    s = logged_in()
    assert s.feed(pkt(2, 2), T0) == [LoggedOut(by_peer=True)]
    assert s.data_to_send() == pkt(52, 2) and s.state is State.CLOSED


def test_without_checksums() -> None:
    s = Session(user="MyUserId", password="my()", checksum=False)
    s.login(T0)
    assert s.data_to_send() == b"\x0201:001\t010:MyUserId\t011:my()\t\x03"
    s.feed(b"\x0251:001\t\x03", T0)
    s.submit(b"021:1\t033:x\t", None, T0)
    assert s.data_to_send() == b"\x0203:003\t021:1\t033:x\t\x03"
