"""The sans-I/O AT dialogue: what it writes for what the modem answers, with time passed
in. The modem's lines here are typed from TS 27.005 / 27.007 examples, not produced by
our simulator."""

from __future__ import annotations

from typing import Any

import pytest

from omnigate.carriers.atmodem import codes
from omnigate.carriers.atmodem.session import (
    Notice,
    Operator,
    Ready,
    Received,
    Registration,
    SendFailed,
    Sent,
    Session,
    Signal,
    StartFailed,
    Timeout,
    Undecodable,
)
from omnigate.model import FailureKind
from omnigate.sms import pdu as tpdu

# "hellohello" from +27838890001 (published SMS-DELIVER example)
DELIVER = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37"
# A status report: MR 42 for +46708251358, delivered (TP-ST 00)
REPORT = "00062A0B916407281553F8" + "42101261730040" + "42101261831540" + "00"


def make(**kw: Any) -> Session:
    args: dict[str, Any] = dict(pin=None, init=["ATZ", "ATE0", "AT+CMEE=1"],
                                setup=["AT+CNMI=2,1,0,2,0"], command_timeout=5.0,
                                response_timeout=30.0, poll_interval=60.0,
                                register_timeout=10.0)
    args.update(kw)
    return Session(**args)


class Modem:
    """Drives a session: what it wrote last, and feeding answers at a chosen time."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.now = 100.0
        self.events: list[Any] = []

    def sent(self) -> str:
        return self.s.data_to_send().decode("latin-1")

    def answer(self, text: str) -> list[Any]:
        evs = self.s.feed(text.encode("latin-1"), self.now)
        self.events += evs
        return evs

    def expect(self, command: str, *answer: str) -> list[Any]:
        assert self.sent() == command + "\r"
        return self.answer("".join(f"\r\n{line}\r\n" for line in answer))


def started(**kw: Any) -> Modem:
    m = Modem(make(**kw))
    m.s.start(m.now)
    m.expect("ATZ", "OK")
    m.expect("ATE0", "OK")
    m.expect("AT+CMEE=1", "OK")
    m.expect("AT+CPIN?", "+CPIN: READY", "OK")
    m.expect("AT+CMGF=0", "OK")
    m.expect("AT+CNMI=2,1,0,2,0", "OK")
    m.expect("AT+CNUM", '+CNUM: "","+46700000001",145', "OK")
    evs = m.expect("AT+CREG?", "+CREG: 1,1", "OK")
    assert evs == [Ready("46700000001")]
    assert m.s.window_room == 1
    m.expect("AT+CMGL=4", "OK")  # the sweep, at once
    assert m.s.next_deadline() == m.now  # then the first poll
    m.s.handle_timer(m.now)
    m.expect("AT+CSQ", "+CSQ: 17,99", "OK")
    m.expect("AT+CREG?", "+CREG: 1,5", "OK")
    m.expect("AT+COPS?", '+COPS: 0,0,"Telia",2', "OK")
    return m


def test_start_up_script_then_sweep_then_poll() -> None:
    m = started()
    assert m.events == [Ready("46700000001"), Signal(17, 99), Registration(5),
                        Operator("Telia")]
    assert m.s.next_deadline() == m.now + 60.0  # the next poll
    m.now += 60
    m.s.handle_timer(m.now)
    assert m.sent() == "AT+CSQ\r"


def test_echo_before_ate0_is_ignored() -> None:
    m = Modem(make())
    m.s.start(m.now)
    assert m.sent() == "ATZ\r"
    assert m.answer("ATZ\r\r\nOK\r\n") == []
    assert m.sent() == "ATE0\r"
    assert m.answer("ATE0\r\r\nOK\r\n") == []
    assert m.sent() == "AT+CMEE=1\r"


def test_pin_entered_when_enough_attempts_are_left() -> None:
    m = Modem(make(pin="1234", init=[]))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: SIM PIN", "OK")
    m.expect('AT+CPINR="SIM PIN"', '+CPINR: "SIM PIN",3,3', "OK")
    m.expect('AT+CPIN="1234"', "OK")
    assert m.sent() == "AT+CMGF=0\r"


def test_wrong_pin_fails_and_says_so() -> None:
    m = Modem(make(pin="1234", init=[]))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: SIM PIN", "OK")
    m.expect('AT+CPINR="SIM PIN"', '+CPINR: "SIM PIN",3,3', "OK")
    [ev] = m.expect('AT+CPIN="1234"', "+CME ERROR: 16")
    assert isinstance(ev, StartFailed) and ev.pin_refused
    assert "refused the PIN" in ev.reason and "incorrect password" in ev.reason
    assert m.sent() == ""  # nothing more is tried on this connection


@pytest.mark.parametrize("left", [1, 0])
def test_pin_not_entered_with_one_attempt_left(left: int) -> None:
    m = Modem(make(pin="1234", init=[]))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: SIM PIN", "OK")
    [ev] = m.expect('AT+CPINR="SIM PIN"', f'+CPINR: "SIM PIN",{left},3', "OK")
    assert isinstance(ev, StartFailed) and f"{left} PIN attempt(s) left" in ev.reason
    assert m.sent() == ""  # no AT+CPIN=: the SIM would lock


def test_without_cpinr_a_refused_pin_is_not_sent_again() -> None:
    m = Modem(make(pin="1234", init=[], pin_refused=True))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: SIM PIN", "OK")
    [ev] = m.expect('AT+CPINR="SIM PIN"', "ERROR")
    assert isinstance(ev, StartFailed) and "refused this PIN before" in ev.reason
    # ... but a first attempt goes ahead when the modem cannot say
    m = Modem(make(pin="1234", init=[]))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: SIM PIN", "OK")
    m.expect('AT+CPINR="SIM PIN"', "ERROR")
    assert m.sent() == 'AT+CPIN="1234"\r'


@pytest.mark.parametrize(("answer", "pin", "words"), [
    ("+CPIN: SIM PUK", "1234", "wants its PUK"),
    ("+CPIN: SIM PIN", None, "`pin` is not set"),
    ("+CPIN: PH-NET PIN", "1234", "not ready: +CPIN: PH-NET PIN")])
def test_sim_states_that_stop_the_start(answer: str, pin: str | None, words: str) -> None:
    m = Modem(make(pin=pin, init=[]))
    m.s.start(m.now)
    [ev] = m.expect("AT+CPIN?", answer, "OK")
    assert isinstance(ev, StartFailed) and words in ev.reason


def test_init_command_refused_fails_the_start() -> None:
    m = Modem(make(init=["AT+FOO"]))
    m.s.start(m.now)
    [ev] = m.expect("AT+FOO", "ERROR")
    assert isinstance(ev, StartFailed) and ev.reason == "AT+FOO answered ERROR"


def test_registration_is_awaited_then_given_up() -> None:
    m = Modem(make(init=[], setup=[], register_timeout=3.0))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: READY", "OK")
    m.expect("AT+CMGF=0", "OK")
    m.expect("AT+CNUM", "OK")  # no number stored: not an error
    assert m.expect("AT+CREG?", "+CREG: 0,2", "OK") == []
    assert m.s.next_deadline() == m.now + 1.0
    m.now += 1.0
    m.s.handle_timer(m.now)
    assert m.expect("AT+CREG?", "+CREG: 0,2", "OK") == []
    m.now += 3.0
    m.s.handle_timer(m.now)
    [ev] = m.expect("AT+CREG?", "+CREG: 0,3", "OK")
    assert isinstance(ev, StartFailed)
    assert ev.reason == "not registered to a network after 3 s: +CREG stat 3 (registration denied)"


def test_send_waits_for_the_prompt_then_writes_pdu_and_ctrl_z() -> None:
    m = started()
    m.s.submit(("0011000B916407281553F80000AA0AE8329BFD4697D9EC37", 23), "part", m.now)
    assert m.s.window_room == 0 and m.s.in_window == 1
    assert m.sent() == "AT+CMGS=23\r"
    assert m.answer("\r\n> ") == []
    assert m.sent() == "0011000B916407281553F80000AA0AE8329BFD4697D9EC37\x1a"
    assert m.answer("\r\n+CMGS: 17\r\n\r\nOK\r\n") == [Sent("part", 17)]
    assert m.s.window_room == 1 and m.s.in_window == 0


def test_unsolicited_lines_anywhere_in_a_send() -> None:
    m = started()
    m.s.submit(("00AB", 1), "part", m.now)
    assert m.sent() == "AT+CMGS=1\r"
    assert m.answer('\r\n+CMTI: "SM",3\r\n\r\n> ') == []
    assert m.sent() == "00AB\x1a"
    evs = m.answer(f"\r\nRING\r\n\r\n+CMT: ,23\r\n{DELIVER}\r\n\r\n+CMGS: 5\r\n\r\nOK\r\n")
    assert isinstance(evs[0], Notice) and "RING" in evs[0].text
    assert isinstance(evs[1], Received) and evs[1].index is None
    assert evs[2] == Sent("part", 5)
    # the +CMTI is read once the send is done
    evs = m.expect("AT+CMGR=3", "+CMGR: 0,,23", DELIVER, "OK")
    [rec] = evs
    assert isinstance(rec, Received) and rec.index == 3
    assert isinstance(rec.message, tpdu.Deliver)
    assert tpdu.text_of(rec.message.coding, rec.message.data) == "hellohello"
    m.s.delete(3, m.now)
    m.expect("AT+CMGD=3", "OK")


def test_sweep_lists_messages_and_reports() -> None:
    m = Modem(make(init=[], setup=[]))
    m.s.start(m.now)
    m.expect("AT+CPIN?", "+CPIN: READY", "OK")
    m.expect("AT+CMGF=0", "OK")
    m.expect("AT+CNUM", "OK")
    m.expect("AT+CREG?", "+CREG: 1,1", "OK")
    evs = m.expect("AT+CMGL=4", "+CMGL: 1,1,,23", DELIVER, "+CMGL: 4,0,,25", REPORT,
                   "+CMGL: 6,0,,3", "ZZ", "OK")
    assert [(type(e), getattr(e, "index", None)) for e in evs] == [
        (Received, 1), (Received, 4), (Undecodable, 6)]
    report = evs[1].message
    assert isinstance(report, tpdu.StatusReport) and report.mr == 42 and report.delivered


def test_status_report_delivered_directly() -> None:
    m = started()
    [ev] = m.answer(f"\r\n+CDS: 25\r\n{REPORT}\r\n")
    assert isinstance(ev, Received) and isinstance(ev.message, tpdu.StatusReport)
    assert m.sent() == ""  # nothing to delete


def test_registration_urc_and_answer_told_apart() -> None:
    m = started()
    assert m.answer("\r\n+CREG: 2\r\n") == [Registration(2)]
    assert m.answer('\r\n+CREG: 1,"00C3","0010"\r\n') == [Registration(1)]


@pytest.mark.parametrize(("error", "kind", "words"), [
    ("+CMS ERROR: 1", FailureKind.PERMANENT, "unassigned"),
    ("+CMS ERROR: 38", FailureKind.TEMPORARY, "network out of order"),
    ("+CMS ERROR: 42", FailureKind.THROTTLED, "congestion"),
    ("+CMS ERROR: 331", FailureKind.TEMPORARY, "no network service"),
    ("+CMS ERROR: 304", FailureKind.PERMANENT, "invalid PDU mode parameter"),
    ("+CMS ERROR: 150", FailureKind.PERMANENT, "150"),
    ("ERROR", FailureKind.TEMPORARY, "ERROR")])
def test_cmgs_errors_are_classified(error: str, kind: FailureKind, words: str) -> None:
    m = started()
    m.s.submit(("00AB", 1), "part", m.now)
    m.sent()
    m.answer("\r\n> ")
    m.sent()
    [ev] = m.answer(f"\r\n{error}\r\n")
    assert isinstance(ev, SendFailed) and ev.kind is kind and words in ev.reason


def test_error_instead_of_prompt_fails_the_part() -> None:
    m = started()
    m.s.submit(("00AB", 1), "part", m.now)
    assert m.sent() == "AT+CMGS=1\r"
    [ev] = m.answer("\r\n+CMS ERROR: 304\r\n")
    assert isinstance(ev, SendFailed) and ev.kind is FailureKind.PERMANENT
    assert m.s.window_room == 1


def test_timeout_hands_the_part_back_once() -> None:
    m = started()
    m.s.submit(("00AB", 1), "part", m.now)
    m.sent()
    assert m.s.next_deadline() == m.now + 30.0
    assert m.s.handle_timer(m.now + 29.9) == []
    [ev] = m.s.handle_timer(m.now + 30.0)
    assert ev == Timeout("part", "AT+CMGS=1", 30.0)
    assert m.s.close() == []  # not held twice
    s2 = started().s
    s2.submit(("00AB", 1), "a", 0.0)
    s2.submit(("00AB", 1), "b", 0.0)
    assert s2.close() == ["a", "b"]


def test_noise_is_bounded_and_reported() -> None:
    m = started()
    [ev] = m.answer("x" * 2000)
    assert isinstance(ev, Notice) and "without a line end" in ev.text
    assert m.answer("\r\nOK\r\n") == [Notice("OK without a command")]


def test_codes_tables() -> None:
    assert codes.describe_error("+CME ERROR: 16") == "+CME ERROR: 16 (incorrect password)"
    assert codes.describe_error("+CMS ERROR: 999") == "+CMS ERROR: 999"
    assert codes.cms_kind(999) is FailureKind.TEMPORARY and codes.cms_kind(200) is \
        FailureKind.PERMANENT
    assert (codes.rssi_dbm(0), codes.rssi_dbm(31), codes.rssi_dbm(99)) == (-113, -51, None)
