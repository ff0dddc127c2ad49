"""The `[[schedules]]` config: who is on call, when, and how an alarm to them escalates.

A schedule answers in its own time zone (always explicit): overrides first,
then the holiday rule on a holiday, then the weekly rules in order, then
`numbers`. A schedule with only `numbers` is a plain group.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omnigate.routing.match import TimeWindow

NAME = r"^[A-Za-z0-9_.-]+$"


class _Section(BaseModel):
    # omnigate.config.Section's rule, restated: that module imports this one
    model_config = ConfigDict(extra="forbid")


class Who(_Section):
    """Who a rule puts on call: fixed numbers, the current turn of a rotation, or both."""

    numbers: list[str] = Field(default_factory=list, description="phone numbers, any usual spelling")
    rotation: str | None = Field(None, description="name of one of the schedule's rotations")

    @model_validator(mode="after")
    def _someone(self) -> Any:
        if not self.numbers and self.rotation is None:
            raise ValueError("needs numbers or a rotation")
        return self


class RotationConfig(_Section):
    """Turns that roll over: turn 1 from `anchor`, turn 2 `weeks` later, and so on, then again."""

    name: str = Field(pattern=NAME)
    anchor: dt.datetime | dt.date = Field(description="local start of turn 1 (a date means 00:00); "
                                                      "in the schedule's time zone")
    weeks: int = Field(1, ge=1, le=52, description="length of one turn")
    turns: list[str | list[str]] = Field(min_length=1, description="a number, or numbers, per turn")

    @field_validator("anchor")
    @classmethod
    def _local(cls, v: dt.datetime | dt.date) -> dt.datetime | dt.date:
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            raise ValueError("give a local time without offset; the schedule's timezone applies")
        return v


class RuleConfig(Who):
    """A weekly rule: these days (all when empty), these hours (all day when absent)."""

    days: list[str] = Field(default_factory=list, description="'mon'..'sun' or ranges 'mon-fri'")
    hours: str | None = Field(None, description="'08:00-17:00'; past midnight allowed ('17:00-08:00')")

    @model_validator(mode="after")
    def _window(self) -> RuleConfig:
        try:
            TimeWindow.parse(self.days, self.hours, "UTC")
        except ValueError as exc:
            raise ValueError(f"days/hours: {exc}") from None
        return self


class OverrideConfig(Who):
    """A date or range that replaces everything else: dates cover whole days, `end` included."""

    start: dt.datetime | dt.date
    end: dt.datetime | dt.date | None = Field(None, description="absent = the day of `start`")
    note: str | None = Field(None, description="shown as the reason")

    @model_validator(mode="after")
    def _order(self) -> OverrideConfig:
        if self.end is not None and _end(self.end) <= _start(self.start):
            raise ValueError("end is before start")
        return self

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        """[from, to) in local wall time."""
        return _start(self.start), _end(self.end if self.end is not None else self.start)


class HolidaysConfig(Who):
    """Public holidays of a country (the `holidays` library) and dates of our own, all day."""

    country: str | None = Field(None, description="ISO 3166 code such as 'SE'")
    subdiv: str | None = Field(None, description="a region of the country, where it differs")
    dates: list[dt.date] = Field(default_factory=list, description="more days, e.g. Christmas Eve")

    @model_validator(mode="after")
    def _calendar(self) -> HolidaysConfig:
        if self.country is None and not self.dates:
            raise ValueError("needs a country or dates")
        if self.country is not None:
            import holidays  # only where used: importing it costs a few hundred ms

            try:
                holidays.country_holidays(self.country, subdiv=self.subdiv)
            except NotImplementedError as exc:  # the library's answer for an unknown country
                raise ValueError(str(exc)) from None
        return self


class ScheduleConfig(_Section):
    name: str = Field(pattern=NAME, description="addressed as schedule:NAME, NAME@<smtp domain>, "
                                                "spool 'To: NAME'")
    timezone: str = Field(description="zone of rules, rotations, overrides and holidays "
                                      "(e.g. 'Europe/Stockholm')")
    numbers: list[str] = Field(default_factory=list, description="on call when nothing else "
                               "applies; a schedule with only numbers is a group")
    rotations: list[RotationConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list, description="first match wins")
    holidays: HolidaysConfig | None = None
    overrides: list[OverrideConfig] = Field(default_factory=list, description="first match wins")
    ack: bool = Field(False, description="messages to this schedule are alarms: a reference is "
                                         "added and recipients answer 'OK <ref>'")
    escalate_after: float = Field(900.0, gt=0, description="seconds without an acknowledgement "
                                                           "before escalate_to is alarmed")
    escalate_to: str | None = Field(None, pattern=NAME, description="next level: another schedule")
    announce: bool = Field(True, description="tell the other recipients who acknowledged")

    @field_validator("name")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @field_validator("escalate_to")
    @classmethod
    def _lower_next(cls, v: str | None) -> str | None:
        return v.lower() if v else v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. 'Europe/Stockholm')") from None
        return v

    @model_validator(mode="after")
    def _rotations_exist(self) -> ScheduleConfig:
        names = [r.name for r in self.rotations]
        if len(set(names)) != len(names):
            raise ValueError("rotation names must be unique")
        for who in (*self.rules, *self.overrides, *([self.holidays] if self.holidays else [])):
            if who.rotation is not None and who.rotation not in names:
                raise ValueError(f"no rotation named {who.rotation!r}")
        return self


def check_schedules(schedules: list[ScheduleConfig]) -> list[ScheduleConfig]:
    """Across schedules: unique names, escalate_to names a schedule, no escalation loop."""
    by_name: dict[str, ScheduleConfig] = {}
    for s in schedules:
        if s.name in by_name:
            raise ValueError(f"schedule name {s.name!r} is used twice")
        by_name[s.name] = s
    for s in schedules:
        seen = [s.name]
        nxt = s.escalate_to
        while nxt is not None:
            if nxt not in by_name:
                raise ValueError(f"schedule {seen[-1]!r}: escalate_to {nxt!r} is no schedule")
            if nxt in seen:
                raise ValueError(f"escalation loop: {' -> '.join([*seen, nxt])}")
            seen.append(nxt)
            nxt = by_name[nxt].escalate_to
    return schedules


def _start(v: dt.datetime | dt.date) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.combine(v, dt.time())


def _end(v: dt.datetime | dt.date) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.combine(v + dt.timedelta(days=1),
                                                                      dt.time())
