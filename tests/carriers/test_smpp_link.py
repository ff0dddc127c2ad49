"""SmppLink end to end over loopback against the SMSC simulator (an independent codec).

Every wait is bounded and waits on something: a recorded callback, the simulator's
counters, or a condition of the link; none sleeps to let time pass blindly.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from omnigate.carriers.base import Link, LinkState
from omnigate.carriers.smpp import SmppConfig, SmppLink
from omnigate.model import DeliveryReport, FailureKind, Inbound, Part, Status
from omnigate.sim.smpp import SmscSimulator
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from omnigate.sms.segment import segment

WAIT = 5.0
SENDER = Address("Omnigate", 5, 0)
LONG_GSM = "The quick brown fox jumps over the lazy dog. " * 8  # 360 chars: 3 parts
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

    def _poke(self) -> None:
        self._changed.set()

    def on_sent(self, part: Part, carrier_ref: str) -> None:
        self.sent.append((part, carrier_ref))
        self._poke()

    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None:
        self.failed.append((part, kind, reason))
        self._poke()

    def on_mo(self, inbound: Inbound) -> None:
        self.mo.append(inbound)
        self._poke()

    def on_report(self, report: DeliveryReport) -> None:
        self.reports.append(report)
        self._poke()

    def on_state(self, link: Link, state: LinkState) -> None:
        self.states.append(state)
        self._poke()

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        """Wait for `condition` to hold, re-checking on every callback."""
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    @property
    def settled(self) -> int:
        return len(self.sent) + len(self.failed)


async def poll(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """For conditions no callback announces (capacity after a back-off): bounded re-checks."""
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
async def sim() -> AsyncIterator[SmscSimulator]:
    s = SmscSimulator(system_id="omni", password="secret")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def make_link() -> AsyncIterator[Callable[..., Any]]:
    links: list[SmppLink] = []

    async def make(sim: SmscSimulator | None, up: bool = True, hosts: list[str] | None = None,
                   **overrides: Any) -> tuple[SmppLink, Recorder]:
        fields: dict[str, Any] = dict(
            name="smsc1", type="smpp", system_id="omni", password="secret",
            hosts=hosts or [f"127.0.0.1:{sim.port}"],  # type: ignore[union-attr]
            reconnect_min=0.05, reconnect_max=0.2, connect_timeout=2.0)
        fields.update(overrides)
        rec = Recorder()
        link = SmppLink(SmppConfig.model_validate(fields), rec)
        links.append(link)
        await link.start()
        if up:
            await rec.until(lambda: link.state is LinkState.UP)
        return link, rec

    yield make
    for link in links:
        link.terminate()


# --- sending ------------------------------------------------------------------------


async def test_gsm_part_over_transceiver(sim: SmscSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim)
    assert rec.states == [LinkState.CONNECTING, LinkState.UP]
    assert sim.bound == 1
    assert link.capacity() == 20 and link.in_flight == 0  # window 10 + queue 10
    [part] = parts("Hello {world} €5", validity_until=1_900_000_000.0)
    link.submit(part)
    assert link.in_flight == 1 and link.capacity() == 19
    await rec.until(lambda: rec.sent)
    [(got, ref)] = rec.sent
    assert got is part
    [r] = sim.submits
    assert r.message_id == ref and r.text == "Hello {world} €5"
    assert (r.source, r.source_ton, r.source_npi) == ("Omnigate", 5, 0)
    assert (r.destination, r.dest_ton, r.dest_npi) == ("46701234567", 1, 1)
    assert (r.data_coding, r.esm_class, r.registered_delivery) == (0, 0, 1)
    assert r.validity_period == "300317174640000+"  # 2030-03-17 17:46:40 UTC
    assert link.in_flight == 0 and link.describe()["host"] == f"127.0.0.1:{sim.port}"


async def test_ucs2_flash_default_source_no_report(sim: SmscSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim, source_addr="4670000")
    [part] = parts("Привет ✓", sender=None, flash=True, report=False)
    assert part.coding is Coding.UCS2
    link.submit(part)
    await rec.until(lambda: rec.sent)
    [r] = sim.submits
    assert r.text == "Привет ✓" and r.data_coding == 0x18
    assert (r.source, r.source_ton, r.source_npi) == ("4670000", 1, 1)
    assert r.registered_delivery == 0 and r.validity_period == ""


@pytest.mark.parametrize("concat", ["udh", "sar", "payload"])
async def test_long_message_parts(sim: SmscSimulator, make_link: Any, concat: str) -> None:
    link, rec = await make_link(sim, concat=concat)
    gsm, ucs2 = parts(LONG_GSM, ref=1), parts(LONG_UCS2, message_id=2, ref=2)
    assert len(gsm) == 3 and len(ucs2) == 3
    for p in gsm + ucs2:
        link.submit(p)
    await rec.until(lambda: len(rec.sent) == 6)
    assert sorted(sim.messages()) == sorted([("46701234567", "Omnigate", LONG_GSM),
                                             ("46701234567", "Omnigate", LONG_UCS2)])
    for r, p in zip(sim.submits, gsm + ucs2, strict=True):
        assert r.concat == p.concat
        assert r.data_coding == p.coding
        assert r.esm_class == (0 if concat == "sar" else 0x40)
        assert (r.sar is not None) == (concat == "sar")
        assert r.message_payload == (concat == "payload")


async def test_payload_carries_a_whole_long_message(sim: SmscSimulator,
                                                    make_link: Any) -> None:
    link, rec = await make_link(sim, concat="payload")
    data = LONG_UCS2.encode("utf-16-be")  # more than short_message's 254 octets
    link.submit(Part(message_id=1, seq=1, total=1, recipient="46701234567", sender=SENDER,
                     coding=Coding.UCS2, data=data))
    await rec.until(lambda: rec.sent)
    [r] = sim.submits
    assert r.message_payload and r.esm_class == 0 and r.text == LONG_UCS2


async def test_part_that_cannot_be_encoded_fails_permanently(sim: SmscSimulator,
                                                              make_link: Any) -> None:
    link, rec = await make_link(sim)
    [bad] = parts("x", recipient="1" * 21)
    [long] = parts("y")
    long.data = b"z" * 255  # over short_message's 254 octets, and no concat to split it
    link.submit(bad)
    link.submit(long)
    await rec.until(lambda: len(rec.failed) == 2)
    assert [(p, k) for p, k, _ in rec.failed] == [(bad, FailureKind.PERMANENT),
                                                  (long, FailureKind.PERMANENT)]
    assert "not E.164" in rec.failed[0][2] and "254" in rec.failed[1][2]
    assert link.in_flight == 0 and sim.submit_count == 0


# --- DLR and MO -----------------------------------------------------------------------


@pytest.mark.parametrize(("stat", "status"), [("DELIVRD", Status.DELIVERED),
                                              ("UNDELIV", Status.UNDELIVERED),
                                              ("EXPIRED", Status.EXPIRED)])
async def test_delivery_report(sim: SmscSimulator, make_link: Any, stat: str,
                               status: Status) -> None:
    sim.dlr, sim.dlr_status = True, stat
    link, rec = await make_link(sim)
    for p in parts(LONG_GSM):
        link.submit(p)
    await rec.until(lambda: len(rec.reports) == 3)
    refs = {ref for _, ref in rec.sent}
    assert {r.carrier_ref for r in rec.reports} == refs and len(refs) == 3
    for r in rec.reports:
        assert r.link == "smsc1" and r.status is status and r.done_at is not None
        assert r.error == (None if stat == "DELIVRD" else f"{stat} err:001")


async def test_mo(sim: SmscSimulator, make_link: Any) -> None:
    _, rec = await make_link(sim)
    await sim.inject_mo("+46701234567", "72000", "Hej då! {ok}")
    await sim.inject_mo("+46701234567", "72000", LONG_UCS2)
    await rec.until(lambda: len(rec.mo) == 4)
    first = rec.mo[0]
    assert (first.link, first.sender, first.recipient) == ("smsc1", "46701234567", "72000")
    assert first.text == "Hej då! {ok}" and first.coding is Coding.GSM7 and first.concat is None
    long = rec.mo[1:]
    assert all(m.coding is Coding.UCS2 for m in long)
    assert [m.concat[1:] for m in long if m.concat] == [(3, 1), (3, 2), (3, 3)]
    assert "".join(m.text for m in long) == LONG_UCS2


async def test_mo_with_sar_and_8bit_data(make_link: Any) -> None:
    """What the simulator does not send: SAR TLVs instead of a UDH, and 8-bit data."""
    from smpplib import smpp as smpplib_smpp

    from omnigate.carriers.smpp import codec
    from omnigate.carriers.smpp.session import MoReceived

    class Client:
        sequence = None

        def next_sequence(self) -> int:
            return 1

    def deliver(**fields: Any) -> MoReceived:
        raw = smpplib_smpp.make_pdu("deliver_sm", client=Client(), source_addr="4670123",
                                    destination_addr="72000", **fields).generate()
        return MoReceived(codec.decode_deliver_sm(raw[16:]))

    link, rec = await make_link(None, up=False, hosts=[f"127.0.0.1:{closed_port()}"])
    link._on_events(None, [  # type: ignore[arg-type]
        deliver(data_coding=8, short_message="Hej ✓".encode("utf-16-be"),
                sar_msg_ref_num=300, sar_total_segments=2, sar_segment_seqnum=2),
        deliver(data_coding=4, short_message=b"\x00\xff\x10"),
        deliver(data_coding=0, message_payload=b"Hello from the payload"),
    ])
    assert [(m.text, m.coding, m.concat) for m in rec.mo] == [
        ("Hej ✓", Coding.UCS2, (300, 2, 2)),
        ("\x00\xff\x10", Coding.LATIN1, None),  # one character per octet: nothing lost
        ("Hello from the payload", Coding.GSM7, None),
    ]
    assert rec.mo[0].sender == "4670123" and rec.mo[0].recipient == "72000"


async def test_pair_bind(sim: SmscSimulator, make_link: Any) -> None:
    sim.dlr = True
    link, rec = await make_link(sim, bind="pair")
    assert sim.bound == 2
    [p] = parts("via the transmitter")
    link.submit(p)
    await rec.until(lambda: rec.reports)  # the receipt comes over the receiver
    assert rec.reports[0].carrier_ref == rec.sent[0][1]
    await sim.inject_mo("+46709999999", "72000", "to the receiver")
    await rec.until(lambda: rec.mo)
    assert rec.mo[0].text == "to the receiver"
    await link.stop()
    assert sim.bound == 0 and link.state is LinkState.STOPPED


# --- faults ---------------------------------------------------------------------------


async def test_wrong_password_keeps_link_down_and_retrying(sim: SmscSimulator,
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
    assert refused.startswith("SMPP[smsc1]: bind_transceiver to 127.0.0.1:")
    assert "ESME_RINVPASWD (0x0000000E) - check system_id and password" in refused
    assert any("reconnecting in" in line for line in log.lines)
    d = link.describe()
    assert d["failed_attempts"] >= 2 and "ESME_RINVPASWD" in d["last_error"]
    assert not any("wrongpw" in line for line in log.lines)


async def test_throttle_backs_off_and_reports_throttled(sim: SmscSimulator,
                                                        make_link: Any) -> None:
    sim.throttle_every = 1  # everything throttled until we say otherwise
    link, rec = await make_link(sim, window=1, queue=5, throttle_backoff=0.3)
    loop = asyncio.get_running_loop()
    a, b, c = parts("a") + parts("b", message_id=2) + parts("c", message_id=3)
    for p in (a, b, c):
        link.submit(p)
    await rec.until(lambda: rec.failed)
    throttled_at = loop.time()
    assert [(p, k) for p, k, _ in rec.failed] == [(a, FailureKind.THROTTLED)]
    assert "ESME_RTHROTTLED" in rec.failed[0][2]
    assert link.capacity() == 0 and link.describe()["throttled"]
    assert link.in_flight == 2  # b and c wait in the queue, not sent into the throttle
    sim.throttle_every = 0
    await rec.until(lambda: len(rec.sent) == 2)
    assert loop.time() - throttled_at >= 0.25
    assert [p for p, _ in rec.sent] == [b, c]
    assert sim.throttled_count == 1
    await poll(lambda: link.capacity() == 6)
    assert link.state is LinkState.UP


async def test_connection_dropped_mid_window(sim: SmscSimulator, make_link: Any) -> None:
    sim.drop_after = 3  # answers three, closes, leaves the rest unanswered
    link, rec = await make_link(sim)
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


async def test_simulator_drops_connections(sim: SmscSimulator, make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim)
    held = [p for i in range(4) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    await sim.wait_for(4)
    await sim.drop_connections()
    await rec.until(lambda: len(rec.failed) == 4)
    assert [p for p, _, _ in rec.failed] == held
    assert {k for _, k, _ in rec.failed} == {FailureKind.TEMPORARY}
    await rec.until(lambda: rec.states[-1] is LinkState.UP)


async def test_no_response_times_out_and_reconnects(sim: SmscSimulator,
                                                    make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3)
    a, b = parts("a") + parts("b", message_id=2)
    link.submit(a)
    link.submit(b)
    await rec.until(lambda: len(rec.failed) == 2)
    assert [(p, k) for p, k, _ in rec.failed] == [(a, FailureKind.TEMPORARY),
                                                  (b, FailureKind.TEMPORARY)]
    assert "no submit_sm_resp from" in rec.failed[0][2] and "0.3 s" in rec.failed[0][2]
    assert rec.states[-1] is LinkState.DOWN
    sim.no_response = False
    await rec.until(lambda: rec.states[-1] is LinkState.UP)
    link.submit(parts("c", message_id=3)[0])
    await rec.until(lambda: rec.sent)


async def test_failover_to_second_host(sim: SmscSimulator, make_link: Any) -> None:
    hosts = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{sim.port}"]
    link, rec = await make_link(sim, hosts=hosts)
    assert link.describe()["host"] == hosts[1]
    link.submit(parts("x")[0])
    await rec.until(lambda: rec.sent)


async def test_all_hosts_down_then_one_comes_up(make_link: Any) -> None:
    port = closed_port()
    link, rec = await make_link(None, up=False, hosts=[f"127.0.0.1:{port}"])
    await rec.until(lambda: LinkState.DOWN in rec.states)
    assert link.capacity() == 0 and "cannot connect" in link.describe()["last_error"]
    late = SmscSimulator(port=port)
    await late.start()
    try:
        await rec.until(lambda: link.state is LinkState.UP)
    finally:
        link.terminate()
        await late.stop()


# --- lifecycle ------------------------------------------------------------------------


async def test_stop_finishes_the_window_then_unbinds(sim: SmscSimulator,
                                                     make_link: Any) -> None:
    sim.response_delay = 0.2
    link, rec = await make_link(sim)
    held = [p for i in range(3) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    await sim.wait_for(3)
    await asyncio.wait_for(link.stop(finish=True), WAIT)
    assert [p for p, _ in rec.sent] == held and rec.failed == []
    assert link.state is LinkState.STOPPED and link.capacity() == 0
    assert sim.bound == 0


async def test_stop_gives_up_after_response_timeout(sim: SmscSimulator,
                                                    make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3, enquire_link=60)
    [p] = parts("never answered")
    link.submit(p)
    await sim.wait_for(1)
    await asyncio.wait_for(link.stop(finish=True), WAIT)
    assert [(q, k) for q, k, _ in rec.failed] == [(p, FailureKind.TEMPORARY)]
    assert link.state is LinkState.STOPPED and link.in_flight == 0


async def test_terminate_fails_everything_at_once(sim: SmscSimulator, make_link: Any) -> None:
    sim.no_response = True
    link, rec = await make_link(sim, window=2, queue=3)
    held = [p for i in range(5) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    assert link.capacity() == 0 and link.in_flight == 5
    link.terminate()
    assert [p for p, _, _ in rec.failed] == held  # window first, then queue: order sent
    assert {k for _, k, _ in rec.failed} == {FailureKind.TEMPORARY}
    assert link.state is LinkState.STOPPED and link.in_flight == 0
    link.submit(parts("late")[0])  # a stray submit is refused, not raised
    await rec.until(lambda: len(rec.failed) == 6)


async def test_stop_while_reconnecting(make_link: Any) -> None:
    link, rec = await make_link(None, up=False, hosts=[f"127.0.0.1:{closed_port()}"])
    await rec.until(lambda: LinkState.DOWN in rec.states)
    await asyncio.wait_for(link.stop(), WAIT)
    assert link.state is LinkState.STOPPED


async def test_rate_limit(sim: SmscSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim, max_rate=50, queue=20)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(15):
        link.submit(parts(f"m{i}", message_id=i)[0])
    await rec.until(lambda: len(rec.sent) == 15)
    # a burst of 5 (100 ms of rate), then 10 more at 50/s: about 0.2 s
    assert loop.time() - start >= 0.17


# --- config ---------------------------------------------------------------------------


def test_config_validation() -> None:
    base = dict(name="s", type="smpp", hosts=["h:2775"], system_id="id", password="pw")
    c = SmppConfig.model_validate(base)
    assert (c.bind, c.window, c.concat, c.enquire_link, c.response_timeout) == (
        "transceiver", 10, "udh", 30.0, 10.0)
    assert "pw" not in repr(c)
    assert SmppConfig.model_validate({**base, "source_addr": "72000"}).default_source() == \
        Address("72000", 1, 1)
    assert SmppConfig.model_validate({**base, "source_addr": "Shop"}).default_source() == \
        Address("Shop", 5, 0)
    assert SmppConfig.model_validate(
        {**base, "source_addr": "72000", "source_ton": 3, "source_npi": 0}
    ).default_source() == Address("72000", 3, 0)
    for bad in ({"hosts": []}, {"hosts": ["nohost"]}, {"system_id": "x" * 16},
                {"bind": "receiver"}, {"concat": "magic"}, {"window": 0},
                {"password": "topsecret9"}, {"system_type": "Δ"}, {"extra": 1}):
        with pytest.raises(ValidationError) as e:
            SmppConfig.model_validate({**base, **bad})
        assert "topsecret9" not in str(e.value)
