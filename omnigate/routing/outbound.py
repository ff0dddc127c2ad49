"""Outbound routing: an ordered table of routes, each an ordered list of tiers of links.

Pure decisions over what a link shows (state, capacity, load): no I/O, no
timers. The dispatcher asks `route_for` once per message and `choose` each
time the message is due; the answer is a link, or why there is none:

* `BUSY`  - a usable link of the current tier is full: wait for room
  (a full link is not a failure and never causes fallback);
* `DOWN`  - no link of any remaining tier is up: wait for one to come up.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from omnigate.carriers.base import LinkState


class LinkView(Protocol):
    name: str

    @property
    def state(self) -> LinkState: ...

    @property
    def in_flight(self) -> int: ...

    def capacity(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    prefixes: tuple[str, ...]  # E.164 digits without '+'; empty = default route
    tiers: tuple[tuple[str, ...], ...]
    fallback_after: int = 3

    def matches(self, digits: str) -> bool:
        return not self.prefixes or digits.startswith(self.prefixes)


class Wait(enum.Enum):
    BUSY = "busy"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Choice:
    tier: int
    link: str


class Router:
    def __init__(self, routes: Iterable[Route], links: Mapping[str, LinkView]) -> None:
        ordered = list(routes)
        # A default route matches everything, so it is tried after every specific one.
        self.routes = tuple([r for r in ordered if r.prefixes] + [r for r in ordered if not r.prefixes])
        self.links = links

    def route_for(self, recipient: str) -> Route | None:
        """First route whose prefixes match the E.164 recipient ('+' optional)."""
        digits = recipient.lstrip("+")
        for route in self.routes:
            if route.matches(digits):
                return route
        return None

    def choose(self, route: Route, tier_failures: int, parts: int) -> Choice | Wait:
        """A link for a message of `parts` parts that failed `tier_failures` times.

        The first tier is left after `fallback_after` failures there, or when
        none of its links is up; within a tier, the least-loaded up link with
        room for the whole message wins (an idle link takes any message).
        """
        first = min(tier_failures // route.fallback_after, len(route.tiers) - 1)
        for index in range(first, len(route.tiers)):
            best: LinkView | None = None
            any_up = False
            for name in route.tiers[index]:
                link = self.links[name]
                if link.state is not LinkState.UP:
                    continue
                any_up = True
                room = link.capacity()
                if (room >= parts or (room > 0 and link.in_flight == 0)) and (
                        best is None or link.in_flight < best.in_flight):
                    best = link
            if best is not None:
                return Choice(index, best.name)
            if any_up:
                return Wait.BUSY
        return Wait.DOWN
