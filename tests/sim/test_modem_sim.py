"""The GSM modem simulator over a raw socket, typed AT commands and a hand-checked PDU
(not our link or encoder), so its strictness is checked independently of the link it is
meant to check."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from omnigate.sim.control import start_control
from omnigate.sim.modem import (
    ModemSimulator,
    SimulatorError,
    add_arguments,
    simulator_from_args,
)
from omnigate.sms import pdu as tpdu

WAIT = 5.0
# "hellohello" to +46708251358, validity AA: the published SMS-SUBMIT (23 octets of TPDU)
HELLO = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


class Terminal:
    """Our side of the serial line, typed by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def at(self, line: str, until: bytes = b"\r\n") -> str:
        """Send a command line; what comes back up to and including its final result."""
        self.writer.write(line.encode() + b"\r")
        return await self.read_until_final(until)

    async def read_until_final(self, until: bytes = b"\r\n") -> str:
        data = b""
        async with asyncio.timeout(WAIT):
            while not any(data.endswith(b"\r\n" + f + until) for f in
                          (b"OK", b"ERROR", *(b"+CME ERROR: %d" % i for i in range(100)),
                           *(b"+CMS ERROR: %d" % i for i in range(600)))) \
                    and not data.endswith(b"> "):
                data += await self.reader.read(4096)
        return data.decode("latin-1")


@pytest.fixture
async def sim() -> AsyncIterator[ModemSimulator]:
    async with ModemSimulator(password="1234", number="46700000001", dlr=True) as s:
        yield s


@pytest.fixture
async def term(sim: ModemSimulator) -> AsyncIterator[Terminal]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    yield Terminal(reader, writer)
    writer.close()


async def unlocked(term: Terminal) -> None:
    assert await term.at("ATE0") == "ATE0\r\r\nOK\r\n"  # echoed: echo was still on
    assert await term.at("AT+CMEE=1") == "\r\nOK\r\n"
    assert await term.at('AT+CPIN="1234"') == "\r\nOK\r\n"
    assert await term.at("AT+CMGF=0") == "\r\nOK\r\n"


async def test_pin_three_wrong_lock_the_sim(sim: ModemSimulator, term: Terminal) -> None:
    await term.at("ATE0")
    await term.at("AT+CMEE=1")
    assert "+CPIN: SIM PIN" in await term.at("AT+CPIN?")
    assert await term.at("AT+CMGF=0") == "\r\n+CME ERROR: 11\r\n"  # PIN first
    assert '+CPINR: "SIM PIN",3,3' in await term.at('AT+CPINR="SIM PIN"')
    for left in (2, 1, 0):
        assert await term.at('AT+CPIN="9999"') == "\r\n+CME ERROR: 16\r\n"
        assert sim.pin_attempts == left
    assert "+CPIN: SIM PUK" in await term.at("AT+CPIN?")
    assert await term.at('AT+CPIN="1234"') == "\r\n+CME ERROR: 12\r\n"
    assert sim.violations == []


async def test_submit_by_hand_is_recorded_and_reported(sim: ModemSimulator,
                                                       term: Terminal) -> None:
    await unlocked(term)
    assert await term.at("AT+CNMI=2,1,0,2,0") == "\r\nOK\r\n"
    assert await term.at("AT+CMGS=23") == "\r\n> "
    term.writer.write(HELLO.encode() + b"\x1a")
    assert await term.read_until_final() == "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    [rec] = sim.submits
    assert (rec.destination, rec.text, rec.validity, rec.srr) == ("46708251358", "hellohello",
                                                                  0xAA, False)
    assert sim.violations == []


async def test_status_report_is_stored_and_announced(sim: ModemSimulator,
                                                     term: Terminal) -> None:
    await unlocked(term)
    await term.at("AT+CNMI=2,1,0,2,0")
    await term.at("AT+CMGS=23")
    term.writer.write(("0031" + HELLO[4:]).encode() + b"\x1a")  # SRR and VPF set
    await term.read_until_final()
    async with asyncio.timeout(WAIT):
        line = await term.reader.readuntil(b'+CDSI: "SM",1\r\n')
    assert line.endswith(b'+CDSI: "SM",1\r\n')
    answer = await term.at("AT+CMGR=1")
    pdu_line = answer.split("\r\n")[2]
    report = tpdu.decode_hex(pdu_line)  # our decoder reads what the simulator wrote
    assert isinstance(report, tpdu.StatusReport)
    assert (report.mr, report.recipient.value, report.status) == (1, "46708251358", 0)
    assert await term.at("AT+CMGD=1") == "\r\nOK\r\n"
    assert await term.at("AT+CMGD=1") == "\r\n+CMS ERROR: 321\r\n"


