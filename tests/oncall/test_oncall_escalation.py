"""Escalation down a chain of three schedules, one with nobody on call at that hour, on a
real store; the submit function records what the gateway would have been handed."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from omnigate.config import NumbersConfig, parse
from omnigate.model import Accepted, Inbound, Origin, Status, SubmitRequest
from omnigate.oncall.service import OnCallService
from omnigate.store import Store
from tests.support import poll

NIGHT = dt.datetime(2026, 12, 24, 23, 30, tzinfo=dt.UTC).timestamp()


class Outbox:
    """Takes submissions as Gateway.submit would answer them (ids in order)."""

    def __init__(self) -> None:
        self.sent: list[SubmitRequest] = []

    async def __call__(self, request: SubmitRequest) -> list[Accepted]:
        self.sent.append(request)
        base = len(self.sent) * 100
        return [Accepted(base + i, n, Status.QUEUED, 1) for i, n in enumerate(request.to)]


async def test_chain_skips_an_empty_level_and_stops_at_the_last(tmp_path: Path) -> None:
    config = parse({"schedules": [
        {"name": "ops", "timezone": "UTC", "numbers": ["+46701111111"], "ack": True,
         "escalate_after": 0.05, "escalate_to": "day"},
        {"name": "day", "timezone": "UTC", "escalate_after": 0.05, "escalate_to": "boss",
         "rules": [{"hours": "08:00-17:00", "numbers": ["+46702222222"]}]},
        {"name": "boss", "timezone": "UTC", "numbers": ["+46703333333"]}]})
    outbox = Outbox()
    service = OnCallService(config.schedules, numbers=NumbersConfig(), submit=outbox,
                            clock=lambda: NIGHT)
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    try:
        await service.start(store, "node1")
        [accepted] = await service.submit(SubmitRequest(to=["schedule:OPS"], text="UPS on battery",
                                                        origin=Origin.HTTP))
        await poll(lambda: len(outbox.sent) == 2)
        body = await service.alarm(accepted.id)
        for _ in range(100):  # the last escalation's commit follows its submit
            if body is not None and body["level"] == 3:
                break
            await asyncio.sleep(0.02)
            body = await service.alarm(accepted.id)
        assert body is not None and (body["level"], body["escalate_at"]) == (3, None)
        assert [s["kind"] for s in body["timeline"]] == ["sent", "escalated", "escalated"]
        assert "nobody" in body["timeline"][1]["detail"]  # day: 23:30 is outside 08-17
        assert body["timeline"][2]["detail"].startswith("schedule boss: +46703333333")
        assert [r.to for r in outbox.sent] == [["+46701111111"], ["+46703333333"]]
        assert outbox.sent[1].text == f"UPS on battery\nReply OK {body['ref']}"
        # the boss answers; an alphanumeric sender or a stranger would not count
        assert await service.claim(Inbound("smsc1", "INFO", "46700000000", "OK",
                                           dt.datetime.now(dt.UTC))) is None
        claim = await service.claim(Inbound("smsc1", "46703333333", "46700000000",
                                            f"OK {body['ref']}", dt.datetime.now(dt.UTC)))
        assert claim is not None and claim[0] == "ack"
        await poll(lambda: len(outbox.sent) == 3)
        assert outbox.sent[2].to == ["+46701111111"]  # the announcement, to level 1
    finally:
        await service.stop()
        await store.close()
