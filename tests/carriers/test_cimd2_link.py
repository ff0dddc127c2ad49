"""Cimd2Link end to end over loopback against the CIMD2 simulator (an independent parser).

The simulator is strict: every test ends by asserting it saw no protocol violation. Every
wait is bounded and waits on something (a callback, the simulator's counters, the link's
state); none sleeps to let time pass blindly.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from omnigate.carriers.base import Link, LinkState
from omnigate.carriers.cimd2 import Cimd2Config, Cimd2Link, codec
from omnigate.model import DeliveryReport, FailureKind, Inbound, Part, Status
from omnigate.sim.cimd2 import Cimd2Simulator
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from omnigate.sms.segment import segment

WAIT = 5.0
SENDER = Address("Omnigate", 5, 0)
LONG_GSM = "The quick brown fox jumps over the lazy dog {ok}. " * 7  # 3 parts
LONG_UCS2 = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3


class Recorder:
    """A LinkEvents that keeps everything and wakes waiters on every callback."""

    def __init__(self) -> None:
        self.sent: list[tuple[Part, str]] = []
        self.failed: list[tuple[Part, FailureKind, str]] = []
        self.mo: list[Inbound] = []
        self.reports: list[DeliveryReport] = []
        self.states: list[LinkState] = []
        self._changed = asyncio.Event()

    def on_sent(self, part: Part, carrier_ref: str) -> None:
        self.sent.append((part, carrier_ref))
        self._changed.set()

    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None:
        self.failed.append((part, kind, reason))
        self._changed.set()

    def on_mo(self, inbound: Inbound) -> None:
        self.mo.append(inbound)
        self._changed.set()

    def on_report(self, report: DeliveryReport) -> None:
        self.reports.append(report)
        self._changed.set()

    def on_state(self, link: Link, state: LinkState) -> None:
        self.states.append(state)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    @property
    def settled(self) -> int:
        return len(self.sent) + len(self.failed)


async def poll(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """For conditions no callback announces: bounded re-checks."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.event.set()

    async def until(self, condition: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition(self.lines):
                self.event.clear()
                await self.event.wait()


def parts(text: str, *, message_id: int = 1, ref: int = 7, sender: Address | None = SENDER,
          recipient: str = "46701234567", **kw: Any) -> list[Part]:
    seg = segment(text, max_parts=10)
    total = len(seg.parts)
    return [Part(message_id=message_id, seq=i, total=total, recipient=recipient, sender=sender,
                 coding=seg.coding, data=data, concat=(ref, total, i) if total > 1 else None,
                 **kw)
            for i, data in enumerate(seg.parts, start=1)]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
async def sim() -> AsyncIterator[Cimd2Simulator]:
    s = Cimd2Simulator(user="omni", password="secret")
    await s.start()
    yield s
    await s.stop()
    assert s.violations == []  # the strict peer found nothing wrong in what we sent


@pytest.fixture
async def make_link() -> AsyncIterator[Callable[..., Any]]:
    links: list[Cimd2Link] = []

    async def make(sim: Cimd2Simulator | None, up: bool = True,
                   hosts: list[str] | None = None, **overrides: Any) -> tuple[Cimd2Link, Recorder]:
        fields: dict[str, Any] = dict(
            name="smsc1", type="cimd2", user="omni", password="secret",
            hosts=hosts or [f"127.0.0.1:{sim.port}"],  # type: ignore[union-attr]
            reconnect_min=0.05, reconnect_max=0.2, connect_timeout=2.0)
        fields.update(overrides)
        rec = Recorder()
        link = Cimd2Link(Cimd2Config.model_validate(fields), rec)
        links.append(link)
        await link.start()
        if up:
            await rec.until(lambda: link.state is LinkState.UP)
        return link, rec

    yield make
    for link in links:
        link.terminate()


# --- sending ------------------------------------------------------------------------------


async def test_gsm_part(sim: Cimd2Simulator, make_link: Any) -> None:
    link, rec = await make_link(sim)
    assert rec.states == [LinkState.CONNECTING, LinkState.UP]
    assert sim.logged_in == 1
    assert link.capacity() == 11 and link.in_flight == 0  # window 1 + queue 10
    [part] = parts("Hello {world} €5 @ _ ä", validity_until=time.time() + 3600 + 30)
    link.submit(part)
    assert link.in_flight == 1 and link.capacity() == 10
    await rec.until(lambda: rec.sent)
    [(got, ref)] = rec.sent
    assert got is part
    [r] = sim.submits
    assert ref == f"46701234567:{r.timestamp}"
    assert r.text == "Hello {world} €5 @ _ ä" and r.coding == "gsm" and r.data_coding == 0
    assert (r.destination, r.source, r.alphanumeric) == ("+46701234567", "Omnigate", True)
    assert r.status_report_request == 62 and r.validity_relative == 11  # one hour
    assert r.priority is None and r.udh is None
    assert link.in_flight == 0 and link.describe()["host"] == f"127.0.0.1:{sim.port}"


async def test_ucs2_flash_default_source_no_report(sim: Cimd2Simulator, make_link: Any) -> None:
    link, rec = await make_link(sim, source_addr="4670000", priority=2, checksum=False)
    [part] = parts("Привет ✓", sender=None, flash=True, report=False)
    assert part.coding is Coding.UCS2
    link.submit(part)
    await rec.until(lambda: rec.sent)
    [r] = sim.submits
    assert r.text == "Привет ✓" and r.data_coding == 0x18 and r.coding == "ucs2"
    assert (r.source, r.alphanumeric) == ("+4670000", False)
    assert r.status_report_request == 0 and r.validity_relative is None and r.priority == 2


async def test_gsm_flash_and_international_prefix(sim: Cimd2Simulator, make_link: Any) -> None:
    link, rec = await make_link(sim, international_prefix="00")
    [part] = parts("flash", flash=True, sender=Address("46123", 1, 1))
    link.submit(part)
    await rec.until(lambda: rec.sent)
    [r] = sim.submits
    assert (r.destination, r.source, r.data_coding) == ("0046701234567", "0046123", 0x10)
    assert rec.sent[0][1] == f"46701234567:{r.timestamp}"


async def test_long_messages_reassembled(sim: Cimd2Simulator, make_link: Any) -> None:
    link, rec = await make_link(sim, window=4)
    gsm, ucs2 = parts(LONG_GSM, ref=1), parts(LONG_UCS2, message_id=2, ref=2)
    assert len(gsm) == 3 and len(ucs2) == 3
    for p in gsm + ucs2:
        link.submit(p)
    assert link.describe()["in_window"] == 4
    await rec.until(lambda: len(rec.sent) == 6)
    assert sorted(sim.messages()) == sorted([("+46701234567", "Omnigate", LONG_GSM),
                                             ("+46701234567", "Omnigate", LONG_UCS2)])
    for r, p in zip(sim.submits, gsm + ucs2, strict=True):
        assert r.concat == p.concat
    assert len({ref for _, ref in rec.sent}) == 6  # each part its own reference


async def test_part_that_cannot_be_encoded_fails_permanently(sim: Cimd2Simulator,
                                                              make_link: Any) -> None:
    link, rec = await make_link(sim)
    [bad] = parts("x", recipient="1" * 16)
    [long] = parts("Ж")
    long.data = b"\x04\x16" * 71  # 142 octets: over the 140 of user data binary
    [alpha] = parts("y", sender=Address("Café", 5, 0))
    for p in (bad, long, alpha):
        link.submit(p)
    await rec.until(lambda: len(rec.failed) == 3)
    assert [(p, k) for p, k, _ in rec.failed] == [(bad, FailureKind.PERMANENT),
                                                  (long, FailureKind.PERMANENT),
                                                  (alpha, FailureKind.PERMANENT)]
    assert "not E.164" in rec.failed[0][2] and "140" in rec.failed[1][2]
    assert "printable ASCII" in rec.failed[2][2]
    assert link.in_flight == 0 and sim.submit_count == 0


# --- DLR and MO -------------------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "status", "error"), [
    ("delivered", Status.DELIVERED, None),
    ("failed", Status.UNDELIVERED, "delivery failed (status error 1 unknown subscriber)"),
    ("expired", Status.EXPIRED, "validity period expired"),
])
async def test_delivery_report(sim: Cimd2Simulator, make_link: Any, outcome: str,
                               status: Status, error: str | None) -> None:
    sim.dlr, sim.dlr_status = True, outcome
    link, rec = await make_link(sim, window=3)
    for p in parts(LONG_GSM):
        link.submit(p)
    await rec.until(lambda: len(rec.reports) == 3)
    refs = {ref for _, ref in rec.sent}
    assert {r.carrier_ref for r in rec.reports} == refs and len(refs) == 3
    for r in rec.reports:
        assert r.link == "smsc1" and r.status is status and r.error == error
        assert r.done_at is not None and abs(r.done_at.timestamp() - time.time()) < 5


