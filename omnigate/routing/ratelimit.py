"""Token bucket: `rate` per second with room for a short burst.

Used where running out is a reason to wait, never a failure: a link's
messages/s and an account's messages/s in the router, and a link's parts/s
inside the stream and HTTP links (with a 100 ms burst there: what a carrier's
per-second counter absorbs). The burst is a quarter second of
sends because the dispatcher looks at a waiting route again after 0.25 s:
a smaller bucket would cap the rate below what was configured.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 4)
        self.tokens = self.burst
        self.stamp = 0.0

    def _fill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def ready(self, now: float) -> bool:
        self._fill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._fill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait(self, now: float) -> float:
        """Seconds until the next token."""
        self._fill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def available(self, now: float) -> int:
        """Whole tokens there now (to `spend` several at once)."""
        self._fill(now)
        return int(self.tokens) if self.tokens >= 1.0 else 0

    def spend(self, n: int) -> None:
        """Use `n` tokens; a batch larger than what was there leaves a debt."""
        self.tokens -= n

    def reset(self, now: float) -> None:
        """A full bucket (a new connection starts without debt)."""
        self.tokens, self.stamp = self.burst, now
