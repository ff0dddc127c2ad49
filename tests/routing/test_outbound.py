"""Outbound router: matching, tiers, fallback, weighted shares, circuits, rates, suspension."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from omnigate.carriers.base import LinkState
from omnigate.routing.balance import WeightedPicker
from omnigate.routing.health import Circuit, CircuitState
from omnigate.routing.match import Match, TimeWindow
from omnigate.routing.outbound import Choice, Route, Router, Wait

NOW = 1_800_000_000.0
STOCKHOLM = ZoneInfo("Europe/Stockholm")


@dataclass
class FakeLink:
    """A link as the router sees it: state, room and load (the router's whole input)."""

    name: str
    state: LinkState = LinkState.UP
    room: int = 10
    in_flight: int = 0

    def capacity(self) -> int:
        return self.room if self.state is LinkState.UP else 0


@dataclass
class Msg:
    recipient: str = "+46701234567"
    origin: str = "http"
    account: str | None = None
    sender_text: str | None = None
    flash: bool = False
    priority: int = 0


def router(*routes: Route, **links: FakeLink) -> Router:
    return Router(routes, links)


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=STOCKHOLM).timestamp()


# -- matching -----------------------------------------------------------------


def test_specific_route_before_default_whatever_the_order() -> None:
    default = Route("default", (("a",),))
    nordic = Route("nordic", (("b",),), Match(prefixes=("46", "47")))
    r = router(default, nordic, a=FakeLink("a"), b=FakeLink("b"))
    assert r.route_for(Msg("+46701234567"), NOW) is nordic
    assert r.route_for(Msg("+4791234567"), NOW) is nordic
    assert r.route_for(Msg("+4915112345678"), NOW) is default


def test_no_route_matches() -> None:
    r = router(Route("se", (("a",),), Match(prefixes=("46",))), a=FakeLink("a"))
    assert r.route_for(Msg("+4915112345678"), NOW) is None


def test_first_matching_route_wins_in_config_order() -> None:
    alarms = Route("alarms", (("gsm",),), Match(origins=frozenset({"smtp"}),
                                                 accounts=frozenset({"nagios"})))
    flash = Route("flash", (("b",),), Match(flash=True))
    urgent = Route("urgent", (("b",),), Match(min_priority=2))
    brand = Route("brand", (("b",),), Match(senders=frozenset({"ACME"})))
    german = Route("de", (("b",),), Match(patterns=(re.compile(r"^\+491[5-7]"),)))
    default = Route("default", (("a",),))
    r = Router([default, alarms, flash, urgent, brand, german],
               {n: FakeLink(n) for n in ("a", "b", "gsm")})
    assert r.route_for(Msg(origin="smtp", account="nagios", flash=True), NOW) is alarms
    assert r.route_for(Msg(origin="http", account="nagios", flash=True), NOW) is flash
    assert r.route_for(Msg(priority=3), NOW) is urgent
    assert r.route_for(Msg(priority=1), NOW) is default
    assert r.route_for(Msg(sender_text="ACME"), NOW) is brand
    assert r.route_for(Msg("+4915112345678"), NOW) is german
    assert r.route_for(Msg("+4930123456"), NOW) is default


def test_business_hours_by_one_link_nights_by_another() -> None:
    office = Route("office", (("a",),),
                   Match(window=TimeWindow.parse(["mon-fri"], "08:00-17:00", "Europe/Stockholm")))
    night = Route("night", (("b",),))
    r = router(office, night, a=FakeLink("a"), b=FakeLink("b"))
    monday_9 = at(2026, 11, 23, 9)
    assert r.timed
    assert r.route_for(Msg(), monday_9) is office
    assert r.route_for(Msg(), at(2026, 11, 23, 17)) is night  # end is exclusive
    assert r.route_for(Msg(), at(2026, 11, 23, 7, 59)) is night
    assert r.route_for(Msg(), at(2026, 11, 28, 10)) is night  # Saturday


def test_window_past_midnight_belongs_to_its_first_day() -> None:
    w = TimeWindow.parse(["fri"], "22:00-06:00", "Europe/Stockholm")
    assert w.contains(at(2026, 11, 27, 23))  # Friday night
    assert w.contains(at(2026, 11, 28, 5, 59))  # Saturday morning, still Friday's shift
    assert not w.contains(at(2026, 11, 28, 23))  # Saturday night
    assert not w.contains(at(2026, 11, 27, 5))  # Friday morning is Thursday's shift