async def test_report_only_when_asked(sim: Cimd2Simulator, make_link: Any) -> None:
    sim.dlr = True
    link, rec = await make_link(sim, status_report_request=codec.REPORT_DELIVERY_FAILED)
    link.submit(parts("no report for success")[0])
    await rec.until(lambda: rec.sent)
    link.submit(parts("second", message_id=2)[0])  # the link is still fine afterwards
    await rec.until(lambda: len(rec.sent) == 2)
    assert rec.reports == [] and sim.dlr_count == 0


async def test_mo(sim: Cimd2Simulator, make_link: Any) -> None:
    _, rec = await make_link(sim)
    await sim.inject_mo("+46701234567", "72000", "Hej då! {ok} @home")
    await sim.inject_mo("Shop", "72000", LONG_UCS2)
    await rec.until(lambda: len(rec.mo) == 4)
    first = rec.mo[0]
    assert (first.link, first.sender, first.recipient) == ("smsc1", "46701234567", "72000")
    assert first.text == "Hej då! {ok} @home" and first.coding is Coding.GSM7
    assert first.concat is None
    long = rec.mo[1:]
    assert all(m.coding is Coding.UCS2 and m.sender == "Shop" for m in long)
    assert [m.concat[1:] for m in long if m.concat] == [(3, 1), (3, 2), (3, 3)]
    assert "".join(m.text for m in long) == LONG_UCS2


