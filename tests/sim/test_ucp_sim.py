"""The UCP simulator over a raw socket, fed frames computed by hand (not by our codec),
so its strictness is checked independently of the link it is meant to check."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from omnigate.sim.control import start_control
from omnigate.sim.ucp import (
    SimulatorError,
    UcpSimulator,
    add_arguments,
    alphanumeric_oadc,
    frame,
    simulator_from_args,
)
from tests.carriers.test_ucp_codec import (
    LOGIN,
    LOGIN_ACK,
    LOGIN_NACK,
    SUBMIT_ALNUM,
    SUBMIT_UCS2_PART,
)

WAIT = 5.0


def cs(body: bytes) -> bytes:
    return b"%02X" % (sum(body) % 256)


def hand(text: str) -> bytes:
    """A frame with LEN and CS filled in by plain arithmetic; LLLLL marks LEN."""
    body = text.replace("LLLLL", f"{len(text) + 2:05d}").encode()
    return b"\x02" + body + cs(body) + b"\x03"


def submit(trn: int, **over: str) -> bytes:
    f = dict.fromkeys(range(33), "")
    f.update({0: "46701234567", 1: "4670000", 3: "1", 5: "3", 18: "3", 20: "4869"})
    names = {"AdC": 0, "OAdC": 1, "VP": 12, "SCTS": 14, "MT": 18, "NB": 19, "Msg": 20,
             "OTOA": 28, "XSer": 30}
    for name, value in over.items():
        f[names[name]] = value
    return hand(f"{trn:02d}/LLLLL/O/51/" + "/".join(f[i] for i in range(33)) + "/")


class Smt:
    """The SMT side, by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> bytes:
        """The next frame, between STX and ETX, its LEN and CS checked by hand."""
        async with asyncio.timeout(WAIT):
            raw = await self.reader.readuntil(b"\x03")
        inner = raw[raw.index(b"\x02") + 1:-1]
        assert int(inner[3:8]) == len(inner)
        assert inner[-2:] == cs(inner[:-2])
        return inner

    async def fields(self) -> tuple[bytes, list[str]]:
        inner = await self.recv()
        return inner[:13], inner[14:-3].decode().split("/")

    async def login(self) -> None:
        await self.send(b"\x02" + LOGIN + b"\x03")
        assert await self.recv() == LOGIN_ACK


@pytest.fixture
async def sim() -> AsyncIterator[UcpSimulator]:
    s = UcpSimulator(user="4670000", password="secret")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def smt(sim: UcpSimulator) -> AsyncIterator[Smt]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    yield Smt(reader, writer)
    writer.close()


def test_frame_builder_matches_hand_arithmetic() -> None:
    assert frame(0, "R", 60, ["A", ""]) == b"\x02" + LOGIN_ACK + b"\x03"
    assert frame(0, "R", 60, ["N", "07", "Authentication failure"]) == \
        b"\x02" + LOGIN_NACK + b"\x03"
    assert alphanumeric_oadc("ABC") == "0641E110"


async def test_login_and_submits(sim: UcpSimulator, smt: Smt) -> None:
    await smt.login()
    await smt.send(b"\x02" + SUBMIT_ALNUM + b"\x03" + b"\x02" + SUBMIT_UCS2_PART + b"\x03")
    head, f = await smt.fields()
    assert head == b"01/00044/R/51" and f[:2] == ["A", ""]
    assert f[2] == sim.submits[0].message_id == f"46701234567:{sim.submits[0].scts}"
    head, f = await smt.fields()
    assert head.startswith(b"02/") and f[0] == "A"
    a, u = sim.submits
    assert (a.source, a.otoa, a.text, a.nrq, a.nt, a.mt) == ("ABC", "5039", "Hi", "1", "3", "3")
    assert (u.source, u.text, u.data_coding, u.concat) == ("72000", "Ж", 0x18, (7, 3, 2))
    assert sim.violations == [] and sim.submit_count == 2
    assert a.scts != u.scts or a.destination != u.destination  # "AdC:SCTS" is unique


async def test_wrong_password_is_refused_not_a_violation(sim: UcpSimulator, smt: Smt) -> None:
    sim.password = "other"
    await smt.send(b"\x02" + LOGIN + b"\x03")
    assert await smt.recv() == LOGIN_NACK
    await smt.send(submit(1))
    _, f = await smt.fields()
    assert f[:2] == ["N", "04"]
    assert sim.violations == ["OT 51 before a successful login"]


@pytest.mark.parametrize(("damage", "ec", "why"), [
    (lambda b: b[:-3] + (b"00" if b[-3:-1] != b"00" else b"01") + b"\x03", "01", "checksum"),
    (lambda b: b.replace(b"/00", b"/01", 1), "02", "LEN"),
])
async def test_damaged_frames(sim: UcpSimulator, smt: Smt, damage: object, ec: str,
                              why: str) -> None:
    await smt.login()
    await smt.send(damage(submit(1)))  # type: ignore[operator]
    head, f = await smt.fields()
    assert head == b"01/00" + head[5:8] + b"/R/51" and f[:2] == ["N", ec]
    assert len(sim.violations) == 1 and why in sim.violations[0]
    assert sim.submit_count == 0


async def test_trn_out_of_sequence_and_repeated(sim: UcpSimulator, smt: Smt) -> None:
    await smt.login()  # TRN 00
    await smt.send(submit(5))
    _, f = await smt.fields()
    assert f == ["N", "02", "TRN out of sequence"]
    sim.response_delay = 0.2
    await smt.send(submit(6) + submit(6))  # the first still awaits its (late) result
    _, f = await smt.fields()
    assert f == ["N", "02", "TRN in use"]
    _, f = await smt.fields()
    assert f[0] == "A"
    assert sim.violations == ["TRN 05 out of sequence (expected 01)",
                              "TRN 06 repeated while its operation awaits a result"]


