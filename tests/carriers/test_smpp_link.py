"""SmppLink end to end over loopback against the SMSC simulator (an independent codec).

Every wait is bounded and waits on something: a recorded callback, the simulator's
counters, or a condition of the link; none sleeps to let time pass blindly.

What every link type owes the core (base.py's contract) is tested once, in
`test_contract.py`; this file is what is SMPP's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from omnigate.carriers.base import LinkState
from omnigate.carriers.smpp import SmppConfig, SmppLink
from omnigate.model import FailureKind, Part, Status
from omnigate.sim.smpp import SmscSimulator
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address
from tests.support import (
    LONG_GSM,
    LONG_UCS2,
    SENDER,
    WAIT,
    LogRecords,
    closed_port,
    link_fixture,
    parts,
    poll,
    sim_fixture,
)

sim = sim_fixture(SmscSimulator, system_id="omni", password="secret")
make_link = link_fixture(SmppLink, name="smsc1", system_id="omni", password="secret")


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
    with LogRecords.attached("omnigate.link.smsc1") as log:
        link, rec = await make_link(sim, up=False, password="wrongpw")
        await log.until(lambda lines: sum("refused" in line for line in lines) >= 2)
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


async def test_response_timeout_names_the_request(sim: SmscSimulator, make_link: Any) -> None:
    """The contract (test_contract.py) checks the part comes back TEMPORARY; this, why."""
    sim.no_response = True
    link, rec = await make_link(sim, response_timeout=0.3)
    link.submit(parts("a")[0])
    await rec.until(lambda: rec.failed)
    [(_, kind, why)] = rec.failed
    assert kind is FailureKind.TEMPORARY
    assert "no submit_sm_resp from" in why and "0.3 s" in why


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