async def test_keepalive(sim: Cimd2Simulator, make_link: Any) -> None:
    link, rec = await make_link(sim, keepalive=0.05)
    await poll(lambda: sim.alive_count >= 3)
    assert link.state is LinkState.UP and rec.states[-1] is LinkState.UP


# --- faults -------------------------------------------------------------------------------------


async def test_wrong_password_keeps_link_down_and_retrying(sim: Cimd2Simulator,
                                                           make_link: Any) -> None:
    log = LogRecords()
    logger = logging.getLogger("omnigate.link.smsc1")
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    try:
        link, rec = await make_link(sim, up=False, password="wrongpw")
        await log.until(lambda lines: sum("refused" in line for line in lines) >= 2)
    finally:
        logger.removeHandler(log)
    assert link.state is LinkState.DOWN and link.capacity() == 0
    assert LinkState.UP not in rec.states
    refused = next(line for line in log.lines if "refused" in line)
    assert refused.startswith("CIMD2[smsc1]: login to 127.0.0.1:")
    assert refused.endswith("error 100 invalid login - check user and password")
    assert any("reconnecting in" in line for line in log.lines)
    d = link.describe()
    assert d["failed_attempts"] >= 2 and "invalid login" in d["last_error"]
    assert not any("wrongpw" in line for line in log.lines)


async def test_window_larger_than_the_profile_allows(sim: Cimd2Simulator,
                                                     make_link: Any) -> None:
    sim.max_window = 8
    log = LogRecords()
    logger = logging.getLogger("omnigate.link.smsc1")
    logger.addHandler(log)
    try:
        link, _ = await make_link(sim, up=False, window=20)
        await log.until(lambda lines: any("refused" in line for line in lines))
    finally:
        logger.removeHandler(log)
    assert any("error 104 invalid window size - lower window" in line for line in log.lines)
    assert link.state is LinkState.DOWN


async def test_throttle_backs_off_and_reports_throttled(sim: Cimd2Simulator,
                                                        make_link: Any) -> None:
    sim.throttle_every = 1
    link, rec = await make_link(sim, queue=5, throttle_backoff=0.3)
    loop = asyncio.get_running_loop()
    a, b, c = parts("a") + parts("b", message_id=2) + parts("c", message_id=3)
    for p in (a, b, c):
        link.submit(p)
    await rec.until(lambda: rec.failed)
    throttled_at = loop.time()
    assert [(p, k) for p, k, _ in rec.failed] == [(a, FailureKind.THROTTLED)]
    assert "error 10 temporary congestion error" in rec.failed[0][2]
    assert link.capacity() == 0 and link.describe()["throttled"]
    assert link.in_flight == 2
    sim.throttle_every = 0
    await rec.until(lambda: len(rec.sent) == 2)
    assert loop.time() - throttled_at >= 0.25
    assert [p for p, _ in rec.sent] == [b, c]


async def test_permanent_refusal(sim: Cimd2Simulator, make_link: Any) -> None:
    sim.fail_every = 1
    link, rec = await make_link(sim)
    [p] = parts("x")
    link.submit(p)
    await rec.until(lambda: rec.failed)
    assert rec.failed == [(p, FailureKind.PERMANENT, "error 300 incorrect destination address")]
    assert link.state is LinkState.UP