async def test_mo_is_stored_and_readable_by_list(sim: ModemSimulator, term: Terminal) -> None:
    await unlocked(term)
    await term.at("AT+CNMI=2,1,0,2,0")
    await sim.inject_mo("Bank", "46700000001", "x" * 200)
    async with asyncio.timeout(WAIT):
        await term.reader.readuntil(b'+CMTI: "SM",2\r\n')
    answer = await term.at("AT+CMGL=4")
    lines = [ln for ln in answer.split("\r\n") if ln]
    assert lines[0].startswith("+CMGL: 1,0,,") and lines[2].startswith("+CMGL: 2,0,,")
    parts = [tpdu.decode_hex(lines[i]) for i in (1, 3)]
    assert all(isinstance(p, tpdu.Deliver) and p.sender.value == "Bank" for p in parts)
    assert "".join(tpdu.text_of(p.coding, p.data) for p in parts) == "x" * 200  # type: ignore[union-attr]
    with pytest.raises(SimulatorError, match="this SIM's number"):
        await sim.inject_mo("+46709876543", "46711111111", "wrong SIM")


@pytest.mark.parametrize(("lines", "violation"), [
    (["AT+CMGS=23"], "in text mode"),
    (["AT+CMGF=0", "AT+CMGS=30", HELLO + "\x1a"], "but the TPDU has 23 octets"),
    (["AT+CMGF=0", "AT+CMGS=abc"], "AT+CMGS=<TPDU length>"),
    (["AT+CMGF=0", "AT+CMGS=23", "00" + "01" + HELLO[4:].replace("0B9164", "0BD064") + "\x1a"],
     "not a number a SIM can send to"),
    (["hello"], "is not an AT command")])
async def test_strictness(sim: ModemSimulator, term: Terminal, lines: list[str],
                          violation: str) -> None:
    await term.at("ATE0")
    await term.at("AT+CMEE=1")
    await term.at('AT+CPIN="1234"')
    for line in lines:
        if line.endswith("\x1a"):
            term.writer.write(line.encode())
            await term.read_until_final()
        else:
            await term.at(line)
    assert any(violation in v for v in sim.violations), sim.violations
    sim.violations.clear()


async def test_a_command_before_the_final_result_is_a_violation(
        sim: ModemSimulator, term: Terminal) -> None:
    await unlocked(term)
    sim.response_delay = 0.3
    await term.at("AT+CMGS=23")
    term.writer.write(HELLO.encode() + b"\x1aAT+CSQ\r")
    assert await term.read_until_final() == "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert sim.violations == ["command 'AT+CSQ' before the previous one's final result code"]
    sim.violations.clear()


async def test_control_endpoint_changes_coverage_and_signal(sim: ModemSimulator,
                                                            term: Terminal) -> None:
    await unlocked(term)
    await term.at("AT+CREG=1")
    runner, port = await start_control(sim, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/faults",
                                 json={"registration": 2, "signal": 5}) as resp:
                assert resp.status == 200
                faults = await resp.json()
            async with http.post(f"http://127.0.0.1:{port}/faults",
                                 json={"registration": 9}) as bad:
                assert bad.status == 400 and "registration" in (await bad.json())["error"]
    finally:
        await runner.cleanup()
    assert (faults["registration"], faults["signal"]) == (2, 5)
    async with asyncio.timeout(WAIT):
        await term.reader.readuntil(b"+CREG: 2\r\n")
    assert "+CSQ: 5,99" in await term.at("AT+CSQ")
    assert "+COPS: 0\r\n" in await term.at("AT+COPS?")
    await term.at("AT+CMGS=23")
    term.writer.write(HELLO.encode() + b"\x1a")
    assert await term.read_until_final() == "\r\n+CMS ERROR: 331\r\n"  # no network service
    with pytest.raises(SimulatorError, match="not registered"):
        await sim.inject_mo("+46709876543", "", "no coverage")


def test_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--listen", "127.0.0.1:0", "--password", "4321", "--dlr",
                              "--number", "46709999999", "--response-delay", "2", "--pty"])
    sim = simulator_from_args(args)
    assert (sim.password, sim.number, sim.dlr, sim.response_delay, sim.sim_state, sim.pty) == (
        "4321", "46709999999", True, 2.0, "SIM PIN", True)
