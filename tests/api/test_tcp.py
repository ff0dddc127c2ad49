"""TCP line protocol end to end: raw sockets on loopback -> Gateway -> SMPP -> simulator.

The clients write bytes as a person in telnet/nc or a script would; the
gateway is the real one with a real store (SQLite and PostgreSQL where the
store matters) and the SMSC simulator.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from omnigate.api.tcp import refusal
from omnigate.model import SubmitError
from omnigate.sim.smpp import SmscSimulator
from omnigate.store import schema
from tests.api.tcpclient import Client, tcp_config
from tests.support import LogRecords

ID = r"(\d+)"


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/omnigate.db"


async def start(gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
                store_url: str | None = None, **tcp: Any) -> Any:
    gw = await gateway_factory(tcp_config(store_url or sqlite(tmp_path), smsc.port, tmp_path,
                                          **tcp))
    assert gw.tcp is not None
    return gw


async def test_person_in_telnet(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                                tmp_path: Path) -> None:
    """Telnet negotiation bytes, LF-only lines, lower case, an empty line, HELP, SEND, QUIT."""
    gw = await start(gateway_factory, smsc, tmp_path)
    client = await Client.connect(gw.tcp.port, eol=b"\n")
    # what a telnet client may say first: IAC DO SUPPRESS-GO-AHEAD, IAC WILL NAWS,
    # and a window size subnegotiation IAC SB NAWS 0 80 0 24 IAC SE
    await client.write(b"\xff\xfd\x03\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0")
    assert re.fullmatch(r"\+OK omnigate \S+ ready", await client.line())
    assert await client.ask("send 0701234567 hi") == "-ERR auth log in first: AUTH <user> <password>"
    assert await client.ask("auth pbx user-pw") == "+OK logged in as pbx"
    await client.send("")  # Enter on its own: no answer, no error
    await client.send("help")
    head, lines = await client.block()
    assert head.startswith("+OK commands")
    assert any(line.startswith("SEND <numbers> <text>") for line in lines)
    assert not any(line.startswith("LINKS") for line in lines)  # not an admin
    # a command split by telnet bytes (IAC NOP) and sent in two writes
    await client.write(b"SeNd 070-123 45 67\xff\xf1")
    await client.write(b" Pump 3: pressure low\n")
    # "070-123 45 67" is one word only up to the space: the number is 070-123
    assert (await client.line()).startswith("-ERR number to:")
    answer = await client.ask("Send 0701234567 Pump 3: pressure low")
    m = re.fullmatch(rf"\+OK {ID} \+46701234567", answer)
    assert m, answer
    await smsc.wait_for(1)
    assert smsc.submits[0].text == "Pump 3: pressure low"
    assert await client.ask("quit") == "+OK bye"
    assert await client.closed()


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
async def test_script_sends_and_waits_for_delivery(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        store_url: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, store_url, accounts=False)
    client = await Client.session(gw.tcp.port)
    assert await client.ask("AUTH x y") == "+OK no accounts are configured: no login needed"
    assert await client.ask("FROM Alarm") == "+OK sender Alarm"
    answer = await client.ask("SEND 0701234567,+46708321321,0701234567 Door open")
    lines = [answer, await client.line(), await client.line()]
    ids = [re.fullmatch(rf"\+OK {ID} (\+\d+)", x) for x in lines]
    assert all(ids), lines
    # one line per number as listed: the repeated number is the same message
    assert [m.group(2) for m in ids if m] == ["+46701234567", "+46708321321", "+46701234567"]
    first = ids[0].group(1) if ids[0] else ""
    assert ids[2] and ids[2].group(1) == first
    waited = await client.ask(f"WAIT {first} 10", timeout=12)
    assert re.fullmatch(rf"\+OK {first} delivered \+46701234567 link=smsc1 at=\S+", waited), waited
    await smsc.wait_for(2)
    assert {(s.destination, s.text) for s in smsc.submits} == {
        ("46701234567", "Door open"), ("46708321321", "Door open")}
    assert all(s.source == "Alarm" for s in smsc.submits)
    status = await client.ask(f"STATUS {first}")
    assert status.startswith(f"+OK {first} delivered +46701234567 link=smsc1 at=")
    # WAIT on a message that is final already answers from the store at once
    t0 = time.monotonic()
    assert (await client.ask(f"wait {first}")).startswith(f"+OK {first} delivered")
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
async def test_data_with_dot_stuffing(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                                      tmp_path: Path, store_url: str) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, store_url)
    client = await Client.session(gw.tcp.port, login="pbx")
    assert await client.ask("DATA") == "-ERR sequence DATA needs SEND <numbers> before it"
    assert await client.ask("SEND 0701234567") == "+OK 1 number; now DATA"
    assert await client.ask("FLASH on") == "+OK flash on"
    assert await client.ask("data") == "+OK send the text; end it with a line holding ."
    await client.send("Line one", "..leading dot", ".", "")
    # the '.' ended the text; "" after it is an empty command line (no answer)
    answer = await client.line()
    m = re.fullmatch(rf"\+OK {ID} \+46701234567", answer)
    assert m, answer
    async with gw.store.engine.connect() as conn:
        row = (await conn.execute(select(schema.messages.c.text, schema.messages.c.flash)
                                  .where(schema.messages.c.id == int(m.group(1))))).one()
    assert row.text == "Line one\n.leading dot"
    assert row.flash is True
    await smsc.wait_for(1)
    assert smsc.submits[0].text == "Line one\n.leading dot"
    # DATA needs a fresh SEND <numbers> each time
    assert (await client.ask("DATA")).startswith("-ERR sequence")


async def test_pipelined_commands_answer_in_order(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    """Forty commands in one write: SENDs (submitted together), a bad one, a HELP between."""
    gw = await start(gateway_factory, smsc, tmp_path)
    client = await Client.session(gw.tcp.port, login="pbx")
    commands = [f"SEND 07012345{i:02d} n{i}" for i in range(40)]
    commands[7] = "SEND 0701 too short"
    commands[20] = "SEND 0701234567,,0708321321 empty entry"
    commands[30] = "STATUS 1"
    await client.send(*commands)
    answers = [await client.line() for _ in commands]
    for i, answer in enumerate(answers):
        if i == 7:
            assert answer.startswith("-ERR number to: '0701'"), answer
        elif i == 20:
            assert answer.startswith("-ERR syntax empty number"), answer
        elif i == 30:
            assert answer == "-ERR not-found no message 1"
        else:
            assert re.fullmatch(rf"\+OK {ID} \+467012345{i:02d}", answer), (i, answer)
    await smsc.wait_for(37)
    assert sorted(s.text for s in smsc.submits) == sorted(
        f"n{i}" for i in range(40) if i not in (7, 20, 30))
    # a FROM between pipelined SENDs applies to the SENDs after it only
    await client.send("FROM Alpha", "SEND 0701234567 a1", "SEND 0701234568 a2", "FROM Beta",
                      "SEND 0701234569 b1")
    assert [(await client.line())[:4] for _ in range(5)] == ["+OK "] * 5
    await smsc.wait_for(40)
    assert {s.text: s.source for s in smsc.submits if s.text[0] in "ab"} == {
        "a1": "Alpha", "a2": "Alpha", "b1": "Beta"}


async def test_error_codes(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                           tmp_path: Path) -> None:
    """Each -ERR code a session can meet, with the session going on after each."""
    gw = await start(gateway_factory, smsc, tmp_path, messages={"max_parts": 1},
                     max_recipients=2)
    client = await Client.session(gw.tcp.port)
    assert (await client.ask("LINKS")).startswith("-ERR auth log in first")
    assert (await client.ask("FLY away")) == "-ERR unknown no command 'FLY'; HELP lists them"
    assert await client.ask("AUTH pbx") == "-ERR syntax AUTH <user> <password>"
    assert await client.ask("AUTH pbx user-pw") == "+OK logged in as pbx"
    expected = {
        "LINKS": "-ERR forbidden LINKS needs an account with the admin role",
        "SEND": "-ERR syntax SEND <numbers> <text>, or SEND <numbers> then DATA",
        "SEND 0701234567,0701234568,0701234569 x": "-ERR syntax 3 numbers; at most 2 in one SEND",
        "SEND 0801234567 landline": "-ERR number to: ",
        "SEND 0701234567 " + "x" * 161: "-ERR text text: ",
        "FROM ThisIsTooLongASender": "-ERR sender from: ",
        "FROM": "-ERR syntax FROM <sender>",
        "FLASH maybe": "-ERR syntax FLASH ON|OFF",
        "STATUS abc": "-ERR syntax a message id is a number, not 'abc'",
        "STATUS 42": "-ERR not-found no message 42",
        "STATUS 99999999999999999999": "-ERR syntax a message id is a number",
        "WAIT 42 nine": "-ERR syntax seconds: 0 to 3600",
        "DATA": "-ERR sequence DATA needs SEND <numbers> before it",
    }
    for command, answer in expected.items():
        got = await client.ask(command)
        assert got.startswith(answer), (command, got)
    await client.write(b"SEND 0701234567 caf\xe9\r\n")  # Latin-1, not UTF-8
    assert await client.line() == ("-ERR encoding the line is not valid utf-8 (byte 0xe9 at 19);"
                                   " nothing done")
    # WAIT that runs out: the link is held down, so the message stays queued
    await smsc.stop()
    sent = await client.ask("SEND 0701234567 later")
    id = sent.split()[1]
    assert re.fullmatch(rf"-ERR timeout message {id} is still (queued|sending) after 0.3s",
                        await client.ask(f"WAIT {id} 0.3"))


def test_every_submit_error_has_a_code() -> None:
    cases = {
        SubmitError("store", "busy", kind="unavailable"): "-ERR unavailable store: busy",
        SubmitError("auth", "no", kind="auth"): "-ERR auth auth: no",
        SubmitError("forbidden", "net", kind="forbidden"): "-ERR forbidden forbidden: net",
        SubmitError("body", "big", kind="too_large"): "-ERR too-long body: big",
        SubmitError("to", "bad\nnumber"): "-ERR number to: bad number",
        SubmitError("text", "empty"): "-ERR text text: empty",
        SubmitError("from", "long"): "-ERR sender from: long",
        SubmitError("priority", "0..9"): "-ERR invalid priority: 0..9",
        SubmitError("rate", "slow down", kind="some-new-kind"): "-ERR invalid rate: slow down",
    }
    for exc, line in cases.items():
        assert refusal(exc) == line


async def test_wrong_auth_slows_down_and_is_logged(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, auth_delay=0.1)
    with LogRecords.attached("omnigate.tcp") as records:
        client = await Client.session(gw.tcp.port)
        delays = []
        for _ in range(3):
            t0 = time.monotonic()
            assert await client.ask("AUTH pbx wrong password") == "-ERR auth wrong user or password"
            delays.append(time.monotonic() - t0)
        assert await client.line() == "-ERR auth 3 wrong tries; closing"
        assert await client.closed()
        # doubling per failure: 0.1, 0.2, 0.4 s (plus one scrypt each)
        assert delays[0] >= 0.1 and delays[1] >= 0.2 and delays[2] >= 0.4, delays
        # a new connection from the same address starts where the last one ended
        again = await Client.session(gw.tcp.port)
        t0 = time.monotonic()
        assert await again.ask("AUTH nobody guess") == "-ERR auth wrong user or password"
        assert time.monotonic() - t0 >= 0.8
        # and the right password still works, and resets the count
        assert await again.ask("AUTH pbx user-pw") == "+OK logged in as pbx"
    refused = [line for line in records.lines if "refused" in line and "AUTH" in line]
    assert len(refused) == 4
    assert "'pbx' from 127.0.0.1" in refused[0] and "answering after 0.1s" in refused[0]
    assert not any("wrong password" in line for line in records.lines)  # never the secret


async def test_client_outside_allow_is_refused(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, allow=["10.0.0.0/8"])
    client = await Client.connect(gw.tcp.port)
    assert await client.line() == "-ERR forbidden client address 127.0.0.1 is not allowed"
    assert await client.closed()
    assert smsc.submit_count == 0


async def test_idle_client_is_told_and_closed(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, idle_timeout=0.3)
    client = await Client.session(gw.tcp.port)
    t0 = time.monotonic()
    assert await client.line() == "-ERR timeout no command for 0.3s; closing"
    assert 0.25 <= time.monotonic() - t0 < 2.0
    assert await client.closed()
    # silence in the middle of a DATA text counts the same
    writer = await Client.session(gw.tcp.port, login="pbx")
    await writer.send("SEND 0701234567", "DATA", "half a text")
    assert (await writer.line()).startswith("+OK 1 number")
    assert (await writer.line()).startswith("+OK send the text")
    assert await writer.line() == "-ERR timeout no command for 0.3s; closing"
    assert await writer.closed()
    assert smsc.submit_count == 0


async def test_max_sessions(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                            tmp_path: Path) -> None:
    """Beyond max_sessions each connection gets -ERR busy; the sessions in keep working."""
    gw = await start(gateway_factory, smsc, tmp_path, accounts=False, max_sessions=3)
    inside = [await Client.session(gw.tcp.port) for _ in range(3)]
    crowd = await asyncio.gather(*(Client.connect(gw.tcp.port) for _ in range(500)))
    answers = await asyncio.gather(*(c.line() for c in crowd))
    assert set(answers) == {"-ERR busy 3 sessions already; try again later"}
    assert all(await asyncio.gather(*(c.closed() for c in crowd)))
    for i, client in enumerate(inside):
        assert (await client.ask(f"SEND 070123456{i} still here")).startswith("+OK ")
    await smsc.wait_for(3)
    await inside[0].ask("QUIT")
    assert await inside[0].closed()
    for _ in range(50):  # the server notices the QUIT's close at once; bounded anyway
        late = await Client.connect(gw.tcp.port)
        greeting = await late.line()
        if greeting.startswith("+OK"):
            break
        await asyncio.sleep(0.02)
    assert greeting.startswith("+OK omnigate")


async def test_long_line_is_refused_and_session_goes_on(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, accounts=False, max_line=1000)
    client = await Client.session(gw.tcp.port)
    big = b"SEND 0701234567 " + b"x" * (10 << 20) + b"\n"  # a 10 MB line, written in pieces
    for i in range(0, len(big), 1 << 20):
        await client.write(big[i:i + (1 << 20)])
    assert await client.line(timeout=20) == "-ERR too-long line longer than 1000 bytes; ignored"
    assert (await client.ask("SEND 0701234567 fine")).startswith("+OK ")
    # a DATA text over the limit is read to its end and refused once
    assert (await client.ask("SEND 0701234567")).startswith("+OK 1 number")
    assert (await client.ask("DATA")).startswith("+OK send the text")
    await client.send(*(["y" * 300] * 5), ".")
    assert await client.line() == "-ERR too-long the text is over 1000 bytes; nothing sent"
    await smsc.wait_for(1)
    assert [s.text for s in smsc.submits] == ["fine"]


async def test_charset_for_old_boxes(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                                     tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, accounts=False, charset="iso-8859-1")
    client = await Client.session(gw.tcp.port)
    await client.write(b"SEND 0701234567 caf\xe9 \xe0 8\n")
    assert (await client.line()).startswith("+OK ")
    await smsc.wait_for(1)
    assert smsc.submits[0].text == "café à 8"


async def test_binary_garbage_and_stop(gateway_factory: Callable[..., Any],
                                       smsc: SmscSimulator, tmp_path: Path) -> None:
    """Garbage gets its -ERR lines; a stopping gateway tells the session before closing."""
    gw = await start(gateway_factory, smsc, tmp_path, accounts=False)
    client = await Client.session(gw.tcp.port)
    await client.write(bytes(b for b in range(1, 256) if b != 10) * 4 + b"\n")
    answer = await client.line()
    assert answer.startswith(("-ERR encoding", "-ERR unknown")), answer
    assert (await client.ask("SEND 0701234567 after garbage")).startswith("+OK ")
    await gw.tcp.stop(grace=1.0)
    assert await client.line() == "-ERR unavailable omnigate is stopping; try again later"
    assert await client.closed()


@pytest.mark.skipif(shutil.which("nc") is None, reason="nc (netcat) is not installed")
async def test_nc_session(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                          tmp_path: Path) -> None:
    gw = await start(gateway_factory, smsc, tmp_path, accounts=False)
    proc = await asyncio.create_subprocess_exec(
        "nc", "-N", "127.0.0.1", str(gw.tcp.port), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(b"SEND 0701234567 from nc\nQUIT\n"), 10)
    lines = out.decode().splitlines()
    assert lines[0].startswith("+OK omnigate")
    assert re.fullmatch(rf"\+OK {ID} \+46701234567", lines[1])
    assert lines[2] == "+OK bye"

