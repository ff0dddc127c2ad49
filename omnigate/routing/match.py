"""What a route matches: destination, origin, account, sender, flags and a time window.

A `Match` is a pure predicate over the few fields of a message that routing
may look at (`Routable`), evaluated at a given time. Every condition that is
set must hold; an empty `Match` is the default route.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Routable(Protocol):
    recipient: str  # E.164 with '+'
    origin: str
    account: str | None
    sender_text: str | None
    flash: bool
    priority: int


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Weekdays and a daily time range in one zone; `end < start` runs past midnight.

    A window crossing midnight belongs to the day it starts on: "fri 22:00-06:00"
    covers Friday night until Saturday 06:00. Days without hours are whole days.
    """

    days: frozenset[int]  # 0 = Monday
    start: dt.time
    end: dt.time
    zone: ZoneInfo

    def contains(self, at: float) -> bool:
        local = dt.datetime.fromtimestamp(at, self.zone)
        now, day = local.time(), local.weekday()
        if self.start == self.end:  # no hours given: the whole day
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        if now >= self.start:
            return day in self.days
        return (day - 1) % 7 in self.days and now < self.end

    @classmethod
    def parse(cls, days: Iterable[str], hours: str | None, zone: str) -> TimeWindow:
        """From config words: days like 'mon'..'sun' or 'mon-fri', hours like '08:00-17:00'."""
        picked: set[int] = set()
        for word in days:
            first, _, last = word.lower().partition("-")
            a, b = DAYS.index(first), DAYS.index(last or first)
            picked.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        start, end = dt.time(0), dt.time(0)
        if hours:
            left, _, right = hours.partition("-")
            start, end = dt.time.fromisoformat(left), dt.time.fromisoformat(right)
        return cls(frozenset(picked or range(7)), start, end, ZoneInfo(zone))


@dataclass(frozen=True, slots=True)
class Match:
    prefixes: tuple[str, ...] = ()  # E.164 digits without '+'
    patterns: tuple[re.Pattern[str], ...] = ()  # searched in the E.164 number with '+'
    origins: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    senders: frozenset[str] = frozenset()
    flash: bool | None = None
    min_priority: int | None = None
    window: TimeWindow | None = None
    conditions: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        count = sum(bool(x) for x in (self.prefixes, self.patterns, self.origins, self.accounts,
                                      self.senders, self.window))
        count += (self.flash is not None) + (self.min_priority is not None)
        object.__setattr__(self, "conditions", count)

    @property
    def is_default(self) -> bool:
        return self.conditions == 0

    def matches(self, msg: Routable, at: float) -> bool:
        number = msg.recipient
        if self.prefixes and not number.lstrip("+").startswith(self.prefixes):
            return False
        if self.patterns and not any(p.search(number) for p in self.patterns):
            return False
        if self.origins and msg.origin not in self.origins:
            return False
        if self.accounts and msg.account not in self.accounts:
            return False
        if self.senders and msg.sender_text not in self.senders:
            return False
        if self.flash is not None and msg.flash is not self.flash:
            return False
        if self.min_priority is not None and msg.priority < self.min_priority:
            return False
        return self.window is None or self.window.contains(at)
