"""The GSM modem link against the modem simulator over loopback: what is particular to a
modem (the Link contract itself runs in test_contract.py). Every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from omnigate.carriers.atmodem import ModemConfig, ModemLink
from omnigate.carriers.base import LinkState
from omnigate.model import FailureKind, Status
from omnigate.sim.modem import ModemSimulator
from omnigate.sms import pdu as tpdu
from omnigate.sms.coding import Coding
from tests.support import (
    LONG_GSM,
    LONG_UCS2,
    LinkFactory,
    LogRecords,
    Recorder,
    link_fixture,
    parts,
    poll,
    sim_fixture,
)

PIN = "2468"
NUMBER = "46700000001"

sim = sim_fixture(ModemSimulator, password=PIN, number=NUMBER, dlr=True)
make_link = link_fixture(ModemLink, name="gsm", pin=PIN, poll_interval=0.2)


# --- sending ----------------------------------------------------------------------------------


async def test_gsm_ucs2_and_long_messages_are_sent_as_pdus(
        sim: ModemSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    submitted = (parts("Hej {du} €5", message_id=1, flash=True)
                 + parts(LONG_GSM, message_id=2, ref=0x42)
                 + parts(LONG_UCS2, message_id=3, ref=0x43, report=False,
                         validity_until=time.time() + 500 * 86400))  # > 63 weeks
    for p in submitted:
        link.submit(p)
    await rec.until(lambda: rec.settled == len(submitted))
    assert rec.failed == []
    # one at a time, in order; the reference names TP-MR and the recipient
    assert [p for p, _ in rec.sent] == submitted
    assert [ref for _, ref in rec.sent] == [f"{i}:46701234567"
                                           for i in range(1, len(submitted) + 1)]
    assert sorted(t for _, _, t in sim.messages()) == sorted(["Hej {du} €5", LONG_GSM,
                                                              LONG_UCS2])
    first = sim.submits[0]
    assert (first.destination, first.toa, first.flash, first.srr) == ("46701234567", 0x91,
                                                                      True, True)
    assert [s.concat for s in sim.submits if s.concat and s.concat[0] == 0x42] == [
        (0x42, 3, 1), (0x42, 3, 2), (0x42, 3, 3)]
    ucs2 = [s for s in sim.submits if s.data_coding == 0x08]
    assert ucs2 and all(not s.srr and s.validity == 255 for s in ucs2)
    assert link.capacity() == 2 and link.describe()["window"] == 1


async def test_one_send_at_a_time_and_rate(sim: ModemSimulator,
                                           make_link: LinkFactory) -> None:
    sim.response_delay = 0.05
    link, rec = await make_link(sim, max_rate=20, queue=10)
    submitted = [p for i in range(6) for p in parts(f"m{i}", message_id=i + 1)]
    for p in submitted:
        link.submit(p)
    assert link.in_flight == 6 and link.describe()["in_window"] == 1
    await rec.until(lambda: len(rec.sent) == 6)
    assert sim.violations == []  # never a command before the previous one's result


async def test_alphanumeric_recipient_is_refused_permanently(
        sim: ModemSimulator, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    [part] = parts("x", recipient="Support")
    link.submit(part)
    await rec.until(lambda: rec.failed)
    [(_, kind, why)] = rec.failed
    assert kind is FailureKind.PERMANENT and "a SIM sends to numbers only" in why
    assert sim.submit_count == 0


@pytest.mark.parametrize(("fault", "kind", "words"), [
    ({"fail_every": 1}, FailureKind.PERMANENT, "+CMS ERROR: 1 (unassigned"),
    ({"throttle_every": 1}, FailureKind.THROTTLED, "+CMS ERROR: 42 (congestion)"),
    ({"error_sends": 1}, FailureKind.TEMPORARY, "+CMS ERROR: 38 (network out of order)")])
async def test_cms_errors_are_classified(sim: ModemSimulator, make_link: LinkFactory,
                                         fault: dict[str, int], kind: FailureKind,
                                         words: str) -> None:
    link, rec = await make_link(sim)
    sim.set_faults(**fault)
    [part] = parts("x")
    link.submit(part)
    await rec.until(lambda: rec.failed)
    assert rec.failed[0][1] is kind and words in rec.failed[0][2]
    assert link.state is LinkState.UP  # the modem is fine; the part was refused


# --- receiving -------------------------------------------------------------------------------


async def test_mo_single_and_multipart_are_handed_on_then_deleted(
        sim: ModemSimulator, make_link: LinkFactory) -> None:
    _, rec = await make_link(sim)
    await sim.inject_mo("+46709876543", NUMBER, "Svar: ja")
    await sim.inject_mo("Bank", NUMBER, "Привет " * 20)
    await rec.until(lambda: len(rec.mo) == 4)
    single, *multi = rec.mo
    assert (single.link, single.sender, single.recipient, single.text, single.concat) == (
        "gsm", "46709876543", NUMBER, "Svar: ja", None)
    assert [m.sender for m in multi] == ["Bank"] * 3
    assert {m.coding for m in multi} == {Coding.UCS2}
    assert [m.concat[1:] for m in multi if m.concat] == [(3, 1), (3, 2), (3, 3)]
    assert "".join(m.text for m in multi) == "Привет " * 20
    await poll(lambda: sim.deleted_count == 4)
    assert sim.storage == {}


async def test_stop_lets_pending_deletions_finish(sim: ModemSimulator,
                                                  make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)  # response_timeout 60 s: a stop must not wait for it
    await sim.inject_mo("+46709876543", NUMBER, "bye " * 100)
    await rec.until(lambda: rec.mo)
    await asyncio.wait_for(link.stop(finish=True), 2)
    assert link.state is LinkState.STOPPED
    assert len(sim.storage) == 3 - len(rec.mo)  # what was handed on was deleted


async def test_messages_stored_while_away_are_swept_in_at_start(
        sim: ModemSimulator, make_link: LinkFactory) -> None:
    await sim.inject_mo("+46709876543", NUMBER, "while you were away")
    sim.storage[9] = (1, bytes.fromhex("00") + b"\x44")  # a broken PDU: logged, deleted
    with LogRecords.attached("omnigate.link.gsm") as logs:
        _, rec = await make_link(sim)
        await rec.until(lambda: rec.mo)
        await poll(lambda: sim.storage == {})
    assert [m.text for m in rec.mo] == ["while you were away"]
    assert any("stored message 9 cannot be decoded" in line for line in logs.lines)


async def test_direct_delivery_with_cnmi_mode_2(sim: ModemSimulator,
                                                make_link: LinkFactory) -> None:
    link, rec = await make_link(sim, setup=["AT+CNMI=2,2,0,1,0", "AT+CREG=1"])
    [part] = parts("report me directly")
    link.submit(part)
    await sim.inject_mo("+46709876543", NUMBER, "direct")
    await rec.until(lambda: rec.mo and rec.reports)
    assert rec.mo[0].text == "direct" and rec.reports[0].status is Status.DELIVERED
    assert sim.storage == {} and sim.deleted_count == 0  # nothing was stored


@pytest.mark.parametrize(("outcome", "status", "error"), [
    ("delivered", Status.DELIVERED, None),
    ("undelivered", Status.UNDELIVERED, "TP-ST 41 (incompatible destination)"),
    ("expired", Status.EXPIRED, "TP-ST 46 (validity period expired)")])
async def test_status_reports_match_the_carrier_reference(
        sim: ModemSimulator, make_link: LinkFactory, outcome: str, status: Status,
        error: str | None) -> None:
    sim.dlr_status = outcome
    link, rec = await make_link(sim)
    [part] = parts("x")
    link.submit(part)
    await rec.until(lambda: rec.reports)
    [(_, ref)] = rec.sent
    [report] = rec.reports
    assert (report.carrier_ref, report.status, report.error) == (ref, status, error)
    await poll(lambda: sim.storage == {})


async def test_a_report_still_pending_is_not_final(sim: ModemSimulator,
                                                   make_link: LinkFactory) -> None:
    sim.dlr_status = "pending"
    link, rec = await make_link(sim)
    [part] = parts("x")
    link.submit(part)
    await poll(lambda: sim.dlr_count == 1 and sim.storage == {})
    assert rec.sent and rec.reports == []


# --- the SIM PIN -----------------------------------------------------------------------------


async def test_wrong_pin_stops_before_the_sim_locks(sim: ModemSimulator,
                                                    make_link: LinkFactory) -> None:
    link, rec = await make_link(sim, up=False, pin="1111")
    await poll(lambda: "1 PIN attempt(s) left" in (link.describe()["last_error"] or ""))
    assert link.state is LinkState.DOWN and LinkState.UP not in rec.states
    assert (sim.sim_state, sim.pin_attempts) == ("SIM PIN", 1)  # two wrong, one left
    await poll(lambda: link.describe()["failed_attempts"] >= 5)
    assert (sim.sim_state, sim.pin_attempts) == ("SIM PIN", 1)  # and so it stays
    assert "check `pin`" in link.describe()["last_error"]


# --- coverage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("urc", [True, False])  # +CREG URC, or found by polling AT+CREG?
async def test_coverage_loss_takes_the_link_down_until_registered(
        sim: ModemSimulator, make_link: LinkFactory, urc: bool) -> None:
    setup = ["AT+CNMI=2,1,0,2,0"] + (["AT+CREG=1"] if urc else [])
    link, rec = await make_link(sim, setup=setup, register_timeout=0.3)
    held = parts("held while coverage goes")
    if urc:  # the URC comes at once: a part in AT+CMGS goes back
        sim.response_delay = 1.0
        link.submit(held[0])
        await sim.wait_for(1)
    with LogRecords.attached("omnigate.link.gsm") as logs:
        sim.set_faults(registration=2)
        await rec.until(lambda: link.state is LinkState.DOWN)
        await logs.until(lambda lines: any("coverage lost: not registered, searching"
                                           in ln for ln in lines))
    assert [(p, k) for p, k, _ in rec.failed] == [(p, FailureKind.TEMPORARY)
                                                  for p in held[:1] if urc]
    assert link.capacity() == 0
    # reconnect attempts wait for registration, in vain
    await poll(lambda: "not registered to a network after 0.3 s: +CREG stat 2" in
               link.describe()["last_error"])
    assert link.state is LinkState.DOWN
    sim.set_faults(registration=5)
    await rec.until(lambda: link.state is LinkState.UP)
    assert rec.states[-3:] == [LinkState.UP, LinkState.DOWN, LinkState.UP]
    sim.response_delay = 0
    [after] = parts("after", message_id=2)
    link.submit(after)
    await rec.until(lambda: rec.sent)
    assert link.describe()["registration"] == "registered, roaming"


async def test_modem_dropping_the_line_returns_held_parts_and_reconnects(
        sim: ModemSimulator, make_link: LinkFactory) -> None:
    sim.response_delay = 1.0
    link, rec = await make_link(sim)
    held = parts("one", message_id=1) + parts("two", message_id=2)
    for p in held:
        link.submit(p)
    await sim.wait_for(1)  # one in AT+CMGS, one queued in the link
    await sim.drop_connections()
    await rec.until(lambda: len(rec.failed) == 2)
    assert [(p, k) for p, k, _ in rec.failed] == [(p, FailureKind.TEMPORARY) for p in held]
    await rec.until(lambda: rec.states[-1] is LinkState.UP)
    sim.response_delay = 0
    link.submit(held[0])
    await rec.until(lambda: rec.sent)


async def test_describe_shows_signal_operator_and_number(
        sim: ModemSimulator, make_link: LinkFactory) -> None:
    sim.set_faults(signal=12)
    link, _ = await make_link(sim)
    await poll(lambda: link.describe()["operator"] is not None)
    d = link.describe()
    assert (d["type"], d["signal"], d["signal_dbm"], d["operator"], d["registration"],
            d["number"]) == ("modem", 12, -89, "Omnisim", "registered, home network", NUMBER)


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "words"), [
    ({}, "exactly one of device, url"),
    ({"device": "/dev/ttyUSB0", "hosts": ["h:1"]}, "got device, hosts"),
    ({"url": "10.0.0.5:4001"}, "needs a scheme"),
    ({"device": "/dev/ttyUSB0", "pin": "12"}, "4-8 digits"),
    ({"device": "/dev/ttyUSB0", "init": ["ATZ\rATE0"]}, "not one AT command line"),
    ({"device": "/dev/ttyUSB0", "smsc_number": "+46x"}, "service centre")])
def test_config_problems_are_named(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        ModemConfig(name="m", **fields)


def test_config_does_not_echo_the_pin() -> None:
    with pytest.raises(ValueError) as err:
        ModemConfig(name="m", device="/dev/x", pin="98765432109")
    assert "98765432109" not in str(err.value)


# --- a serial device: the simulator on a pseudo-terminal ---------------------------------------


async def serial_link(**fields: Any) -> tuple[ModemLink, Recorder]:
    rec = Recorder()
    link = ModemLink(ModemConfig(name="gsm", pin=PIN, reconnect_min=0.05, reconnect_max=0.2,
                                 **fields), rec)
    await link.start()
    return link, rec


async def test_serial_device_through_pyserial() -> None:
    async with ModemSimulator(password=PIN, number=NUMBER, pty=True) as sim:
        assert sim.pty_path is not None
        link, rec = await serial_link(device=sim.pty_path, baudrate=9600)
        try:
            await rec.until(lambda: link.state is LinkState.UP)
            assert link.describe()["host"] == sim.pty_path
            [part] = parts("over a serial line")
            link.submit(part)
            await rec.until(lambda: rec.sent)
            await sim.inject_mo("+46709876543", NUMBER, "back over the line")
            await rec.until(lambda: rec.mo)
        finally:
            link.terminate()
    assert rec.mo[0].text == "back over the line"
    assert [t for _, _, t in sim.messages()] == ["over a serial line"]
    assert sim.violations == []


async def test_a_missing_device_is_a_clear_error() -> None:
    link, rec = await serial_link(device="/dev/omnigate-no-such-tty")
    await rec.until(lambda: LinkState.DOWN in rec.states)
    link.terminate()
    assert "cannot open /dev/omnigate-no-such-tty" in link.describe()["last_error"]


def test_pdu_matches_what_the_link_sends() -> None:
    link = ModemLink(ModemConfig(name="m", device="/dev/x", smsc_number="+46705008999"),
                     events=None)  # type: ignore[arg-type]
    [part] = parts("hellohello", recipient="46708251358", report=False)
    hexpdu, length = link._encode(part)
    assert hexpdu == "07916407058099F9" "0100" "0B916407281553F8" "0000" "0AE8329BFD4697D9EC37"
    assert length == 22
    assert isinstance(tpdu.decode_hex(hexpdu), tpdu.Submit)