@pytest.mark.parametrize(("over", "ec", "violation"), [
    ({"Msg": "4a69"}, "02", True),  # lower-case hex
    ({"Msg": "486"}, "02", True),  # odd hex
    ({"Msg": "C869"}, "02", True),  # not a septet
    ({"SCTS": "010203040506"}, "02", True),  # not the SMT's to fill
    ({"VP": "3202301200"}, "22", True),  # 32 February
    ({"MT": "2"}, "23", True),
    ({"MT": "4", "NB": "8", "Msg": "0102"}, "02", True),  # NB disagrees with TMsg
    ({"XSer": "0106050003070302"[:-2]}, "02", True),  # runs past the end
    ({"XSer": "01050500030703"}, "02", True),  # UDHL 5 in a 5-octet UDH
    ({"OTOA": "5039", "OAdC": "0841E110"}, "02", True),  # 8 semi-octets in 3 octets
    ({"OTOA": "9999"}, "02", True),
    ({"AdC": "4670ABC"}, "06", False),
    ({"Msg": "41" * 161}, "24", False),
])
async def test_submit_checks(sim: UcpSimulator, smt: Smt, over: dict[str, str], ec: str,
                             violation: bool) -> None:
    await smt.login()
    await smt.send(submit(1, **over))
    _, f = await smt.fields()
    assert f[:2] == ["N", ec]
    assert len(sim.violations) == (1 if violation else 0), sim.violations
    assert sim.submit_count == 0 and sim.rejected_count == 1


async def test_operations_an_smt_does_not_send(sim: UcpSimulator, smt: Smt) -> None:
    await smt.login()
    await smt.send(hand("01/LLLLL/O/01/123//3/4869/"))
    _, f = await smt.fields()
    assert f[:2] == ["N", "03"] and sim.violations == ["OT 01 is not one an SMT sends us"]
    await smt.send(hand("02/LLLLL/O/31/4670000/0539/"))
    assert await smt.recv() == b"02/00019/R/31/A//6D"  # TRN 05's 70, less 3
    await smt.send(hand("03/LLLLL/O/60/4670000/6/5/1/736563726574//0100//////"))
    _, f = await smt.fields()
    assert f[:2] == ["N", "04"] and "already logged in" in sim.violations[-1]
    assert sim.alert_count == 1


async def test_notification_names_the_submit(sim: UcpSimulator, smt: Smt) -> None:
    sim.dlr = True
    await smt.login()
    await smt.send(submit(1))
    _, ack = await smt.fields()
    head, f = await smt.fields()
    assert head == b"00/" + head[3:8] + b"/O/53"
    assert f"{f[0]}:{f[14]}" == ack[2]  # AdC and SCTS are the reference
    assert (f[1], f[15], f[16], f[18]) == ("4670000", "0", "000", "3")
    text = bytes.fromhex(f[20]).decode("ascii")  # GSM septets of ASCII letters and digits
    assert text.startswith("Message for 46701234567, with identification")
    await smt.send(hand("00/LLLLL/R/53/A//" + ack[2] + "/"))
    await asyncio.sleep(0.05)
    assert sim.dlr_count == 1 and sim.violations == []


async def test_mo(sim: UcpSimulator, smt: Smt) -> None:
    await smt.login()
    task = asyncio.create_task(sim.inject_mo("Bank", "4670000", "Hej {}"))
    head, f = await smt.fields()
    assert head == b"00/" + head[3:8] + b"/O/52"
    assert (f[0], f[1], f[28], f[18], f[20]) == (
        "4670000", alphanumeric_oadc("Bank"), "5039", "3", "48656A201B281B29")
    await smt.send(hand("00/LLLLL/R/52/A//4670000:" + f[14] + "/"))
    await asyncio.wait_for(task, WAIT)
    task = asyncio.create_task(sim.inject_mo("+46709999", "4670000", "x"))
    _, f = await smt.fields()
    assert (f[1], f[28]) == ("46709999", "1139")
    await smt.send(hand("01/LLLLL/R/52/N/02//"))
    with pytest.raises(SimulatorError, match="EC 02"):
        await asyncio.wait_for(task, WAIT)
    assert sim.violations == []


async def test_mo_needs_a_logged_in_smt(sim: UcpSimulator) -> None:
    with pytest.raises(SimulatorError, match="no SMT"):
        await sim.inject_mo("1", "2", "x")


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--listen", "127.0.0.1:0", "--user", "4670000", "--password",
                              "pw", "--dlr", "--dlr-status", "undelivered", "--fail-every", "3"])
    sim = simulator_from_args(args)
    assert (sim.port, sim.user, sim.password, sim.dlr, sim.dlr_status, sim.fail_every) == (
        0, "4670000", "pw", True, "undelivered", 3)
    assert parser.parse_args([]).listen == ("127.0.0.1", 3006)


async def test_faults_and_control_endpoint(sim: UcpSimulator) -> None:
    with pytest.raises(ValueError):
        sim.set_faults(dlr_status="lost")
    with pytest.raises(ValueError):
        sim.set_faults(drop_after=-1)
    runner, port = await start_control(sim, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/faults",
                                 json={"throttle_every": 2, "dlr": True}) as resp:
                assert resp.status == 200
            async with http.get(f"http://127.0.0.1:{port}/stats") as resp:
                stats = await resp.json()
    finally:
        await runner.cleanup()
    assert stats["faults"]["throttle_every"] == 2 and stats["violations"] == 0
