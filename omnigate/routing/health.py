"""Per-link circuit breaker: stop feeding a link that keeps failing, probe it later.

CLOSED takes messages. After `threshold` consecutive temporary failures the
circuit OPENs: the router skips the link (so traffic falls back to other links
or tiers) for `cooldown` seconds. Then it is HALF_OPEN: exactly one probe
message goes through; success closes it, failure opens it for another
cool-down. Only failures while the link was up count (a dropped connection is
the link's own state, not a verdict on the carrier), and permanent failures
(a bad number) and throttling never count.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger("omnigate.routing")


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Circuit:
    __slots__ = ("cooldown", "failures", "link", "opened_at", "probing", "state", "threshold")

    def __init__(self, link: str, threshold: int, cooldown: float) -> None:
        self.link = link
        self.threshold = threshold
        self.cooldown = cooldown
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False  # the half-open probe is out

    def allows(self, now: float) -> bool:
        """May a message go to this link now? A half-open circuit lets one through."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.cooldown:
                return False
            self.state = CircuitState.HALF_OPEN
            log.info("link %s circuit half-open after %.0f s: sending one probe", self.link,
                     self.cooldown)
        return not self.probing

    def taken(self) -> None:
        """A message was handed to the link (marks the half-open probe as out)."""
        if self.state is CircuitState.HALF_OPEN:
            self.probing = True

    def succeeded(self) -> None:
        if self.state is not CircuitState.CLOSED:
            log.info("link %s circuit closed: the probe went through", self.link)
        self.state, self.failures, self.probing = CircuitState.CLOSED, 0, False

    def failed(self, now: float) -> None:
        self.failures += 1
        self.probing = False
        if self.state is CircuitState.HALF_OPEN or (
                self.state is CircuitState.CLOSED and self.failures >= self.threshold):
            self.state, self.opened_at = CircuitState.OPEN, now
            log.warning("link %s circuit open after %d consecutive failures: skipped for %.0f s",
                        self.link, self.failures, self.cooldown)

    def describe(self) -> dict[str, object]:
        return {"circuit": self.state.value, "consecutive_failures": self.failures}
