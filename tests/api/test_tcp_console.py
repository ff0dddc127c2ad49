"""Operator commands of the TCP console end to end: LINKS, QUEUE, SUSPEND/RESUME, RETRY, TRACE,
against a real gateway and SMSC simulators on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from omnigate.carriers.base import LinkState
from omnigate.sim.smpp import SmscSimulator
from tests.api.tcpclient import Client, tcp_config
from tests.support import poll

ID = r"(\d+)"


def _link(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "type": "smpp", "hosts": [f"127.0.0.1:{port}"],
            "system_id": "omnigate", "password": "secret", "reconnect_min": 0.1,
            "reconnect_max": 0.5}


@pytest.fixture
async def backup() -> AsyncIterator[SmscSimulator]:
    sim = SmscSimulator(system_id="omnigate", password="secret", dlr=True)
    await sim.start()
    yield sim
    await sim.stop()


async def _sent_id(client: Client, command: str) -> str:
    answer = await client.ask(command)
    m = re.fullmatch(rf"\+OK {ID} \+\d+", answer)
    assert m, answer
    return m.group(1)


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
async def test_suspend_falls_back_to_next_tier(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, backup: SmscSimulator,
        tmp_path: Path, store_url: str) -> None:
    gw = await gateway_factory(tcp_config(
        store_url, smsc.port, tmp_path,
        links=[_link("smsc1", smsc.port), _link("smsc2", backup.port)],
        routes=[{"tiers": [["smsc1"], ["smsc2"]]}]))
    await poll(lambda: all(link.state is LinkState.UP for link in gw.links.values()))
    ops = await Client.session(gw.tcp.port, login="ops")
    await _sent_id(ops, "SEND 0701234567 first")
    await smsc.wait_for(1)
    assert await ops.ask("SUSPEND smsc1") == "+OK link smsc1 suspended"
    await _sent_id(ops, "SEND 0701234567 second")
    await backup.wait_for(1)
    await ops.send("LINKS")
    head, lines = await ops.block()
    assert head == "+OK 2 links"
    assert re.match(rf"smsc1 up type=smpp hosts=127.0.0.1:{smsc.port} max_rate=0 in_flight=0 "
                    r"capacity=\d+ sent=1 failed=0 .*suspended=yes", lines[0]), lines[0]
    assert re.match(r"smsc2 up .* sent=1 failed=0 .*suspended=no", lines[1]), lines[1]
    assert await ops.ask("resume SMSC1") == "-ERR not-found no link named 'SMSC1'"
    assert await ops.ask("RESUME smsc1") == "+OK link smsc1 resumed"
    await _sent_id(ops, "SEND 0701234567 third")
    await smsc.wait_for(2)
    assert [s.text for s in smsc.submits] == ["first", "third"]
    assert [s.text for s in backup.submits] == ["second"]
    assert await ops.ask("SUSPEND") == "-ERR syntax SUSPEND <link>"


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
async def test_retry_failed_sends_copies_once(
        gateway_factory: Callable[..., Any], smsc: SmscSimulator, tmp_path: Path,
        store_url: str) -> None:
    smsc.fail_every = 1  # every submit_sm refused with a permanent error
    gw = await gateway_factory(tcp_config(store_url, smsc.port, tmp_path))
    pbx = await Client.session(gw.tcp.port, login="pbx")
    failed = [await _sent_id(pbx, f"SEND 070123456{i} try {i}") for i in range(2)]
    for id in failed:
        # the failure is told before it is committed; WAIT must still see it at once
        t0 = time.monotonic()
        assert (await pbx.ask(f"WAIT {id} 10", timeout=12)).startswith(f"+OK {id} failed ")
        assert time.monotonic() - t0 < 2.0
    assert (await pbx.ask("RETRY FAILED")).startswith("-ERR forbidden RETRY needs")
    smsc.fail_every = 0
    ops = await Client.session(gw.tcp.port, login="ops")
    await ops.send("RETRY FAILED 1h")
    head, lines = await ops.block()
    assert head == "+OK 2 failed messages sent again"
    copies = {}
    for line in lines:
        m = re.fullmatch(rf"\+OK {ID} \+4670123456\d \(copy of {ID}\)", line)
        assert m, line
        copies[m.group(2)] = m.group(1)
    assert set(copies) == set(failed)
    for copy in copies.values():
        assert (await ops.ask(f"WAIT {copy} 10", timeout=12)).startswith(f"+OK {copy} delivered")
    assert sorted(s.text for s in list(smsc.submits)[-2:]) == ["try 0", "try 1"]
    # Asked again, the same copies answer: nothing is sent twice.
    await ops.send("RETRY FAILED")
    _, again = await ops.block()
    assert {re.findall(ID, x)[0] for x in again} == set(copies.values())
    assert await ops.ask(f"RETRY {failed[0]}") == (
        f"+OK {copies[failed[0]]} +46701234560")
    assert (await ops.ask(f"RETRY {copies[failed[0]]}")).startswith(
        f"-ERR conflict message {copies[failed[0]]} is delivered; only expired, failed, "
        "undelivered messages are sent again")
    assert (await ops.ask("RETRY FAILED yesterday")).startswith("-ERR syntax since: 'yesterday'")
    assert await ops.ask("RETRY 12345") == "-ERR not-found no message 12345"
    assert (smsc.submit_count, smsc.failed_count) == (2, 2)  # the copies; the refused originals


async def test_queue_trace_and_help(gateway_factory: Callable[..., Any], smsc: SmscSimulator,
                                    tmp_path: Path) -> None:
    gw = await gateway_factory(tcp_config(f"sqlite+aiosqlite:///{tmp_path}/og.db", smsc.port,
                                          tmp_path))
    ops = await Client.session(gw.tcp.port, login="ops")
    await ops.send("HELP")
    _, commands = await ops.block()
    assert {c.split()[0] for c in commands} >= {"LINKS", "QUEUE", "SUSPEND", "RETRY", "TRACE"}
    tracer = await Client.session(gw.tcp.port, login="ops")
    assert await tracer.ask("TRACE") == "+OK tracing; a line holding . ends it"
    await tracer.send("LINKS")  # ignored while tracing: only '.' ends it
    id = await _sent_id(ops, "SEND 0701234567 traced")
    seen: list[str] = []
    while not any(f"message {id} delivered" in line for line in seen):
        seen.append(await tracer.line())
    assert re.fullmatch(rf"\S+ message {id} sent \+46701234567 link=smsc1( .*)?", seen[0]), seen
    await smsc.drop_connections()  # the link goes down and comes back
    while not any(line.endswith("link smsc1 down") for line in seen):
        seen.append(await tracer.line())
    await tracer.send(".")
    while (line := await tracer.line()) != ".":
        assert " link smsc1 " in line  # link states until the end of the trace
    assert (await tracer.ask("QUEUE 2x")).startswith("-ERR syntax since:")
    await poll(lambda: gw.links["smsc1"].state is LinkState.UP)
    await ops.send("QUEUE")
    head, counts = await ops.block()
    assert head.startswith("+OK messages per status and link: queued ones, others since ")
    assert counts == ["delivered smsc1 1"]
    await smsc.stop()  # nothing can be sent now: the next message stays queued
    await poll(lambda: gw.links["smsc1"].state is not LinkState.UP)
    await _sent_id(ops, "SEND 0701234567 stuck")
    await ops.send("queue 1d")
    _, counts = await ops.block()
    assert counts == ["queued - 1", "delivered smsc1 1"]


def test_a_copy_keeps_flash_priority_and_sender_and_is_idempotent() -> None:
    from omnigate.api.console import copy_request
    from omnigate.model import Origin

    stored = {"id": 7, "to": "+46701234567", "text": "Fire alarm", "from": "ALARM",
              "origin": "http", "account": None, "flash": True, "priority": 9}
    copy = copy_request(stored, origin=Origin.WEB, account="anna", client="10.0.0.1")
    assert (copy.to, copy.text, copy.sender, copy.flash, copy.priority) == (
        ["+46701234567"], "Fire alarm", "ALARM", True, 9)
    assert (copy.origin, copy.account, copy.client, copy.client_ref) == (
        Origin.WEB, "anna", "10.0.0.1", "retry:7")
    assert copy_request(stored).origin is Origin.HTTP