def test_day_ranges_wrap_the_week_and_days_without_hours_are_whole_days() -> None:
    w = TimeWindow.parse(["sat-mon"], None, "Europe/Stockholm")
    assert w.days == frozenset({5, 6, 0})
    assert w.contains(at(2026, 11, 28, 0, 0)) and w.contains(at(2026, 11, 30, 23, 59))
    assert not w.contains(at(2026, 11, 27, 23, 59)) and not w.contains(at(2026, 12, 1, 0, 0))


def test_match_counts_its_conditions() -> None:
    assert Match().is_default
    assert not Match(flash=False).is_default
    assert Match(prefixes=("46",), origins=frozenset({"http"})).conditions == 2


# -- tiers and fallback ------------------------------------------------------------


def test_falls_back_when_first_tier_is_down() -> None:
    route = Route("r", (("a",), ("gsm",)))
    r = router(route, a=FakeLink("a", state=LinkState.DOWN), gsm=FakeLink("gsm"))
    assert r.choose(route, 0, 1, NOW) == Choice(1, "gsm")


def test_falls_back_after_failed_attempts_on_the_tier() -> None:
    route = Route("r", (("a",), ("gsm",)), fallback_after=3)
    r = router(route, a=FakeLink("a"), gsm=FakeLink("gsm"))
    assert r.choose(route, 2, 1, NOW) == Choice(0, "a")
    assert r.choose(route, 3, 1, NOW) == Choice(1, "gsm")
    assert r.choose(route, 99, 1, NOW) == Choice(1, "gsm")  # stays on the last tier


def test_busy_tier_waits_rather_than_falling_back() -> None:
    route = Route("r", (("a",), ("gsm",)))
    r = router(route, a=FakeLink("a", room=0, in_flight=10), gsm=FakeLink("gsm"))
    assert r.choose(route, 0, 1, NOW) is Wait.BUSY


def test_all_down() -> None:
    route = Route("r", (("a",), ("b",)))
    r = router(route, a=FakeLink("a", state=LinkState.DOWN),
               b=FakeLink("b", state=LinkState.CONNECTING))
    assert r.choose(route, 0, 1, NOW) is Wait.DOWN


def test_long_message_needs_room_for_all_parts_unless_link_is_idle() -> None:
    route = Route("r", (("a",),))
    partly_busy = FakeLink("a", room=2, in_flight=8)
    assert router(route, a=partly_busy).choose(route, 0, 3, NOW) is Wait.BUSY
    idle = FakeLink("a", room=10, in_flight=0)
    assert router(route, a=idle).choose(route, 0, 12, NOW) == Choice(0, "a")


def test_suspended_link_is_skipped_and_comes_back() -> None:
    route = Route("r", (("a",), ("gsm",)))
    r = router(route, a=FakeLink("a"), gsm=FakeLink("gsm"))
    r.suspend("a", True)
    assert r.choose(route, 0, 1, NOW) == Choice(1, "gsm")
    assert r.describe("a")["suspended"] is True
    r.suspend("a", False)
    assert r.choose(route, 0, 1, NOW) == Choice(0, "a")
    with pytest.raises(KeyError):
        r.suspend("nope", True)


# -- weighted shares ------------------------------------------------------------


def test_weighted_shares_within_five_percent_over_ten_thousand_picks() -> None:
    route = Route("r", (("a", "b", "c"),), weights={"a": 3, "b": 1, "c": 6})
    links = {n: FakeLink(n, room=10**6) for n in "abc"}
    r = Router([route], links)
    picks = Counter(r.choose(route, 0, 1, NOW).link for _ in range(10_000))  # type: ignore[union-attr]
    for name, weight in (("a", 3), ("b", 1), ("c", 6)):
        share = picks[name] / 10_000
        assert abs(share - weight / 10) <= 0.05 * weight / 10, (name, picks)


def test_smooth_round_robin_interleaves() -> None:
    picker = WeightedPicker({"a": 3, "b": 1})
    assert [picker.pick(["a", "b"]) for _ in range(8)] == list("aaba" * 2)


def test_equal_scores_go_to_the_link_with_fewer_in_flight() -> None:
    picker = WeightedPicker({})
    assert picker.pick(["a", "b"], {"a": 5, "b": 1}) == "b"


