"""Schedules at send time, and group alarms that must be acknowledged or escalate.

`Gateway.submit` hands every request naming `schedule:NAME` here first; the
schedule is resolved at that moment and each message gets an event saying
who it went to and why. A schedule with `ack = true` makes the request an
alarm: a short reference is added to the text, recipients answer `OK <ref>`
(or `OK` when only one alarm of theirs is open), the first answer is recorded
and announced to the others, and without one within `escalate_after` the
schedule named by `escalate_to` is alarmed, and so on.

The store is the truth: an alarm, each change and its timeline are committed
before anything depends on them, and open alarms (with the time their next
level is due) are reloaded at start, so escalation survives a restart. Each
node keeps (and reloads) the alarms it raised; in a cluster an acknowledgement
counts on the node whose link received it, so it must be that node. A text
starting with `TEST:` is a drill: the alarm is marked as one and every message
it sends (announcements too) starts with `TEST:`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from omnigate.config import ConfigError, NumbersConfig
from omnigate.model import Accepted, Inbound, Origin, Submit, SubmitError, SubmitRequest
from omnigate.oncall.config import ScheduleConfig
from omnigate.oncall.schedule import OnCall, Schedule, numbers_of
from omnigate.sms.numbers import NumberError, normalise_msisdn
from omnigate.store import Store, schema
from omnigate.store.db import iso
from omnigate.store.writer import ConstraintError, StoreUnavailable

log = logging.getLogger("omnigate.oncall")

ADDRESS = "schedule:"
TEST_PREFIX = "TEST:"
# "OK", "ok 4821", "OK #4821", "Ok: 4821 on my way"; a reference is digits only, so
# "OK on my way" is a plain OK.
ACK = re.compile(r"^\s*ok\b[\s:#]*(\d{3,8})?", re.IGNORECASE)
REF_DIGITS = 4
RETRY_AFTER = 5.0  # seconds before an escalation the store refused is tried again


@dataclass(slots=True)
class Alarm:
    """An open alarm as the service keeps it; the `alarms` row is its truth."""

    id: int
    ref: str
    first: str
    schedule: str
    level: int
    text: str
    test: bool
    recipients: list[str]
    escalate_at: float | None

    def state(self, now: float, status: str = "open", acked_by: str | None = None) -> dict[str, Any]:
        return {"b_id": self.id, "schedule": self.schedule, "level": self.level, "status": status,
                "recipients": json.dumps(self.recipients), "escalate_at": self.escalate_at,
                "acked_by": acked_by, "acked_at": now if acked_by else None, "updated_at": now}


class OnCallService:
    def __init__(self, configs: Iterable[ScheduleConfig], *, numbers: NumbersConfig,
                 submit: Submit, clock: Callable[[], float] = time.time) -> None:
        def normalise(raw: str) -> str:
            return normalise_msisdn(raw, numbers.default_region, mobile_only=numbers.mobile_only)

        self.schedules: dict[str, Schedule] = {}
        problems = []
        for i, config in enumerate(configs):
            for path, raw in numbers_of(config):  # every number checked once, at start
                try:
                    normalise(raw)
                except NumberError as exc:
                    problems.append(f"schedules[{i}].{path}: {exc.reason}")
            self.schedules[config.name] = Schedule(config, normalise)
        if problems:
            raise ConfigError(problems)
        self._submit = submit
        self._region = numbers.default_region
        self.clock = clock
        self._store: Store | None = None
        self._node = ""
        self._open: dict[int, Alarm] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.schedules)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, store: Store, node: str) -> None:
        """Reload open alarms and arm their escalation where it was left."""
        self._store, self._node = store, node
        c = schema.alarms.c
        async with store.engine.connect() as conn:
            rows = (await conn.execute(
                select(schema.alarms).where(c.status == "open", c.node == node))).all()
        for r in rows:
            alarm = Alarm(r.id, r.ref, r.first_schedule, r.schedule, r.level, r.text, r.test,
                          json.loads(r.recipients), r.escalate_at)
            self._open[alarm.id] = alarm
            self._arm(alarm)
        if rows:
            log.info("on-call: %d open alarms reloaded", len(rows))

    async def stop(self) -> None:
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- schedules ---------------------------------------------------------------------

    def who(self, name: str, at: Any = None) -> OnCall:
        """Who is on call for schedule `name` (KeyError if none) at `at` (default now)."""
        return self.schedules[name.lower()].who(self.clock() if at is None else at)

    @staticmethod
    def wants(request: SubmitRequest) -> bool:
        return any(to[:len(ADDRESS)].lower() == ADDRESS for to in request.to)

    async def submit(self, request: SubmitRequest) -> list[Accepted]:
        """Resolve every schedule:NAME, submit to the numbers, record why (and the alarm)."""
        now = self.clock()
        to: list[str] = []
        why: dict[str, str] = {}
        alarmed: Schedule | None = None
        for raw in request.to:
            if raw[:len(ADDRESS)].lower() != ADDRESS:
                to.append(raw)
                continue
            name = raw[len(ADDRESS):].strip().lower()
            schedule = self.schedules.get(name)
            if schedule is None:
                raise SubmitError("to", f"no schedule named {name!r}")
            oncall = schedule.who(now)
            if not oncall.numbers:
                raise SubmitError("to", f"schedule {name}: {oncall.why} at "
                                        f"{oncall.at.isoformat(timespec='minutes')}")
            for number in oncall.numbers:
                if number not in why:
                    why[number] = f"schedule {name}: {oncall.why}"
                    to.append(number)
            if schedule.config.ack and alarmed is None:
                alarmed = schedule
        if alarmed is None:
            reasons = {n: f"on call: {w}" for n, w in why.items()}
            return await self._submit(replace(request, to=to, reasons=reasons))
        return await self._raise_alarm(request, to, why, alarmed, now)

    # -- alarms ------------------------------------------------------------------------

    async def _raise_alarm(self, request: SubmitRequest, to: list[str], why: dict[str, str],
                           schedule: Schedule, now: float) -> list[Accepted]:
        store = self._running()
        in_use = {a.ref for a in self._open.values()}
        ref = next(r for r in iter(lambda: f"{secrets.randbelow(10 ** REF_DIGITS):0{REF_DIGITS}d}",
                                   None) if r not in in_use)
        text = f"{request.text}\nReply OK {ref}"
        accepted = await self._submit(replace(request, to=to, text=text))
        cfg = schedule.config
        # the alarm is known by its first message's id: a request resubmitted with its
        # client_ref is answered as stored, and the alarm's key refuses a second alarm
        alarm = Alarm(accepted[0].id, ref, schedule.name, schedule.name, 1, text,
                      request.text.lstrip().upper().startswith(TEST_PREFIX),
                      [a.to for a in accepted],
                      now + cfg.escalate_after if cfg.escalate_to else None)
        note = f"; alarm {alarm.id} ref {ref} level 1"
        row = {"id": alarm.id, "ref": ref, "first_schedule": alarm.first,
               "schedule": alarm.schedule, "level": 1, "text": text, "test": alarm.test,
               "status": "open", "recipients": json.dumps(alarm.recipients),
               "escalate_at": alarm.escalate_at, "acked_by": None, "acked_at": None,
               "node": self._node, "created_at": now, "updated_at": now}
        try:
            await store.writer.commit({
                "alarms": [row],
                "alarm_events": [self._step(alarm, now, "sent",
                                            _sent(schedule.name, accepted, why))],
                "events": self._events(accepted, why, now, note)})
        except ConstraintError:
            log.info("alarm %d: submitted again (client_ref); answered as stored", alarm.id)
            return accepted
        except StoreUnavailable as exc:  # the messages are stored: answer for them
            log.error("alarm %d (ref %s): not recorded (%s); its messages go out, but "
                      "acknowledgements and escalation will not work for it", alarm.id, ref, exc)
            return accepted
        self._open[alarm.id] = alarm
        self._arm(alarm)
        log.info("alarm %d (ref %s%s) to schedule %s: %s", alarm.id, ref,
                 ", drill" if alarm.test else "", schedule.name, ", ".join(alarm.recipients))
        return accepted

    def _arm(self, alarm: Alarm) -> None:
        if alarm.escalate_at is None or self._stopping:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, alarm.escalate_at - self.clock())
        self._timers[alarm.id] = loop.call_later(delay, self._due, alarm.id)

    def _due(self, alarm_id: int) -> None:
        self._timers.pop(alarm_id, None)
        task = asyncio.create_task(self._escalate(alarm_id), name=f"alarm-{alarm_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _escalate(self, alarm_id: int) -> None:
        alarm = self._open.get(alarm_id)
        if alarm is None or self._stopping:
            return
        store = self._running()
        now = self.clock()
        current = self.schedules.get(alarm.schedule)
        nxt = (self.schedules.get(current.config.escalate_to or "")
               if current is not None else None)
        if nxt is None:  # the config changed since the alarm was raised
            alarm.escalate_at = None
            await store.writer.commit({
                "alarm_state": [alarm.state(now)],
                "alarm_events": [self._step(alarm, now, "exhausted", "no further level is "
                                            f"configured after schedule {alarm.schedule}")]})
            return
        oncall = nxt.who(now)
        why = dict.fromkeys(oncall.numbers, f"schedule {nxt.name}: {oncall.why}")
        accepted: list[Accepted] = []
        refused = ""
        if oncall.numbers:
            try:
                accepted = await self._submit(SubmitRequest(to=list(oncall.numbers), text=alarm.text,
                                                            origin=Origin.AUTO, priority=9))
            except SubmitError as exc:
                if exc.kind == "unavailable" and not self._stopping:
                    log.warning("alarm %d: escalation waits: %s", alarm.id, exc.reason)
                    alarm.escalate_at = now + RETRY_AFTER
                    self._arm(alarm)
                    return
                refused = f"; refused: {exc.reason}"
        else:
            refused = f"; {oncall.why}"
        alarm.level += 1
        alarm.schedule = nxt.name
        alarm.recipients += [a.to for a in accepted if a.to not in alarm.recipients]
        alarm.escalate_at = now + nxt.config.escalate_after if nxt.config.escalate_to else None
        rows = {"alarm_events": [self._step(alarm, now, "escalated",
                                            _sent(nxt.name, accepted, why) + refused)],
                "events": self._events(accepted, why, now,
                                       f"; alarm {alarm.id} ref {alarm.ref} level {alarm.level}")}
        if alarm.id in self._open:  # not acknowledged while the messages were submitted
            rows["alarm_state"] = [alarm.state(now)]
        await store.writer.commit(rows)
        log.warning("alarm %d (ref %s) not acknowledged: escalated to level %d, schedule %s%s",
                    alarm.id, alarm.ref, alarm.level, nxt.name, refused)
        if alarm.id in self._open:
            self._arm(alarm)

    async def claim(self, inbound: Inbound) -> tuple[str, str] | None:
        """An inbox claimer: ("ack", detail) when the MO acknowledges an open alarm."""
        m = ACK.match(inbound.text)
        if m is None or not self._open:
            return None
        try:
            sender = normalise_msisdn(inbound.sender, self._region, mobile_only=False)
        except NumberError:  # an alphanumeric sender alarms nobody
            return None
        ref = m.group(1)
        mine = [a for a in self._open.values()
                if sender in a.recipients and (ref is None or a.ref == ref)]
        if len(mine) != 1:
            log.info("'%s' from %s acknowledges no open alarm (%s)", inbound.text[:20], sender,
                     f"{len(mine)} open alarms of this number; answer OK <ref>" if mine
                     else "not a recipient, or no such reference")
            return None
        alarm = mine[0]
        await self._acknowledge(alarm, sender)
        return "ack", f"acknowledged alarm {alarm.id} (ref {alarm.ref}) at level {alarm.level}"

    async def _acknowledge(self, alarm: Alarm, sender: str) -> None:
        store = self._running()
        now = self.clock()
        self._open.pop(alarm.id, None)
        timer = self._timers.pop(alarm.id, None)
        if timer:
            timer.cancel()
        alarm.escalate_at = None
        await store.writer.commit({
            "alarm_state": [alarm.state(now, "acknowledged", sender)],
            "alarm_events": [self._step(alarm, now, "acknowledged", f"by {sender}")]})
        log.info("alarm %d (ref %s) acknowledged by %s at level %d", alarm.id, alarm.ref, sender,
                 alarm.level)
        first = self.schedules.get(alarm.first)
        others = [n for n in alarm.recipients if n != sender]
        if not others or first is None or not first.config.announce:
            return
        text = (f"{TEST_PREFIX} " if alarm.test else "") + \
            f"Alarm {alarm.ref} acknowledged by {sender}"
        try:
            accepted = await self._submit(SubmitRequest(to=others, text=text, origin=Origin.AUTO))
            detail = f"to {', '.join(a.to for a in accepted)}"
        except SubmitError as exc:
            detail = f"refused: {exc.reason}"
            log.warning("alarm %d: announcement refused: %s", alarm.id, exc.reason)
        await store.writer.commit({"alarm_events": [self._step(alarm, self.clock(), "announced",
                                                                detail)]})

    # -- reads for the API ----------------------------------------------------------

    async def alarm(self, alarm_id: int) -> dict[str, Any] | None:
        store = self._running()
        a, e = schema.alarms.c, schema.alarm_events.c
        async with store.engine.connect() as conn:
            row = (await conn.execute(select(schema.alarms).where(a.id == alarm_id))).first()
            if row is None:
                return None
            steps = (await conn.execute(select(e.at, e.level, e.kind, e.detail)
                                        .where(e.alarm_id == alarm_id).order_by(e.id))).all()
        out = _alarm_dict(row)
        out["timeline"] = [{"at": iso(s.at), "level": s.level, "kind": s.kind, "detail": s.detail}
                           for s in steps]
        return out

    async def alarms(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        store = self._running()
        a = schema.alarms.c
        q = select(schema.alarms).order_by(a.id.desc()).limit(limit)
        if status:
            q = q.where(a.status == status)
        async with store.engine.connect() as conn:
            return [_alarm_dict(r) for r in (await conn.execute(q)).all()]

    # -- helpers ----------------------------------------------------------------------

    def _running(self) -> Store:
        if self._store is None:
            raise SubmitError("service", "on-call is not started", kind="unavailable")
        return self._store

    @staticmethod
    def _step(alarm: Alarm, at: float, kind: str, detail: str) -> dict[str, Any]:
        return {"alarm_id": alarm.id, "at": at, "level": alarm.level, "kind": kind,
                "detail": detail}

    def _events(self, accepted: list[Accepted], why: dict[str, str], now: float,
                note: str) -> list[dict[str, Any]]:
        """An event per message sent to a schedule: who it went to and why."""
        return [{"message_id": a.id, "at": now, "status": "queued", "node": self._node,
                 "link": None, "reason": f"on call: {why[a.to]}{note}"}
                for a in accepted if a.to in why]


def _sent(schedule: str, accepted: list[Accepted], why: dict[str, str]) -> str:
    reasons = sorted({why[a.to] for a in accepted if a.to in why})
    return (f"schedule {schedule}: " + ", ".join(f"{a.to} (message {a.id})" for a in accepted)
            + (f" [{'; '.join(reasons)}]" if reasons else ""))


def _alarm_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "ref": row.ref, "status": row.status, "test": row.test,
            "level": row.level, "schedule": row.schedule, "first_schedule": row.first_schedule,
            "text": row.text, "recipients": json.loads(row.recipients),
            "escalate_at": iso(row.escalate_at), "acked_by": row.acked_by,
            "acked_at": iso(row.acked_at), "node": row.node, "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at)}


def config_problems(config: Any) -> list[str]:
    """What only building the service finds (numbers of schedules), for check-config."""
    try:
        OnCallService(config.schedules, numbers=config.numbers, submit=_never_submit)
    except ConfigError as exc:
        return exc.problems
    return []


async def _never_submit(request: SubmitRequest) -> list[Accepted]:
    raise SubmitError("service", "check-config only")
