"""The Link contract of `carriers/base.py`, tested once for every link type (STYLE §2).

Each type in `omnigate.carriers.registry()` runs against its own simulator from
`omnigate.sim`, over loopback. A registry type without an entry in SIMULATORS fails
here, so a new link type cannot ship without passing the contract. What is particular
to one protocol (its status codes, log lines, PDUs) stays in its own `test_<type>_link.py`.

Waits are bounded and wait on a callback or a simulator counter; none sleeps blindly.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from omnigate.carriers import registry
from omnigate.carriers.base import Link, LinkState
from omnigate.model import FailureKind, Part, Status
from omnigate.sim.cimd2 import Cimd2Simulator
from omnigate.sim.httpprovider import HttpProviderSimulator
from omnigate.sim.modem import ModemSimulator
from omnigate.sim.smpp import SmscSimulator
from omnigate.sim.ucp import UcpSimulator
from tests.support import LONG_GSM, LinkFactory, Recorder, closed_port, parts

TEMPORARY = FailureKind.TEMPORARY
UCP_USER = "4670000"


@dataclass(frozen=True)
class Carrier:
    """How to run one link type against its simulator: the simulator (given any further
    options), built with the credentials `fields` log in with, and the link's own config
    fields."""

    simulator: Callable[..., Any]
    fields: dict[str, Any] = field(default_factory=dict)
    window: int = 4  # the window the contract uses; 1: one at a time, no `window` setting
    secret: str = "secret"  # what `fields` log in with (password, PIN)
    closed_by: str = "the SMSC"  # in the reason when the peer closes the connection


SIMULATORS: dict[str, Carrier] = {
    "smpp": Carrier(lambda **o: SmscSimulator(system_id="omni", password="secret", **o),
                    {"system_id": "omni", "password": "secret"}),
    "cimd2": Carrier(lambda **o: Cimd2Simulator(user="omni", password="secret", **o),
                     {"user": "omni", "password": "secret"}),
    "ucp": Carrier(lambda **o: UcpSimulator(user=UCP_USER, password="secret", **o),
                   {"user": UCP_USER, "password": "secret"}),
    "modem": Carrier(lambda **o: ModemSimulator(password="1234", **o), {"pin": "1234"},
                     window=1, secret="1234", closed_by="the modem"),
    # The probe URL stands for a login; down_after = 1 drops on the first lost request,
    # as the stream links do; reports come back through the link's own hook port.
    "http": Carrier(lambda **o: HttpProviderSimulator(user="omni", password="secret", **o),
                    {"profile": "generic-json", "url": "http://provider.invalid/send",
                     "probe_url": "http://provider.invalid/status", "username": "omni",
                     "password": "secret", "down_after": 1, "listen": "127.0.0.1:0",
                     "hook_token": "hook-secret"}),
}


def window(link_type: str, n: int) -> dict[str, int]:
    """The `window` field, for a link type that has one."""
    return {"window": n} if SIMULATORS[link_type].window > 1 else {}


class ContractRecorder(Recorder):
    """Also notes the link's capacity at every change of state."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity_at: list[tuple[LinkState, int]] = []

    def on_state(self, link: Link, state: LinkState) -> None:
        self.capacity_at.append((state, link.capacity()))
        super().on_state(link, state)

    def reported(self) -> Counter[int]:
        """How many times each part (by identity) was reported, sent or failed."""
        return Counter(id(p) for p, *_ in self.sent + self.failed)


def assert_reported_once(rec: ContractRecorder, submitted: list[Part]) -> None:
    counts = rec.reported()
    assert sorted(counts.values()) == [1] * len(submitted), "a part was reported twice"
    assert set(counts) == {id(p) for p in submitted}


def assert_capacity_only_while_up(rec: ContractRecorder) -> None:
    assert [(s, c) for s, c in rec.capacity_at if s is not LinkState.UP and c != 0] == []


def test_every_link_type_has_a_simulator() -> None:
    missing = sorted(set(registry()) - set(SIMULATORS))
    assert not missing, (f"link types {missing} have no simulator in SIMULATORS: the "
                         "contract must run against every link type")


