"""UcpLink end to end over loopback against the strict UCP simulator (an independent parser).

Every test ends by checking that the simulator saw no protocol violation. Waits are
bounded and wait on something (a callback, the simulator's counters, a condition).

What every link type owes the core (base.py's contract) is tested once, in
`test_contract.py`; this file is what is UCP/EMI's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from omnigate.carriers.base import LinkState
from omnigate.carriers.ucp import UcpConfig, UcpLink
from omnigate.model import FailureKind, Part, Status
from omnigate.sim.ucp import UcpSimulator
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from tests.support import (
    LONG_GSM,
    LONG_UCS2,
    LogRecords,
    closed_port,
    link_fixture,
    parts,
    poll,
    sim_fixture,
)

USER = "4670000"

sim = sim_fixture(UcpSimulator, user=USER, password="secret")
make_link = link_fixture(UcpLink, name="ucp1", user=USER, password="secret")


# --- sending ------------------------------------------------------------------------


async def test_gsm_part(sim: UcpSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim, time_zone="Europe/Stockholm")
    assert rec.states == [LinkState.CONNECTING, LinkState.UP] and sim.logged_in == 1
    assert link.capacity() == 20 and link.in_flight == 0
    [part] = parts("Hello {world} €5 @_$", validity_until=1_900_000_000.0)
    link.submit(part)
    assert link.in_flight == 1 and link.capacity() == 19
    await rec.until(lambda: rec.sent)
    [(got, ref)] = rec.sent
    [r] = sim.submits
    assert got is part and r.message_id == ref == f"46701234567:{r.scts}"
    assert r.text == "Hello {world} €5 @_$" and (r.mt, r.data_coding) == ("3", 0)
    assert (r.source, r.otoa, r.destination) == ("Omnigate", "5039", "46701234567")
    assert (r.nrq, r.nt, r.message_class) == ("1", "3", "")
    assert r.validity_period == "1703301846"  # 2030-03-17 17:46 UTC, in Stockholm
    d = link.describe()
    assert d["host"] == f"127.0.0.1:{sim.port}" and d["user"] == USER and d["type"] == "ucp"


async def test_ucs2_flash_default_sender_no_report(sim: UcpSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim)
    [part] = parts("Привет ✓", sender=None, flash=True, report=False)
    [gsm_flash] = parts("flash", message_id=2, sender=Address("46701112222", 1, 1), flash=True)
    assert part.coding is Coding.UCS2
    link.submit(part)
    link.submit(gsm_flash)
    await rec.until(lambda: len(rec.sent) == 2)
    r, g = sim.submits
    assert r.text == "Привет ✓" and (r.mt, r.data_coding) == ("4", 0x18)
    assert (r.source, r.otoa) == (USER, "") and r.nrq == "" and r.validity_period == ""
    assert (g.text, g.message_class, g.source, g.otoa) == ("flash", "0", "46701112222", "1139")


async def test_long_messages_reassemble(sim: UcpSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim, source_addr="72000")
    gsm, ucs2 = parts(LONG_GSM, ref=1, sender=None), parts(LONG_UCS2, message_id=2, ref=2)
    assert len(gsm) == 3 and len(ucs2) == 3
    for p in gsm + ucs2:
        link.submit(p)
    await rec.until(lambda: len(rec.sent) == 6)
    assert sorted(sim.messages()) == sorted([("46701234567", "72000", LONG_GSM),
                                             ("46701234567", "Omnigate", LONG_UCS2)])
    for r, p in zip(sim.submits, gsm + ucs2, strict=True):
        assert r.concat == p.concat and r.data_coding == p.coding
    assert len({ref for _, ref in rec.sent}) == 6


async def test_part_that_cannot_be_encoded_fails_permanently(sim: UcpSimulator,
                                                              make_link: Any) -> None:
    link, rec = await make_link(sim)
    [bad] = parts("x", recipient="1" * 17)
    [long] = parts("y", message_id=2)
    long.data = b"z" * 161
    [sender] = parts("z", message_id=3, sender=Address("Way too long name", 5, 0))
    for p in (bad, long, sender):
        link.submit(p)
    await rec.until(lambda: len(rec.failed) == 3)
    assert [(p, k) for p, k, _ in rec.failed] == [(bad, FailureKind.PERMANENT),
                                                  (long, FailureKind.PERMANENT),
                                                  (sender, FailureKind.PERMANENT)]
    assert "16 digits" in rec.failed[0][2] and "140 octets" in rec.failed[1][2]
    assert link.in_flight == 0 and sim.submit_count == 0


# --- DLR and MO -----------------------------------------------------------------------


@pytest.mark.parametrize(("dlr_status", "status", "error"), [
    ("delivered", Status.DELIVERED, None),
    ("undelivered", Status.UNDELIVERED, "Rsn 107 (absent subscriber)")])
async def test_delivery_report(sim: UcpSimulator, make_link: Any, dlr_status: str,
                               status: Status, error: str | None) -> None:
    sim.dlr, sim.dlr_status = True, dlr_status
    link, rec = await make_link(sim)
    for p in parts(LONG_GSM):
        link.submit(p)
    await rec.until(lambda: len(rec.reports) == 3)
    refs = {ref for _, ref in rec.sent}
    assert {r.carrier_ref for r in rec.reports} == refs and len(refs) == 3
    for r in rec.reports:
        assert (r.link, r.status, r.error) == ("ucp1", status, error)
        assert r.done_at is not None


async def test_buffered_notification_is_not_a_report(sim: UcpSimulator,
                                                      make_link: Any) -> None:
    sim.dlr, sim.dlr_status = True, "buffered"
    link, rec = await make_link(sim)
    link.submit(parts("x")[0])
    await rec.until(lambda: rec.sent)
    await poll(lambda: sim.dlr_count == 0 and not sim._dlrs)
    # NT=3 asks for delivery and non-delivery notifications only: none is sent
    assert rec.reports == []


async def test_mo(sim: UcpSimulator, make_link: Any) -> None:
    _, rec = await make_link(sim)
    await sim.inject_mo("+46701234567", USER, "Hej då! {ok}")
    await sim.inject_mo("Bank", USER, LONG_UCS2)
    await rec.until(lambda: len(rec.mo) == 4)
    first = rec.mo[0]
    assert (first.link, first.sender, first.recipient) == ("ucp1", "46701234567", USER)
    assert first.text == "Hej då! {ok}" and first.coding is Coding.GSM7 and first.concat is None
    long = rec.mo[1:]
    assert all(m.coding is Coding.UCS2 and m.sender == "Bank" for m in long)
    assert [m.concat[1:] for m in long if m.concat] == [(3, 1), (3, 2), (3, 3)]
    assert "".join(m.text for m in long) == LONG_UCS2
    assert sim.mo_count == 4


# --- faults ---------------------------------------------------------------------------


async def test_wrong_password_keeps_link_down_and_retrying(sim: UcpSimulator,
                                                           make_link: Any) -> None:
    with LogRecords.attached("omnigate.link.ucp1") as log:
        link, rec = await make_link(sim, up=False, password="wrongpw")
        await log.until(lambda lines: sum("refused" in line for line in lines) >= 2)
    assert link.state is LinkState.DOWN and link.capacity() == 0
    assert LinkState.UP not in rec.states
    refused = next(line for line in log.lines if "refused" in line)
    assert refused.startswith(f"UCP[ucp1]: login (OT 60) as {USER} to 127.0.0.1:")
    assert "EC 07 (authentication failure)" in refused
    assert refused.endswith(" - check user and password")
    assert any("reconnecting in" in line for line in log.lines)
    d = link.describe()
    assert d["failed_attempts"] >= 2 and "EC 07" in d["last_error"]
    assert not any("wrongpw" in line or "77726F6E677077" in line for line in log.lines)


async def test_throttle_and_permanent_errors(sim: UcpSimulator, make_link: Any) -> None:
    sim.throttle_every = 1
    link, rec = await make_link(sim, window=1, queue=5, throttle_backoff=0.3)
    loop = asyncio.get_running_loop()
    a, b, c = parts("a") + parts("b", message_id=2) + parts("c", message_id=3)
    for p in (a, b, c):
        link.submit(p)
    await rec.until(lambda: rec.failed)
    throttled_at = loop.time()
    assert [(p, k) for p, k, _ in rec.failed] == [(a, FailureKind.THROTTLED)]
    assert "EC 04" in rec.failed[0][2]
    assert link.capacity() == 0 and link.describe()["throttled"] and link.in_flight == 2
    sim.throttle_every, sim.fail_every = 0, 2  # counted over all valid submits: b is 2nd
    await rec.until(lambda: rec.settled == 3)
    assert loop.time() - throttled_at >= 0.25
    assert rec.failed[1][:2] == (b, FailureKind.PERMANENT) and "EC 06" in rec.failed[1][2]
    assert [p for p, _ in rec.sent] == [c]


async def test_response_timeout_names_the_request(sim: UcpSimulator, make_link: Any) -> None:
    """The contract (test_contract.py) checks the part comes back TEMPORARY; this, why."""
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3)
    link.submit(parts("a")[0])
    await rec.until(lambda: rec.failed)
    [(_, kind, why)] = rec.failed
    assert kind is FailureKind.TEMPORARY
    assert "no result for OT 51 (submit short message) TRN 01 from" in why  # TRN 00 was the login
    assert "0.3 s" in why


async def test_keepalive_alerts_keep_the_link_up(sim: UcpSimulator, make_link: Any) -> None:
    link, rec = await make_link(sim, keepalive=0.05)
    await poll(lambda: sim.alert_count >= 3)
    assert link.state is LinkState.UP and rec.states == [LinkState.CONNECTING, LinkState.UP]
    link.submit(parts("still here")[0])
    await rec.until(lambda: rec.sent)


# --- lifecycle ------------------------------------------------------------------------


async def test_stop_finishes_the_window(sim: UcpSimulator, make_link: Any) -> None:
    sim.response_delay = 0.2
    link, rec = await make_link(sim)
    held = [p for i in range(3) for p in parts(f"m{i}", message_id=i)]
    for p in held:
        link.submit(p)
    await sim.wait_for(3)
    await asyncio.wait_for(link.stop(finish=True), 5)
    assert [p for p, _ in rec.sent] == held and rec.failed == []
    assert link.state is LinkState.STOPPED and link.capacity() == 0
    await poll(lambda: sim.connections == 0)


async def test_stop_while_reconnecting(make_link: Any) -> None:
    link, rec = await make_link(None, up=False, hosts=[f"127.0.0.1:{closed_port()}"])
    await rec.until(lambda: LinkState.DOWN in rec.states)
    await asyncio.wait_for(link.stop(), 5)
    assert link.state is LinkState.STOPPED


# --- config ---------------------------------------------------------------------------


def test_config_validation() -> None:
    base = dict(name="u", type="ucp", hosts=["h:3006"], user=USER, password="pw")
    c = UcpConfig.model_validate(base)
    assert (c.window, c.keepalive, c.login_ton, c.login_npi, c.time_zone) == (
        10, 30.0, "6", "5", "UTC")
    assert "pw" not in repr(c)
    assert c.default_source() == Address(USER, 3, 0)
    assert UcpConfig.model_validate({**base, "source_addr": "46701234567"}).default_source() \
        == Address("46701234567", 1, 1)
    assert UcpConfig.model_validate({**base, "source_addr": "Shop"}).default_source() == \
        Address("Shop", 5, 0)
    for bad in ({"hosts": []}, {"hosts": ["nohost"]}, {"user": "1" * 17}, {"user": "a/b"},
                {"window": 100}, {"window": 0}, {"password": "пароль9"}, {"login_ton": "3"},
                {"time_zone": "Mars/Olympus"}, {"extra": 1}):
        with pytest.raises(ValidationError) as e:
            UcpConfig.model_validate({**base, **bad})
        assert "пароль9" not in str(e.value)


def test_parts_helper_builds_what_the_core_sends() -> None:
    # guard: these tests use the SMPP tests' part builder, which follows sms.segment
    [p] = parts("x")
    assert isinstance(p, Part) and p.recipient == "46701234567"
