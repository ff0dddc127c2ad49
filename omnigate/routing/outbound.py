"""Outbound routing: an ordered table of routes, each an ordered list of tiers of links.

Pure decisions over what a link shows (state, capacity, load) and what the
router itself keeps per link (circuit, messages/s bucket, suspension): no I/O,
no timers. The dispatcher asks `route_for` when a message enters the queue
(and again when it is due if some route has a time window) and `choose` each
time the message is due; the answer is a link, or why there is none:

* `BUSY`  - the link whose turn it is is full, or the tier is out of rate
  tokens: wait (a full link is not a failure and never causes fallback, and
  its share is not given to the other links of the tier);
* `DOWN`  - no link of any remaining tier is usable: wait for one.

Within a tier, links share by weight (smooth weighted round robin); a tier is
left when none of its links is usable (down, suspended, circuit open) or after
`fallback_after` failed attempts of the message there.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from omnigate.carriers.base import LinkState
from omnigate.routing.balance import WeightedPicker
from omnigate.routing.health import Circuit
from omnigate.routing.match import Match, Routable
from omnigate.routing.ratelimit import TokenBucket

log = logging.getLogger("omnigate.routing")


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
    tiers: tuple[tuple[str, ...], ...]
    match: Match = field(default_factory=Match)
    fallback_after: int = 3
    weights: Mapping[str, int] = field(default_factory=dict)


class Wait(enum.Enum):
    BUSY = "busy"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Choice:
    tier: int
    link: str


class Router:
    def __init__(self, routes: Iterable[Route], links: Mapping[str, LinkView], *,
                 circuit_failures: int = 5, circuit_cooldown: float = 30.0,
                 link_rates: Mapping[str, float] | None = None) -> None:
        ordered = list(routes)
        # A default route matches everything, so it is tried after every specific one.
        self.routes = tuple([r for r in ordered if not r.match.is_default]
                            + [r for r in ordered if r.match.is_default])
        self.timed = any(r.match.window for r in self.routes)
        self.links = links
        self.suspended: set[str] = set()
        self._circuit_failures = circuit_failures
        self._circuit_cooldown = circuit_cooldown
        self.circuits: dict[str, Circuit] = {}
        self._buckets = {name: TokenBucket(rate) for name, rate in (link_rates or {}).items()
                         if rate > 0}
        self._pickers = {(route.name, i): WeightedPicker(route.weights)
                         for route in self.routes for i, tier in enumerate(route.tiers)
                         if len(tier) > 1}

    def route_for(self, msg: Routable, at: float) -> Route | None:
        """The first route matching the message at time `at`."""
        for route in self.routes:
            if route.match.matches(msg, at):
                return route
        return None

    def choose(self, route: Route, tier_failures: int, parts: int, now: float) -> Choice | Wait:
        """A link for a message of `parts` parts that failed `tier_failures` times."""
        first = min(tier_failures // route.fallback_after, len(route.tiers) - 1)
        for index in range(first, len(route.tiers)):
            candidates: list[str] = []
            usable = False
            for name in route.tiers[index]:
                if not self.usable(name, now):
                    continue
                usable = True
                bucket = self._buckets.get(name)
                if bucket is None or bucket.ready(now):
                    candidates.append(name)
            if not candidates:
                if usable:
                    return Wait.BUSY  # out of rate tokens: wait, do not fall back
                continue
            if len(candidates) == 1:
                name: str | None = candidates[0] if self._has_room(candidates[0], parts) else None
            else:
                load = {n: self.links[n].in_flight for n in candidates}
                name = self._pickers[(route.name, index)].pick(
                    candidates, load, lambda n: self._has_room(n, parts))
            if name is None:
                return Wait.BUSY  # the link whose turn it is is full: wait for it
            bucket = self._buckets.get(name)
            if bucket is not None:
                bucket.take(now)
            circuit = self.circuits.get(name)
            if circuit is not None:
                circuit.taken()
            return Choice(index, name)
        return Wait.DOWN

    def _has_room(self, name: str, parts: int) -> bool:
        """Room for the whole message (an idle link takes any message)."""
        link = self.links[name]
        room = link.capacity()
        return room >= parts or (room > 0 and link.in_flight == 0)

    def usable(self, name: str, now: float) -> bool:
        """Up, not suspended by an operator, and its circuit lets messages through."""
        if self.links[name].state is not LinkState.UP or name in self.suspended:
            return False
        circuit = self.circuits.get(name)
        return circuit is None or circuit.allows(now)

    # -- health -------------------------------------------------------------

    def succeeded(self, link: str) -> None:
        circuit = self.circuits.get(link)
        if circuit is not None and (circuit.failures or circuit.probing):
            circuit.succeeded()

    def failed(self, link: str, now: float) -> None:
        """A temporary failure while the link was up."""
        circuit = self.circuits.get(link)
        if circuit is None:
            circuit = self.circuits[link] = Circuit(link, self._circuit_failures,
                                                    self._circuit_cooldown)
        circuit.failed(now)

    def suspend(self, link: str, suspended: bool) -> None:
        """An operator takes a link out of (or back into) rotation; it stays connected."""
        if link not in self.links:
            raise KeyError(link)
        if suspended:
            self.suspended.add(link)
        else:
            self.suspended.discard(link)
        log.warning("link %s %s by operator", link, "suspended" if suspended else "resumed")

    def describe(self, link: str) -> dict[str, object]:
        """Routing's view of a link for `GET /api/v1/links`."""
        circuit = self.circuits.get(link)
        return {"suspended": link in self.suspended,
                **(circuit.describe() if circuit else {"circuit": "closed",
                                                       "consecutive_failures": 0})}
