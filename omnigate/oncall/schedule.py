"""Who is on call at a given moment, and why: a pure function of the config and the time.

All reasoning is in the schedule's local wall time, so a rotation that hands
over on Monday 08:00 does so at 08:00 on both sides of a DST change, and a
holiday is a local calendar day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from omnigate.oncall.config import ScheduleConfig, Who
from omnigate.routing.match import TimeWindow

if TYPE_CHECKING:
    from holidays import HolidayBase


@dataclass(frozen=True, slots=True)
class OnCall:
    """The answer: numbers (as configured, or E.164 once normalised) and the reason."""

    numbers: tuple[str, ...]
    why: str
    at: dt.datetime  # the moment asked about, in the schedule's zone


class Schedule:
    """One `[[schedules]]` entry, ready to answer `who(at)`."""

    def __init__(self, config: ScheduleConfig, normalise: Callable[[str], str] = str) -> None:
        self.config = config
        self.name = config.name
        self.zone = ZoneInfo(config.timezone)
        self._normalise = normalise
        self._rules = [(TimeWindow.parse(r.days, r.hours, config.timezone), r) for r in config.rules]
        self._rotations = {r.name: r for r in config.rotations}
        h = config.holidays
        self._calendar: HolidayBase | None = None
        if h is not None and h.country:
            import holidays  # only where used: importing it costs a few hundred ms

            self._calendar = holidays.country_holidays(h.country, subdiv=h.subdiv)
        self._own_days = frozenset(h.dates if h else ())

    def who(self, at: dt.datetime | float) -> OnCall:
        """Who is on call at `at` (an aware datetime or epoch seconds)."""
        if isinstance(at, dt.datetime):
            if at.tzinfo is None:
                raise ValueError("a time needs its zone (or use local_time)")
            local = at.astimezone(self.zone)
        else:
            local = dt.datetime.fromtimestamp(at, self.zone)
        wall = local.replace(tzinfo=None)
        epoch = local.timestamp()
        for i, o in enumerate(self.config.overrides):
            start, end = o.span()
            if start <= wall < end:
                return self._answer(o, local, o.note or f"override {i + 1} ({_span(start, end)})")
        h = self.config.holidays
        if h is not None:
            day = wall.date()
            name = self._calendar.get(day) if self._calendar is not None else None
            if name is not None or day in self._own_days:
                label = f"{name} ({h.country})" if name else f"custom date {day.isoformat()}"
                return self._answer(h, local, f"holiday: {label}")
        for i, (window, rule) in enumerate(self._rules):
            # without hours a rule holds all day (TimeWindow would read 00:00-00:00 as empty)
            if window.contains(epoch) if rule.hours else local.weekday() in window.days:
                what = " ".join(filter(None, [",".join(rule.days), rule.hours])) or "always"
                return self._answer(rule, local, f"rule {i + 1} ({what})")
        if self.config.numbers:
            return OnCall(self._numbers(self.config.numbers), "default numbers", local)
        return OnCall((), "nobody: no override, holiday or rule applies and no default numbers",
                      local)

    def local_time(self, text: str) -> dt.datetime:
        """ISO 8601 from a user: with an offset it is that instant, without one local time."""
        at = dt.datetime.fromisoformat(text)
        return at if at.tzinfo is not None else at.replace(tzinfo=self.zone)

    def _answer(self, who: Who, local: dt.datetime, why: str) -> OnCall:
        numbers = list(who.numbers)
        if who.rotation is not None:
            turn, count, members = self._turn(who.rotation, local.replace(tzinfo=None))
            numbers += members
            why += f", rotation {who.rotation} turn {turn} of {count}"
        return OnCall(self._numbers(numbers), why, local)

    def _turn(self, name: str, wall: dt.datetime) -> tuple[int, int, list[str]]:
        r = self._rotations[name]
        anchor = r.anchor if isinstance(r.anchor, dt.datetime) else dt.datetime.combine(
            r.anchor, dt.time())
        # wall-clock difference: a turn is `weeks` calendar weeks whatever DST does
        index = ((wall - anchor) // dt.timedelta(weeks=r.weeks)) % len(r.turns)
        turn = r.turns[index]
        return index + 1, len(r.turns), [turn] if isinstance(turn, str) else list(turn)

    def _numbers(self, raw: list[str]) -> tuple[str, ...]:
        out: list[str] = []
        for n in raw:
            number = self._normalise(n)
            if number not in out:
                out.append(number)
        return tuple(out)


def numbers_of(config: ScheduleConfig) -> Iterator[tuple[str, str]]:
    """(config path below the schedule, number) of every number it names, to check at start."""
    for i, n in enumerate(config.numbers):
        yield f"numbers[{i}]", n
    for key, whos in (("rules", config.rules), ("overrides", config.overrides)):
        for w, who in enumerate(whos):
            for i, n in enumerate(who.numbers):
                yield f"{key}[{w}].numbers[{i}]", n
    for i, n in enumerate(config.holidays.numbers if config.holidays else []):
        yield f"holidays.numbers[{i}]", n
    for r, rotation in enumerate(config.rotations):
        for t, turn in enumerate(rotation.turns):
            if isinstance(turn, str):
                yield f"rotations[{r}].turns[{t}]", turn
            else:
                for i, n in enumerate(turn):
                    yield f"rotations[{r}].turns[{t}][{i}]", n


def _span(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.isoformat(timespec='minutes')} to {end.isoformat(timespec='minutes')}"
