"""The schedule resolver: who is on call and why, at instants chosen by the test."""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnigate.config import ConfigError, NumbersConfig, parse
from omnigate.model import Accepted, SubmitRequest
from omnigate.oncall.schedule import Schedule
from omnigate.oncall.service import OnCallService

STHLM = ZoneInfo("Europe/Stockholm")
A, B, C = "+46701111111", "+46702222222", "+46703333333"
DESK, HOLIDAY, XMAS = "+46704444444", "+46705555555", "+46706666666"

JOUR = f"""
[[schedules]]
name = "jour"
timezone = "Europe/Stockholm"
numbers = ["{DESK}"]

[[schedules.rotations]]
name = "weekly"
anchor = 2026-01-05T08:00:00   # a Monday: A's first week starts here
turns = ["{A}", "{B}", "{C}"]

[[schedules.rules]]
days = ["mon-fri"]
hours = "08:00-17:00"
numbers = ["{DESK}"]

[[schedules.rules]]
rotation = "weekly"

[schedules.holidays]
country = "SE"
dates = [2026-12-24]
numbers = ["{HOLIDAY}"]

[[schedules.overrides]]
start = 2026-07-01
end = 2026-07-31
numbers = ["{XMAS}"]
note = "summer: Xena covers"

[[schedules.overrides]]
start = 2026-05-02T12:00:00
end = 2026-05-02T14:00:00
rotation = "weekly"
"""


def schedule(text: str = JOUR) -> Schedule:
    return Schedule(parse(tomllib.loads(text)).schedules[0])


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=STHLM)


@pytest.mark.parametrize(("at", "who", "turn"), [
    (local(2026, 1, 10, 12), A, 1),            # Saturday of week 1
    (local(2026, 1, 12, 7, 59), A, 1),         # Monday before the handover
    (local(2026, 1, 12, 17, 0), B, 2),         # Monday evening: week 2
    (local(2026, 1, 25, 23, 0), C, 3),         # Sunday of week 3
    (local(2026, 1, 26, 7, 0), C, 3),          # still week 3 until 08:00
    (local(2026, 1, 31, 12), A, 1),            # and again
    (local(2026, 1, 3, 12), C, 3),             # before the anchor: counted backwards
])
def test_rotation_rolls_over_weeks(at: dt.datetime, who: str, turn: int) -> None:
    oncall = schedule().who(at)
    assert oncall.numbers == (who,)
    assert oncall.why == f"rule 2 (always), rotation weekly turn {turn} of 3"


def test_rotation_across_the_year_boundary() -> None:
    s = schedule()
    # 2026-12-28 is 51 weeks after the anchor: turn 51 % 3 + 1 = 1 (A) until Monday 4 Jan 08:00
    assert s.who(local(2026, 12, 31, 23, 59)).numbers == (A,)
    assert s.who(local(2027, 1, 2, 12)).numbers == (A,)
    assert s.who(local(2027, 1, 4, 7, 59)).numbers == (A,)
    assert s.who(local(2027, 1, 4, 17, 30)).numbers == (B,)


def test_handover_is_local_wall_time_across_dst() -> None:
    """Summer time starts Sunday 29 March 2026 (02:00 -> 03:00): that week has 167 hours, and
    the Monday 08:00 handover stays at 08:00 local (06:00 UTC, not 07:00)."""
    s = schedule()
    # the week from 2026-03-23 08:00 is week 12 after the anchor: 11 % 3 = 2 -> C, then A
    assert s.who(local(2026, 3, 28, 12)).numbers == (C,)
    before = dt.datetime(2026, 3, 30, 5, 59, tzinfo=dt.UTC)  # 07:59 CEST, a weekday night
    after = dt.datetime(2026, 3, 30, 6, 0, tzinfo=dt.UTC)  # 08:00 CEST: desk hours begin
    assert s.who(before).numbers == (C,)
    assert s.who(after).numbers == (DESK,)
    assert s.who(after.timestamp()).why == "rule 1 (mon-fri 08:00-17:00)"
    assert s.who(dt.datetime(2026, 3, 30, 15, 0, tzinfo=dt.UTC)).numbers == (A,)  # 17:00 CEST
    # only the rotation: 08:30 CEST is A's turn; elapsed real time (167 h) would still say C
    rota = schedule(JOUR.split("[[schedules.rules]]")[0].replace(f'numbers = ["{DESK}"]\n', "", 1)
                    + '[[schedules.rules]]\nrotation = "weekly"\n')
    assert rota.who(dt.datetime(2026, 3, 30, 5, 59, tzinfo=dt.UTC)).numbers == (C,)
    assert rota.who(dt.datetime(2026, 3, 30, 6, 30, tzinfo=dt.UTC)).numbers == (A,)


def test_rules_follow_the_zone_when_winter_time_returns() -> None:
    """25 Oct 2026 03:00 CEST -> 02:00 CET: 07:30 UTC is 09:30 on Friday, 08:30 on Monday."""
    s = schedule()
    assert s.who(dt.datetime(2026, 10, 26, 6, 30, tzinfo=dt.UTC)).numbers != (DESK,)  # 07:30 CET
    assert s.who(dt.datetime(2026, 10, 26, 7, 30, tzinfo=dt.UTC)).numbers == (DESK,)  # 08:30
    assert s.who(dt.datetime(2026, 10, 23, 6, 30, tzinfo=dt.UTC)).numbers == (DESK,)  # 08:30 CEST
    # the repeated hour 02:00-03:00 on the Sunday belongs to one week, whichever offset
    first = s.who(dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC))  # 02:30 CEST
    second = s.who(dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC))  # 02:30 CET
    assert first.numbers == second.numbers and first.at.utcoffset() != second.at.utcoffset()