async def test_connection_dropped_mid_window(sim: Cimd2Simulator, make_link: Any) -> None:
    sim.drop_after = 3
    link, rec = await make_link(sim, window=10)
    sent = [p for i in range(6) for p in parts(f"m{i}", message_id=i)]
    for p in sent:
        link.submit(p)
    await rec.until(lambda: rec.settled == 6)
    assert [p for p, _ in rec.sent] == sent[:3]
    assert [(p, k) for p, k, _ in rec.failed] == [(p, FailureKind.TEMPORARY) for p in sent[3:]]
    assert all("closed by the SMSC" in why for _, _, why in rec.failed)
    assert link.in_flight == 0
    await rec.until(lambda: rec.states[-1] is LinkState.UP)
    assert rec.states == [LinkState.CONNECTING, LinkState.UP, LinkState.DOWN, LinkState.UP]
    sim.drop_after = 0
    link.submit(parts("after")[0])
    await rec.until(lambda: len(rec.sent) == 4)


async def test_simulator_drops_connections(sim: Cimd2Simulator, make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, window=4)
    held = [p for i in range(6) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    await sim.wait_for(4)
    assert link.in_flight == 6  # 4 in the window, 2 queued
    await sim.drop_connections()
    await rec.until(lambda: len(rec.failed) == 6)
    assert [p for p, _, _ in rec.failed] == held  # window first, then queue: order sent
    assert {k for _, k, _ in rec.failed} == {FailureKind.TEMPORARY}
    await rec.until(lambda: rec.states[-1] is LinkState.UP)


async def test_no_response_times_out_and_reconnects(sim: Cimd2Simulator,
                                                    make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, window=2, response_timeout=0.3)
    a, b = parts("a") + parts("b", message_id=2)
    link.submit(a)
    link.submit(b)
    await rec.until(lambda: len(rec.failed) == 2)
    assert [(p, k) for p, k, _ in rec.failed] == [(a, FailureKind.TEMPORARY),
                                                  (b, FailureKind.TEMPORARY)]
    assert "no submit message response from" in rec.failed[0][2]
    assert "0.3 s" in rec.failed[0][2]
    assert rec.states[-1] is LinkState.DOWN
    sim.no_response = False
    await rec.until(lambda: rec.states[-1] is LinkState.UP)
    link.submit(parts("c", message_id=3)[0])
    await rec.until(lambda: rec.sent)


async def test_failover_to_second_host(sim: Cimd2Simulator, make_link: Any) -> None:
    hosts = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{sim.port}"]
    link, rec = await make_link(sim, hosts=hosts)
    assert link.describe()["host"] == hosts[1]
    link.submit(parts("x")[0])
    await rec.until(lambda: rec.sent)


# --- lifecycle ------------------------------------------------------------------------------


async def test_stop_finishes_the_window_then_logs_out(sim: Cimd2Simulator,
                                                      make_link: Any) -> None:
    sim.response_delay = 0.2
    link, rec = await make_link(sim, window=3)
    held = [p for i in range(3) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    await sim.wait_for(3)
    await asyncio.wait_for(link.stop(finish=True), WAIT)
    assert [p for p, _ in rec.sent] == held and rec.failed == []
    assert link.state is LinkState.STOPPED and link.capacity() == 0
    await poll(lambda: sim.logged_in == 0)


async def test_terminate_fails_everything_at_once(sim: Cimd2Simulator, make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, window=2, queue=3)
    held = [p for i in range(5) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    assert link.capacity() == 0 and link.in_flight == 5
    link.terminate()
    assert [p for p, _, _ in rec.failed] == held
    assert {k for _, k, _ in rec.failed} == {FailureKind.TEMPORARY}
    assert link.state is LinkState.STOPPED and link.in_flight == 0
    link.submit(parts("late")[0])  # a stray submit is refused, not raised
    await rec.until(lambda: len(rec.failed) == 6)


# --- config -----------------------------------------------------------------------------------


def test_config_validation() -> None:
    base = dict(name="c", type="cimd2", hosts=["h:9971"], user="id", password="pw")
    c = Cimd2Config.model_validate(base)
    assert (c.window, c.queue, c.keepalive, c.checksum, c.international_prefix) == (
        1, 10, 60.0, True, "+")
    assert (c.status_report_request, c.priority, c.response_timeout) == (62, None, 10.0)
    assert "pw" not in repr(c)
    assert Cimd2Config.model_validate({**base, "source_addr": "+4670"}).default_source() == \
        Address("4670", 1, 1)
    assert Cimd2Config.model_validate({**base, "source_addr": "Shop"}).default_source() == \
        Address("Shop", 5, 0)
    for bad in ({"hosts": []}, {"hosts": ["nohost"]}, {"user": "x" * 33}, {"user": "Δ"},
                {"window": 128}, {"window": 0}, {"password": "topsecret9" * 4},
                {"source_addr": "TwelveChars!"}, {"status_report_request": 64},
                {"priority": 0}, {"international_prefix": "011"}, {"extra": 1}):
        with pytest.raises(ValidationError) as e:
            Cimd2Config.model_validate({**base, **bad})
        assert "topsecret9" not in str(e.value)