def test_a_full_link_keeps_its_turn_and_the_tier_waits() -> None:
    route = Route("r", (("a", "b"),), weights={"a": 3})
    a, b = FakeLink("a", room=0, in_flight=5), FakeLink("b")
    r = router(route, a=a, b=b)
    assert r.choose(route, 0, 1, NOW) is Wait.BUSY  # a's turn; b does not take its share
    a.room, a.in_flight = 10, 0
    picks = [r.choose(route, 0, 1, NOW) for _ in range(8)]
    assert [p.link for p in picks] == list("aaba" * 2)  # type: ignore[union-attr]


def test_weights_hold_when_links_fill_up() -> None:
    route = Route("r", (("a", "b"),), weights={"a": 3, "b": 1})
    a, b = FakeLink("a", room=2), FakeLink("b", room=2)
    r = router(route, a=a, b=b)
    picks: Counter[str] = Counter()
    for step in range(4000):
        choice = r.choose(route, 0, 1, NOW)
        if isinstance(choice, Choice):
            picks[choice.link] += 1
            self_link = a if choice.link == "a" else b
            self_link.room -= 1
        if step % 3 == 0:  # the carriers answer: both links get room back at one pace
            a.room, b.room = min(2, a.room + 1), min(2, b.room + 1)
    assert abs(picks["a"] / (picks["a"] + picks["b"]) - 0.75) < 0.02, picks


# -- circuit breaker ----------------------------------------------------------------


def test_circuit_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    route = Route("r", (("a",), ("gsm",)))
    r = Router([route], {"a": FakeLink("a"), "gsm": FakeLink("gsm")},
               circuit_failures=3, circuit_cooldown=30)
    for i in range(2):
        r.failed("a", NOW + i)
    assert r.choose(route, 0, 1, NOW + 2) == Choice(0, "a")  # still closed
    r.failed("a", NOW + 2)
    assert r.describe("a")["circuit"] == "open"
    assert r.choose(route, 0, 1, NOW + 3) == Choice(1, "gsm")  # skipped while open
    assert r.choose(route, 0, 1, NOW + 33) == Choice(0, "a")  # half-open: the probe
    assert r.describe("a")["circuit"] == "half-open"
    assert r.choose(route, 0, 1, NOW + 33) == Choice(1, "gsm")  # one probe at a time
    r.succeeded("a")
    assert r.describe("a") == {"suspended": False, "circuit": "closed", "consecutive_failures": 0}
    assert r.choose(route, 0, 1, NOW + 34) == Choice(0, "a")


def test_failed_probe_opens_the_circuit_again() -> None:
    c = Circuit("a", threshold=2, cooldown=10)
    c.failed(0)
    c.failed(1)
    assert c.state is CircuitState.OPEN and not c.allows(5)
    assert c.allows(11)
    c.taken()
    assert not c.allows(11)
    c.failed(12)
    assert c.state is CircuitState.OPEN and not c.allows(21) and c.allows(22.5)


def test_a_success_resets_the_failure_count() -> None:
    c = Circuit("a", threshold=3, cooldown=10)
    c.failed(0)
    c.failed(1)
    c.succeeded()
    c.failed(2)
    c.failed(3)
    assert c.state is CircuitState.CLOSED


# -- rates --------------------------------------------------------------------------


def test_link_messages_per_second_is_a_wait_not_a_failure() -> None:
    route = Route("r", (("a",), ("gsm",)))
    r = Router([route], {"a": FakeLink("a"), "gsm": FakeLink("gsm")}, link_rates={"a": 4})
    got = [r.choose(route, 0, 1, NOW) for _ in range(3)]
    assert got == [Choice(0, "a"), Wait.BUSY, Wait.BUSY]  # burst of a quarter second
    assert r.choose(route, 0, 1, NOW + 0.25) == Choice(0, "a")
    sent = sum(r.choose(route, 0, 1, NOW + 1 + i / 100) == Choice(0, "a") for i in range(1000))
    assert 38 <= sent <= 42  # 4/s over 10 s


def test_bucket_spends_several_at_once_and_refills() -> None:
    from omnigate.routing.ratelimit import TokenBucket

    b = TokenBucket(10, burst=5)
    assert b.available(NOW) == 5
    b.spend(7)  # a batch larger than the bucket leaves a debt
    assert b.available(NOW) == 0 and b.wait(NOW) == pytest.approx(0.3)
    assert b.available(NOW + 0.31) == 1
    b.reset(NOW + 0.31)
    assert b.available(NOW + 0.31) == 5