def test_public_holiday_and_custom_date_have_their_own_rule() -> None:
    s = schedule()
    xmas = s.who(local(2026, 12, 25, 10))  # Friday, Christmas Day: desk hours otherwise
    assert xmas.numbers == (HOLIDAY,)
    assert xmas.why == "holiday: Christmas Day (SE)"
    eve = s.who(local(2026, 12, 24, 22))  # Christmas Eve is no public holiday in the library
    assert eve.numbers == (HOLIDAY,) and eve.why == "holiday: custom date 2026-12-24"
    assert s.who(local(2026, 12, 23, 10)).numbers == (DESK,)
    assert s.who(local(2026, 12, 27, 0, 30)).why.startswith("rule 2")  # after the holidays


def test_overrides_win_over_holidays_and_rules_with_end_day_included() -> None:
    s = schedule()
    assert s.who(local(2026, 7, 1, 0, 0)).numbers == (XMAS,)
    last = s.who(local(2026, 7, 31, 23, 59))
    assert last.numbers == (XMAS,) and last.why == "summer: Xena covers"
    assert s.who(local(2026, 8, 1, 0, 0)).numbers != (XMAS,)
    # a two-hour override on a Saturday with a rotation: its turn, with the reason
    noon = s.who(local(2026, 5, 2, 13))
    assert noon.why == ("override 2 (2026-05-02T12:00 to 2026-05-02T14:00), "
                        "rotation weekly turn 2 of 3")


def test_default_numbers_and_nobody() -> None:
    group = schedule('[[schedules]]\nname = "ops"\ntimezone = "UTC"\n'
                     f'numbers = ["0701111111", "{A}"]\n')
    oncall = group.who(0.0)
    assert oncall.numbers == ("0701111111", A)  # as configured; the service normalises
    nights = schedule('[[schedules]]\nname = "n"\ntimezone = "UTC"\n'
                      '[[schedules.rules]]\nhours = "22:00-06:00"\nnumbers = ["0701111111"]\n')
    assert nights.who(dt.datetime(2026, 1, 1, 23, tzinfo=dt.UTC)).numbers == ("0701111111",)
    day = nights.who(dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC))
    assert day.numbers == () and day.why.startswith("nobody")


def test_local_time_without_offset_is_the_schedules_zone() -> None:
    s = schedule()
    assert s.local_time("2026-12-24T22:00") == local(2026, 12, 24, 22)
    assert s.local_time("2026-12-24T22:00+00:00").utcoffset() == dt.timedelta(0)
    with pytest.raises(ValueError):
        s.who(dt.datetime(2026, 1, 1))


async def _nothing(request: SubmitRequest) -> list[Accepted]:
    raise AssertionError("not sent in this test")


def test_service_normalises_numbers_and_reads_its_injected_clock() -> None:
    now = [local(2026, 1, 12, 7, 0).timestamp()]
    config = parse(tomllib.loads(JOUR.replace(A, "070-111 11 11")))
    service = OnCallService(config.schedules, numbers=NumbersConfig(), submit=_nothing,
                            clock=lambda: now[0])
    assert service.who("JOUR").numbers == (A,)
    now[0] = local(2026, 1, 12, 9, 0).timestamp()
    assert service.who("jour").numbers == (DESK,)


@pytest.mark.parametrize(("text", "problem"), [
    ('name = "x"\ntimezone = "Mars/Olympus"\nnumbers = ["1"]', "unknown time zone"),
    ('name = "x"\ntimezone = "UTC"\n[[schedules.rules]]\nrotation = "nope"', "no rotation named"),
    ('name = "x"\ntimezone = "UTC"\n[[schedules.rules]]\ndays = ["mon"]', "needs numbers or"),
    ('name = "x"\ntimezone = "UTC"\n[[schedules.rules]]\nhours = "25:00-26:00"\nnumbers = ["1"]',
     "days/hours"),
    ('name = "x"\ntimezone = "UTC"\nescalate_to = "y"\nnumbers = ["1"]', "is no schedule"),
    ('name = "x"\ntimezone = "UTC"\n[schedules.holidays]\ncountry = "XX"\nnumbers = ["1"]',
     "XX"),
    ('name = "x"\ntimezone = "UTC"\n[[schedules.overrides]]\nstart = 2026-01-02\n'
     'end = 2026-01-01\nnumbers = ["1"]', "end is before start"),
])
def test_config_mistakes_are_explained(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(tomllib.loads("[[schedules]]\n" + text))
    assert problem in str(info.value)
    assert str(info.value).startswith("schedules")


def test_escalation_loops_and_bad_numbers_are_refused() -> None:
    loop: dict[str, Any] = {"schedules": [
        {"name": "a", "timezone": "UTC", "numbers": ["1"], "escalate_to": "b"},
        {"name": "b", "timezone": "UTC", "numbers": ["1"], "escalate_to": "a"}]}
    with pytest.raises(ConfigError, match="escalation loop: a -> b -> a"):
        parse(loop)
    bad = parse({"schedules": [{"name": "a", "timezone": "UTC", "numbers": ["12"], "rotations": [
        {"name": "r", "anchor": "2026-01-05", "turns": [A, [B, "x"]]}]}]})
    with pytest.raises(ConfigError) as info:
        OnCallService(bad.schedules, numbers=NumbersConfig(), submit=_nothing)
    assert [p.split(":")[0] for p in info.value.problems] == [
        "schedules[0].numbers[0]", "schedules[0].rotations[0].turns[1][1]"]