@pytest.fixture(params=sorted(registry()))
def link_type(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def sim(link_type: str) -> AsyncIterator[Any]:
    if link_type not in SIMULATORS:
        pytest.fail(f"link type {link_type!r} has no simulator in SIMULATORS")
    async with SIMULATORS[link_type].simulator() as s:
        yield s
    assert getattr(s, "violations", []) == []  # a strict simulator saw no protocol error


@pytest.fixture
async def make_link(link_type: str) -> AsyncIterator[LinkFactory]:
    factory = LinkFactory(registry()[link_type], name="contract", queue=3,
                          **window(link_type, 4), **SIMULATORS[link_type].fields)
    factory.recorder = ContractRecorder
    yield factory
    factory.terminate_all()


def messages(n: int, prefix: str = "m") -> list[Part]:
    return [p for i in range(n) for p in parts(f"{prefix}{i}", message_id=i + 1)]


# --- rule 4 and capacity: state ----------------------------------------------------------


async def test_comes_up_with_capacity_only_while_up(sim: Any, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim, up=False)
    await rec.until(lambda: link.state is LinkState.UP)
    assert rec.states == [LinkState.CONNECTING, LinkState.UP]
    assert link.capacity() > 0 and link.in_flight == 0
    await asyncio.wait_for(link.stop(finish=True), 5)
    assert link.state is LinkState.STOPPED and rec.states[-1] is LinkState.STOPPED
    assert link.capacity() == 0
    assert_capacity_only_while_up(rec)


async def test_refused_login_has_no_capacity_and_submit_never_raises(
        link_type: str, sim: Any, make_link: LinkFactory) -> None:
    sim.password = "changed"
    link, rec = await make_link(sim, up=False)
    await rec.until(lambda: LinkState.DOWN in rec.states)
    assert link.capacity() == 0
    [stray] = parts("not now")
    assert link.submit(stray) is None  # rule 1: never raises, never blocks
    await rec.until(lambda: rec.failed)
    assert rec.failed[0][:2] == (stray, TEMPORARY)
    sim.password = SIMULATORS[link_type].secret  # the account is fixed: the link retries and comes up
    await rec.until(lambda: link.state is LinkState.UP, timeout=10)
    assert link.capacity() > 0
    assert_capacity_only_while_up(rec)


# --- rule 2: each part reported once ---------------------------------------------------------


async def test_each_part_is_sent_once_with_a_carrier_reference(
        sim: Any, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    submitted = messages(3) + parts(LONG_GSM, message_id=9, ref=9)
    assert len(submitted) == 6  # beyond the window of 4: the link queues the rest
    for p in submitted:
        link.submit(p)
    await rec.until(lambda: rec.settled == len(submitted))
    assert rec.failed == []
    assert_reported_once(rec, submitted)
    refs = [ref for _, ref in rec.sent]
    assert all(isinstance(ref, str) and ref for ref in refs)
    assert len(set(refs)) == len(refs)
    assert link.in_flight == 0 and link.capacity() > 0


async def test_delivery_report_names_the_carrier_reference(
        sim: Any, make_link: LinkFactory) -> None:
    sim.dlr = True
    link, rec = await make_link(sim)
    [part] = parts("report me")
    link.submit(part)
    await rec.until(lambda: rec.sent and rec.reports)
    [(_, ref)] = rec.sent
    [report] = rec.reports
    assert (report.link, report.carrier_ref, report.status) == (link.name, ref,
                                                                Status.DELIVERED)


# --- rule 3: connection loss returns everything held --------------------------------------


async def test_dropped_connection_returns_all_held_as_temporary_once(
        link_type: str, sim: Any, make_link: LinkFactory) -> None:
    sim.no_response = True
    link, rec = await make_link(sim)
    held = messages(6)
    for p in held:
        link.submit(p)
    await sim.wait_for(SIMULATORS[link_type].window)
    assert link.in_flight == 6  # the window full, the rest queued
    await sim.drop_connections()
    await rec.until(lambda: len(rec.failed) == 6)
    assert [(p, k) for p, k, _ in rec.failed] == [(p, TEMPORARY) for p in held]
    assert link.in_flight == 0
    await rec.until(lambda: rec.states[-1] is LinkState.UP)
    assert rec.states == [LinkState.CONNECTING, LinkState.UP, LinkState.DOWN, LinkState.UP]
    sim.no_response = False
    [after] = parts("after", message_id=99)
    link.submit(after)
    await rec.until(lambda: rec.sent)
    assert_reported_once(rec, [*held, after])
    assert_capacity_only_while_up(rec)


async def test_connection_closed_mid_window(link_type: str, sim: Any,
                                            make_link: LinkFactory) -> None:
    sim.drop_after = 3  # answers three, closes, leaves the rest unanswered
    link, rec = await make_link(sim, **window(link_type, 10))
    submitted = messages(6)
    for p in submitted:
        link.submit(p)
    await rec.until(lambda: rec.settled == 6)
    assert [p for p, _ in rec.sent] == submitted[:3]
    assert [(p, k) for p, k, _ in rec.failed] == [(p, TEMPORARY) for p in submitted[3:]]
    closed = f"closed by {SIMULATORS[link_type].closed_by}"
    assert all(closed in why for _, _, why in rec.failed)
    await rec.until(lambda: rec.states[-1] is LinkState.UP)
    sim.drop_after = 0
    [after] = parts("after", message_id=99)
    link.submit(after)
    await rec.until(lambda: len(rec.sent) == 4)
    assert_reported_once(rec, [*submitted, after])


async def test_no_response_returns_parts_as_temporary_and_reconnects(
        sim: Any, make_link: LinkFactory) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3)
    held = messages(2)
    for p in held:
        link.submit(p)
    await rec.until(lambda: len(rec.failed) == 2)
    assert [(p, k) for p, k, _ in rec.failed] == [(p, TEMPORARY) for p in held]
    sim.no_response = False
    await rec.until(lambda: rec.states.count(LinkState.UP) == 2)
    assert LinkState.DOWN in rec.states
    [after] = parts("after", message_id=99)
    link.submit(after)
    await rec.until(lambda: rec.sent)
    assert_reported_once(rec, [*held, after])
    assert_capacity_only_while_up(rec)


# --- rule 5: stop and terminate ----------------------------------------------------------------


async def test_stop_finish_drains_the_window_and_ends_stopped(
        sim: Any, make_link: LinkFactory) -> None:
    link, rec = await make_link(sim)
    submitted = messages(5)
    for p in submitted:
        link.submit(p)
    await asyncio.wait_for(link.stop(finish=True), 5)
    assert link.state is LinkState.STOPPED and link.capacity() == 0 and link.in_flight == 0
    assert [p for p, _ in rec.sent] == submitted and rec.failed == []
    assert_reported_once(rec, submitted)


async def test_stop_finish_unanswered_returns_held_as_temporary(
        sim: Any, make_link: LinkFactory) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3)
    held = messages(5)
    for p in held:
        link.submit(p)
    await asyncio.wait_for(link.stop(finish=True), 5)
    assert link.state is LinkState.STOPPED and link.in_flight == 0
    # Window parts (timed out) and queued parts may come back in either order.
    assert sorted(((p.message_id, p.seq), k) for p, k, _ in rec.failed) == sorted(
        ((p.message_id, p.seq), TEMPORARY) for p in held)
    assert_reported_once(rec, held)


