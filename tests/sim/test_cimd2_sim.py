"""The CIMD2 SMS Center simulator, driven over loopback by a raw socket.

Requests are the hand-computed frames of tests/carriers/test_cimd2_codec.py or built with
the simulator's own `make_packet`, never with omnigate's codec: what is tested here is
the simulator as an independent peer. Every read is bounded (2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnigate.sim import cimd2 as sim_cimd2
from omnigate.sim.cimd2 import Cimd2Simulator, SimulatorError, checksum, make_packet
from omnigate.sim.control import start_control

READ_TIMEOUT = 2.0
LOGIN = b"\x0201:001\t010:MyUserId\t011:my()\t29\x03"
LOGIN_OK = b"\x0251:001\t3C\x03"
SUBMIT = (b"\x0203:003\t021:+358401234567\t033:_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,\t056:62\t"
          b"22\x03")


def parse(frame: bytes) -> tuple[int, int, dict[str, str]]:
    """A received packet, checked: STX, header, TAB-ended parameters, checksum, ETX."""
    assert frame[:1] == b"\x02" and frame[-1:] == b"\x03", frame
    body, given_sum = frame[:-3], frame[-3:-1]
    assert checksum(body) == given_sum, frame
    head, *fields = body[1:].split(b"\t")
    assert fields[-1] == b""
    params = {f[:3].decode(): f[4:].decode("latin-1") for f in fields[:-1]}
    return int(head[:2]), int(head[3:6]), params


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.number = -1

    def next(self) -> int:
        self.number = self.number + 2 if self.number < 255 else 1
        return self.number

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, op: int, params: list[tuple[str, str]] | None = None
                      ) -> tuple[int, int, dict[str, str]]:
        await self.send(make_packet(op, self.next(), params))
        return await self.read()

    async def read(self) -> tuple[int, int, dict[str, str]]:
        async with asyncio.timeout(READ_TIMEOUT):
            frame = await self.reader.readuntil(b"\x03")
        start = frame.find(b"\x02")
        return parse(frame[start:])

    async def closed(self) -> bool:
        async with asyncio.timeout(READ_TIMEOUT):
            return await self.reader.read() == b""

    async def login(self) -> None:
        await self.send(LOGIN)
        self.number = 1
        assert await self.reader.readuntil(b"\x03") == LOGIN_OK


@pytest.fixture
async def sim() -> AsyncIterator[Cimd2Simulator]:
    s = Cimd2Simulator(user="MyUserId", password="my()")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def connect(sim: Cimd2Simulator) -> AsyncIterator[object]:
    writers: list[asyncio.StreamWriter] = []

    async def make() -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writers.append(writer)
        return Client(reader, writer)

    yield make
    for w in writers:
        w.close()


# --- the happy paths ------------------------------------------------------------------------


async def test_login_alive_logout(sim: Cimd2Simulator, connect) -> None:
    c = await connect()
    await c.login()
    assert sim.logged_in == 1
    assert await c.request(40) == (90, 3, {})
    assert await c.request(2) == (52, 5, {})
    assert await c.closed()
    assert sim.violations == []


async def test_wrong_password(sim: Cimd2Simulator, connect) -> None:
    c = await connect()
    await c.send(b"\x0201:001\t010:MyUserId\t011:nope\t" + checksum(
        b"\x0201:001\t010:MyUserId\t011:nope\t") + b"\x03")
    assert await c.read() == (51, 1, {"900": "100", "901": "invalid login"})
    assert sim.logged_in == 0 and sim.violations == []


async def test_submit_hand_computed_frame_and_report(sim: Cimd2Simulator, connect) -> None:
    sim.dlr = True
    c = await connect()
    await c.login()
    await c.send(SUBMIT)
    c.number = 3
    op, number, params = await c.read()
    assert (op, number) == (53, 3) and params["021"] == "+358401234567"
    ts = params["060"]
    assert len(ts) == 12 and ts.isdigit()
    [rec] = sim.submits
    assert rec.text == "@£$¥èéùìòÇ" and rec.destination == "+358401234567"
    assert rec.status_report_request == 62 and rec.coding == "gsm" and rec.concat is None
    assert rec.message_id == f"+358401234567:{ts}"
    op, number, report = await c.read()
    assert (op, number) == (23, 0)
    assert report["021"] == "+358401234567" and report["060"] == ts and report["061"] == "4"
    await c.send(make_packet(73, 0))
    assert await c.request(40) == (90, 5, {})  # the 73 was taken without complaint
    assert sim.violations == [] and sim.dlr_count == 1


async def test_time_stamps_are_unique_per_destination(sim: Cimd2Simulator, connect) -> None:
    c = await connect()
    await c.login()
    stamps = []
    for _ in range(3):
        _, _, params = await c.request(3, [("021", "+4670"), ("033", "hi")])
        stamps.append(params["060"])
    assert len(set(stamps)) == 3
    _, _, other = await c.request(3, [("021", "+4671"), ("033", "hi")])
    assert other["060"] <= stamps[0]  # another destination has its own sequence


async def test_long_ucs2_and_alphanumeric_submit(sim: Cimd2Simulator, connect) -> None:
    c = await connect()
    await c.login()
    text = "Привет, мир! " * 12
    data = text.encode("utf-16-be")
    chunks = [data[i:i + 134] for i in range(0, len(data), 134)]
    for seq, chunk in enumerate(chunks, 1):
        udh = bytes((5, 0, 3, 42, len(chunks), seq)).hex()
        op, _, params = await c.request(3, [("021", "+4670"), ("027", "Shop"), ("032", udh),
                                            ("034", chunk.hex()), ("030", "8"),
                                            ("050", "167"), ("067", "1")])
        assert op == 53 and "900" not in params
    assert sim.messages() == [("+4670", "Shop", text)]
    rec = sim.submits[0]
    assert rec.alphanumeric and rec.coding == "ucs2" and rec.validity_relative == 167
    assert rec.priority == 1 and rec.concat == (42, 3, 1)
    assert sim.violations == []


# --- strictness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "code", "why"), [
    ([("021", "+4670"), ("099", "1"), ("033", "x")], 3, "parameter 099"),
    ([("021", "+4670"), ("010", "me"), ("033", "x")], 3, "parameter 010"),
    ([("021", "1" * 21), ("033", "x")], 8, "21 characters"),
    ([("021", "+46-70"), ("033", "x")], 8, "type addr"),
    ([("021", "+4670"), ("033", "x_zzy")], 302, "no special combination"),
    ([("021", "+4670"), ("033", "[x]")], 302, "GSM alphabet"),
    ([("021", "+4670"), ("033", "x" * 161)], 302, "161 septets"),
    ([("021", "+4670"), ("033", "x"), ("034", "00")], 303, "together"),
    ([("021", "+4670"), ("032", "050003010201")], 303, "without user data"),
    ([("021", "+4670"), ("034", "0041")], 304, "data coding scheme 0"),
    ([("021", "+4670"), ("030", "8"), ("033", "x")], 304, "data coding scheme 8"),
    ([("033", "x")], 300, "no destination"),
    ([("021", "+4670"), ("021", "+4671"), ("033", "x")], 301, "twice"),
    ([("021", "+4670"), ("033", "x"), ("056", "64")], 310, "status report request 64"),
    ([("021", "+4670"), ("033", "x"), ("067", "0")], 312, "priority 0"),
    ([("021", "+4670"), ("033", "x"), ("050", "-1")], 305, "validity"),
    ([("021", "+4670"), ("023", "+4671"), ("027", "Shop"), ("033", "x")], 306, "both"),
    ([("021", "+4670"), ("032", "060003010201"), ("033", "x")], 8, "length octet"),
])
async def test_bad_submits_are_refused_and_recorded(sim: Cimd2Simulator, connect,
                                                    params: list[tuple[str, str]], code: int,
                                                    why: str) -> None:
    c = await connect()
    await c.login()
    op, number, answer = await c.request(3, params)
    assert (op, number, answer) == (53, 3, {"900": str(code)})
    assert len(sim.violations) == 1 and why in sim.violations[0]
    assert sim.submit_count == 0
    assert await c.request(40) == (90, 5, {})  # the connection carries on


async def test_wrong_checksum_and_packet_numbers_are_nacked(sim: Cimd2Simulator,
                                                            connect) -> None:
    c = await connect()
    await c.login()
    await c.send(SUBMIT[:-3] + b"23\x03")  # checksum one off
    assert await c.read() == (99, 3, {})
    assert "checksum" in sim.violations[-1]
    await c.send(make_packet(40, 5))  # 003 is still expected: the NACKed one was not taken
    assert await c.read() == (99, 5, {})
    assert "expected 003" in sim.violations[-1]
    await c.send(SUBMIT)  # the same packet again, right this time
    op, number, _ = await c.read()
    assert (op, number) == (53, 3)
    await c.send(SUBMIT)  # repeated
    assert await c.read() == (99, 3, {})
    await c.send(make_packet(40, 6))  # even: the SMS Center's numbers
    assert await c.read() == (99, 6, {})
    assert len(sim.violations) == 4 and sim.submit_count == 1


async def test_unknown_operation_and_submit_before_login(sim: Cimd2Simulator,
                                                         connect) -> None:
    c = await connect()
    assert await c.request(3, [("021", "+4670"), ("033", "x")]) == (53, 1, {"900": "1"})
    assert await c.request(7) == (98, 3, {"900": "1"})
    await c.send(b"\x0201x001\t\x03")
    assert await c.read() == (98, 0, {"900": "2"})
    await c.send(make_packet(70, 9))  # answers nothing the simulator sent
    assert await c.request(40) == (90, 5, {})
    assert len(sim.violations) == 4


async def test_window_is_enforced(sim: Cimd2Simulator, connect) -> None:
    sim.no_response = True
    c = await connect()
    await c.login()  # no 019: window 1
    await c.send(make_packet(3, c.next(), [("021", "+4670"), ("033", "a")]))
    await c.send(make_packet(3, c.next(), [("021", "+4670"), ("033", "b")]))
    await sim.wait_for(2)
    assert ["window 1" in v for v in sim.violations] == [True]


async def test_login_window_size(sim: Cimd2Simulator, connect) -> None:
    sim.max_window = 16
    c = await connect()
    assert await c.request(1, [("010", "MyUserId"), ("011", "my()"), ("019", "17")]) == (
        51, 1, {"900": "104"})
    assert await c.request(1, [("010", "MyUserId"), ("011", "my()"), ("019", "16")]) == (
        51, 3, {})
    sim.no_response = True
    for i in range(16):
        await c.send(make_packet(3, c.next(), [("021", "+4670"), ("033", str(i))]))
    await sim.wait_for(16)
    assert sim.violations == []


# --- faults ---------------------------------------------------------------------------------


async def test_throttle_fail_and_drop(sim: Cimd2Simulator, connect) -> None:
    sim.throttle_every, sim.fail_every, sim.drop_after = 2, 3, 4
    c = await connect()
    await c.login()
    answers = [(await c.request(3, [("021", "+4670"), ("033", "x")]))[2].get("900")
               for _ in range(4)]
    assert answers == [None, "10", "300", "10"]
    assert await c.closed()
    assert (sim.throttled_count, sim.failed_count, sim.submit_count) == (2, 1, 1)
    assert sim.violations == []


async def test_response_delay(sim: Cimd2Simulator, connect) -> None:
    sim.response_delay = 0.2
    c = await connect()
    await c.login()
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert (await c.request(3, [("021", "+4670"), ("033", "x")]))[0] == 53
    assert loop.time() - start >= 0.18


# --- MO ---------------------------------------------------------------------------------------


async def test_inject_mo(sim: Cimd2Simulator, connect) -> None:
    with pytest.raises(SimulatorError, match="logged in"):
        await sim.inject_mo("+46709999999", "72000", "x")
    c = await connect()
    await c.login()
    task = asyncio.create_task(sim.inject_mo("+46709999999", "72000", "Hej då {ok} @ home"))
    op, number, params = await c.read()
    assert (op, number) == (20, 0)
    assert params["021"] == "72000" and params["023"] == "+46709999999"
    assert params["033"] == "Hej d_a* _XX(ok_XX) _Oa home" and "032" not in params
    await c.send(make_packet(70, 0))
    await asyncio.wait_for(task, READ_TIMEOUT)
    long = asyncio.create_task(sim.inject_mo("Shop", "72000", "Ж" * 100))
    parts = [await c.read(), await c.read()]
    assert [p[0:2] for p in parts] == [(20, 2), (20, 4)]
    assert all(p[2]["027"] == "Shop" and p[2]["030"] == "8" for p in parts)
    data = b"".join(bytes.fromhex(p[2]["034"]) for p in parts)
    assert data.decode("utf-16-be") == "Ж" * 100
    assert [bytes.fromhex(p[2]["032"])[3:] for p in parts][1][1:] == b"\x02\x02"
    await c.send(make_packet(70, 2) + make_packet(70, 4, [("900", "6")]))
    with pytest.raises(SimulatorError, match="error 6"):
        await asyncio.wait_for(long, READ_TIMEOUT)
    assert sim.mo_count == 3 and sim.violations == []


# --- robustness, command line, control ------------------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> None:
        return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_random_bytes_never_crash_the_simulator(chunks: list[bytes]) -> None:
    loop = asyncio.new_event_loop()
    try:
        s = Cimd2Simulator()
        s._loop = loop
        conn = sim_cimd2._Connection(s)
        conn.connection_made(_Transport())  # type: ignore[arg-type]
        conn.user = "u"
        for chunk in chunks:
            conn.data_received(b"\x02" + chunk)
    finally:
        loop.close()


def test_command_line() -> None:
    parser = argparse.ArgumentParser()
    sim_cimd2.add_arguments(parser)
    args = parser.parse_args(["--listen", "0", "--user", "u", "--password", "p", "--dlr",
                              "--dlr-status", "expired", "--throttle-every", "5",
                              "--max-window", "8"])
    s = sim_cimd2.simulator_from_args(args)
    assert (s.host, s.port, s.user, s.password, s.dlr, s.dlr_status) == (
        "127.0.0.1", 0, "u", "p", True, "expired")
    assert (s.throttle_every, s.max_window, s.response_delay) == (5, 8, 0.0)
    assert parser.parse_args([]).listen == ("127.0.0.1", 9971)


async def test_control_endpoint(sim: Cimd2Simulator) -> None:
    runner, port = await start_control(sim, "127.0.0.1", 0)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.post(f"{base}/faults", json={"throttle_every": 3}) as resp:
                assert resp.status == 200 and (await resp.json())["throttle_every"] == 3
            async with http.post(f"{base}/faults", json={"dlr_status": "bogus"}) as resp:
                assert resp.status == 400
            async with http.get(f"{base}/stats") as resp:
                stats = await resp.json()
                assert stats["logged_in"] == 0 and stats["violations"] == 0
            async with http.post(f"{base}/mo", json={"from": "1", "to": "2", "text": "x"}) as r:
                assert r.status == 409  # nobody logged in
    finally:
        await runner.cleanup()


async def test_reports_wait_for_the_user_to_log_in_again(sim: Cimd2Simulator, connect,
                                                         tmp_path) -> None:
    await sim.stop()
    s = Cimd2Simulator(user="MyUserId", password="my()", dlr=True, dlr_delay=0.2,
                       dlr_status="failed", record=tmp_path / "rec.jsonl")
    await s.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        c = Client(reader, writer)
        await c.login()
        _, _, params = await c.request(3, [("021", "+4670"), ("033", "x"), ("056", "4")])
        await c.request(2)  # logout before the report is due
        writer.close()
        async with asyncio.timeout(READ_TIMEOUT):  # due with nobody logged in: held
            while not s._held.get("MyUserId"):
                await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        c = Client(reader, writer)
        await c.login()
        op, number, report = await c.read()
        assert (op, number, report["060"], report["061"], report["062"]) == (
            23, 0, params["060"], "3", "1")
        writer.close()
        assert s.violations == []
    finally:
        await s.stop()
    [line] = (tmp_path / "rec.jsonl").read_text().splitlines()
    assert json.loads(line)["to"] == "+4670"
