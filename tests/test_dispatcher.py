"""The dispatcher's bookkeeping with a real store, driven by a scripted link.

The link here is a collaborator that lets each test choose the order in which
a carrier answers (the real SMPP link and simulator are tested end to end in
test_gateway.py); the dispatcher, router, queue and store are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from omnigate.carriers.base import Link, LinkConfig, LinkState
from omnigate.config import MessagesConfig, NumbersConfig, RetryConfig
from omnigate.dispatcher import Dispatcher
from omnigate.ids import IdGenerator
from omnigate.intake import prepare
from omnigate.metrics import Metrics
from omnigate.model import (
    DeliveryReport,
    FailureKind,
    Inbound,
    Origin,
    Part,
    Status,
    StatusChange,
    SubmitRequest,
)
from omnigate.routing.outbound import Route, Router
from omnigate.store import Store
from omnigate.trafficlog import TrafficLog


class ScriptedLink(Link):
    protocol = "scripted"

    def __init__(self, config: LinkConfig, events: Any) -> None:
        super().__init__(config, events)
        self.parts: list[Part] = []
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        self.set_state(LinkState.UP)

    def submit(self, part: Part) -> None:
        self.parts.append(part)
        self.arrived.set()

    def capacity(self) -> int:
        return 100 if self.state is LinkState.UP else 0

    @property
    def in_flight(self) -> int:
        return len(self.parts)

    async def stop(self, finish: bool = True) -> None:
        self.set_state(LinkState.STOPPED)

    def terminate(self) -> None:
        self.set_state(LinkState.STOPPED)


class Recorder:
    """A StatusListener that keeps what it is told."""

    def __init__(self) -> None:
        self.changes: list[StatusChange] = []

    def on_status(self, change: StatusChange) -> None:
        self.changes.append(change)


class Rig:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.heard = Recorder()
        self.mo: list[Inbound] = []
        self.links: dict[str, Link] = {}
        self.router = Router([Route("default", (("l1",),))], self.links)
        self.dispatcher = Dispatcher(
            store=store, router=self.router, links=self.links, node="n1",
            messages=MessagesConfig(), numbers=NumbersConfig(), retry=RetryConfig(),
            metrics=Metrics(), traffic=TrafficLog(None), memory_limit=1000,
            listeners=[self.heard], inbox=self.mo.append)
        self.link = ScriptedLink(LinkConfig(name="l1", type="scripted"), self.dispatcher)
        self.links["l1"] = self.link

    async def start(self) -> None:
        await self.link.start()
        await self.dispatcher.start()

    async def send(self, text: str) -> int:
        prepared = prepare(SubmitRequest(to=["0701234567"], text=text, origin=Origin.CLI),
                           numbers=NumbersConfig(), messages=MessagesConfig(),
                           router=self.router, ids=IdGenerator(0), node="n1")
        await self.store.writer.commit(prepared.rows)
        self.dispatcher.add(prepared.messages)
        return prepared.messages[0].id

    async def status(self, id: int) -> dict[str, Any]:
        await self.store.writer.commit({})  # a barrier: every write so far is durable
        msg = await self.store.get_message(id)
        assert msg is not None
        return msg


def report(ref: str, status: Status = Status.DELIVERED) -> DeliveryReport:
    return DeliveryReport("l1", ref, status, None, datetime.now(UTC))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/d.db")
    yield store
    await store.close()


async def two_parts_handed_over(rig: Rig) -> tuple[int, list[Part]]:
    id = await rig.send("x" * 200)  # two GSM parts
    await asyncio.wait_for(rig.link.arrived.wait(), 2)
    await asyncio.sleep(0)
    assert [p.seq for p in rig.link.parts] == [1, 2]
    return id, rig.link.parts


async def test_report_overtaking_a_later_part_still_completes_the_message(store: Store) -> None:
    rig = Rig(store)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.dispatcher.on_report(report("r1"))  # before part 2 is even answered
    rig.dispatcher.on_sent(p2, "r2")
    assert (await rig.status(id))["status"] == "sent"
    rig.dispatcher.on_report(report("r2"))
    msg = await rig.status(id)
    assert msg["status"] == "delivered"
    assert [e["status"] for e in msg["events"]] == ["queued", "sent", "delivered"]


async def test_worst_report_decides_a_long_message(store: Store) -> None:
    rig = Rig(store)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.dispatcher.on_sent(p2, "r2")
    rig.dispatcher.on_report(report("r1", Status.UNDELIVERED))
    rig.dispatcher.on_report(report("r2"))
    assert (await rig.status(id))["status"] == "undelivered"


async def test_reports_after_a_restart_are_matched_through_the_store(store: Store) -> None:
    rig = Rig(store)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.dispatcher.on_sent(p2, "r2")
    assert (await rig.status(id))["status"] == "sent"
    fresh = Rig(store)  # a new process: nothing in memory
    await fresh.start()
    fresh.dispatcher.on_report(report("r1"))
    await fresh.dispatcher.drain_reports()
    assert (await fresh.status(id))["status"] == "sent"  # part 2 still open
    fresh.dispatcher.on_report(report("r2"))
    await fresh.dispatcher.drain_reports()
    assert (await fresh.status(id))["status"] == "delivered"


async def test_permanent_failure_of_one_part_fails_the_message(store: Store) -> None:
    rig = Rig(store)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.dispatcher.on_failed(p2, FailureKind.PERMANENT, "ESME_RINVDSTADR")
    msg = await rig.status(id)
    assert msg["status"] == "failed"
    assert msg["error"] == "ESME_RINVDSTADR"
    assert rig.dispatcher.depth == 0


async def test_temporary_failure_resends_only_the_missing_part(store: Store) -> None:
    rig = Rig(store)
    rig.dispatcher.retry = RetryConfig(initial=0.05, jitter=0)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.link.arrived.clear()
    rig.dispatcher.on_failed(p2, FailureKind.TEMPORARY, "connection lost")
    msg = await rig.status(id)
    assert msg["status"] == "queued" and msg["attempts"] == 1
    assert msg["events"][-1]["reason"].startswith("retry in 0.1s: connection lost")
    await asyncio.wait_for(rig.link.arrived.wait(), 2)
    resent = rig.link.parts[2:]
    assert [(p.seq, p.concat) for p in resent] == [(2, p2.concat)]
    rig.dispatcher.on_sent(resent[0], "r2b")
    assert (await rig.status(id))["status"] == "sent"


async def test_listeners_hear_each_change_with_the_message(store: Store) -> None:
    rig = Rig(store)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.dispatcher.on_sent(p2, "r2")
    fresh = Rig(store)  # the reports arrive after a restart: the store supplies the message
    await fresh.start()
    fresh.dispatcher.on_report(report("r1"))
    fresh.dispatcher.on_report(report("r2", Status.UNDELIVERED))
    await fresh.dispatcher.drain_reports()
    [sent] = rig.heard.changes
    [final] = fresh.heard.changes
    assert (sent.status, sent.link, sent.message.id) == (Status.SENT, "l1", id)
    assert (final.status, final.message.id) == (Status.UNDELIVERED, id)
    assert final.message.text == sent.message.text == "x" * 200
    assert final.message.recipient == "+46701234567"


async def test_report_before_a_restart_still_counts_for_a_part_sent_after_it(
        store: Store) -> None:
    rig = Rig(store)
    await rig.start()
    id, (p1, p2) = await two_parts_handed_over(rig)
    rig.dispatcher.on_sent(p1, "r1")
    rig.dispatcher.on_report(report("r1"))  # part 1 delivered before the restart
    rig.dispatcher.close()  # stopping: part 2's failure leaves the message queued
    rig.dispatcher.on_failed(p2, FailureKind.TEMPORARY, "connection lost")
    assert (await rig.status(id))["status"] == "queued"
    fresh = Rig(store)
    await fresh.start()  # recovery: only part 2 is sent again
    await asyncio.wait_for(fresh.link.arrived.wait(), 2)
    [again] = fresh.link.parts
    assert again.seq == 2
    fresh.dispatcher.on_sent(again, "r2")
    fresh.dispatcher.on_report(report("r2"))
    msg = await fresh.status(id)
    assert msg["status"] == "delivered"