async def test_terminate_never_waits(link_type: str, sim: Any,
                                     make_link: LinkFactory) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, **window(link_type, 2))
    held = messages(5)
    for p in held:
        link.submit(p)
    assert link.capacity() == 0 and link.in_flight == 5
    assert not inspect.iscoroutinefunction(link.terminate)
    assert link.terminate() is None
    # Settled before any await: terminate() did not wait for the loop or the peer.
    assert [(p, k) for p, k, _ in rec.failed] == [(p, TEMPORARY) for p in held]
    assert link.state is LinkState.STOPPED and link.in_flight == 0 and link.capacity() == 0
    [late] = parts("late", message_id=99)
    link.submit(late)  # a stray submit is refused, not raised
    await rec.until(lambda: len(rec.failed) == 6)
    assert_reported_once(rec, [*held, late])


# --- `hosts`: tried in order, retried until one answers ------------------------------------


async def test_failover_to_second_host(sim: Any, make_link: LinkFactory) -> None:
    hosts = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{sim.port}"]
    link, rec = await make_link(sim, hosts=hosts)
    assert link.describe()["host"] == hosts[1]
    [part] = parts("x")
    link.submit(part)
    await rec.until(lambda: rec.sent)


async def test_all_hosts_down_then_one_comes_up(link_type: str, make_link: LinkFactory) -> None:
    port = closed_port()
    link, rec = await make_link(None, up=False, hosts=[f"127.0.0.1:{port}"])
    await rec.until(lambda: LinkState.DOWN in rec.states)
    assert link.capacity() == 0 and "cannot connect" in link.describe()["last_error"]
    async with SIMULATORS[link_type].simulator(port=port):
        await rec.until(lambda: link.state is LinkState.UP)
        link.terminate()
    assert_capacity_only_while_up(rec)
