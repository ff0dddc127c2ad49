"""Outbound router: route matching order, tiers, fallback, busy versus down."""

from __future__ import annotations

from dataclasses import dataclass

from omnigate.carriers.base import LinkState
from omnigate.routing.outbound import Choice, Route, Router, Wait


@dataclass
class FakeLink:
    """A link as the router sees it: state, room and load (the router's whole input)."""

    name: str
    state: LinkState = LinkState.UP
    room: int = 10
    in_flight: int = 0

    def capacity(self) -> int:
        return self.room if self.state is LinkState.UP else 0


def router(*routes: Route, **links: FakeLink) -> Router:
    return Router(routes, links)


def test_specific_route_before_default_whatever_the_order() -> None:
    default = Route("default", (), (("a",),))
    nordic = Route("nordic", ("46", "47"), (("b",),))
    r = router(default, nordic, a=FakeLink("a"), b=FakeLink("b"))
    assert r.route_for("+46701234567") is nordic
    assert r.route_for("+4791234567") is nordic
    assert r.route_for("+4915112345678") is default


def test_no_route_matches() -> None:
    r = router(Route("se", ("46",), (("a",),)), a=FakeLink("a"))
    assert r.route_for("+4915112345678") is None


def test_least_loaded_link_of_first_tier() -> None:
    a, b = FakeLink("a", in_flight=5), FakeLink("b", in_flight=2)
    route = Route("r", (), (("a", "b"),))
    assert router(route, a=a, b=b).choose(route, 0, 1) == Choice(0, "b")


def test_falls_back_when_first_tier_is_down() -> None:
    route = Route("r", (), (("a",), ("gsm",)))
    r = router(route, a=FakeLink("a", state=LinkState.DOWN), gsm=FakeLink("gsm"))
    assert r.choose(route, 0, 1) == Choice(1, "gsm")


def test_falls_back_after_failed_attempts_on_the_tier() -> None:
    route = Route("r", (), (("a",), ("gsm",)), fallback_after=3)
    r = router(route, a=FakeLink("a"), gsm=FakeLink("gsm"))
    assert r.choose(route, 2, 1) == Choice(0, "a")
    assert r.choose(route, 3, 1) == Choice(1, "gsm")
    assert r.choose(route, 99, 1) == Choice(1, "gsm")  # stays on the last tier


def test_busy_tier_waits_rather_than_falling_back() -> None:
    route = Route("r", (), (("a",), ("gsm",)))
    r = router(route, a=FakeLink("a", room=0, in_flight=10), gsm=FakeLink("gsm"))
    assert r.choose(route, 0, 1) is Wait.BUSY


def test_all_down() -> None:
    route = Route("r", (), (("a",), ("b",)))
    r = router(route, a=FakeLink("a", state=LinkState.DOWN),
               b=FakeLink("b", state=LinkState.CONNECTING))
    assert r.choose(route, 0, 1) is Wait.DOWN


def test_long_message_needs_room_for_all_parts_unless_link_is_idle() -> None:
    route = Route("r", (), (("a",),))
    partly_busy = FakeLink("a", room=2, in_flight=8)
    assert router(route, a=partly_busy).choose(route, 0, 3) is Wait.BUSY
    idle = FakeLink("a", room=10, in_flight=0)
    assert router(route, a=idle).choose(route, 0, 12) == Choice(0, "a")
