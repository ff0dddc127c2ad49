"""Cimd2Link end to end over loopback against the CIMD2 simulator (an independent parser).

The simulator is strict: every test ends by asserting it saw no protocol violation. Every
wait is bounded and waits on something (a callback, the simulator's counters, the link's
state); none sleeps to let time pass blindly.

What every link type owes the core (base.py's contract) is tested once, in
`test_contract.py`; this file is what is CIMD2's own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import ValidationError

from omnigate.carriers.base import LinkState
from omnigate.carriers.cimd2 import Cimd2Config, Cimd2Link, codec
from omnigate.model import FailureKind, Status
from omnigate.sim.cimd2 import Cimd2Simulator
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from tests.support import (
    LONG_UCS2,
    WAIT,
    LogRecords,
    link_fixture,
    parts,
    poll,
    sim_fixture,
)

LONG_GSM = "The quick brown fox jumps over the lazy dog {ok}. " * 7  # 3 parts

sim = sim_fixture(Cimd2Simulator, user="omni", password="secret")
make_link = link_fixture(Cimd2Link, name="smsc1", user="omni", password="secret")


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
    with LogRecords.attached("omnigate.link.smsc1") as log:
        link, rec = await make_link(sim, up=False, password="wrongpw")
        await log.until(lambda lines: sum("refused" in line for line in lines) >= 2)
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
    with LogRecords.attached("omnigate.link.smsc1") as log:
        link, _ = await make_link(sim, up=False, window=20)
        await log.until(lambda lines: any("refused" in line for line in lines))
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


async def test_response_timeout_names_the_request(sim: Cimd2Simulator, make_link: Any) -> None:
    """The contract (test_contract.py) checks the part comes back TEMPORARY; this, why."""
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3)
    link.submit(parts("a")[0])
    await rec.until(lambda: rec.failed)
    [(_, kind, why)] = rec.failed
    assert kind is FailureKind.TEMPORARY
    assert "no submit message response from" in why and "0.3 s" in why


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
