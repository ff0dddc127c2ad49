"""The outbound queue in memory: a bounded cache of the store's queued messages.

The store is the truth; this holds at most `memory_limit` messages that are
due or waiting for a retry time. When more are queued than fit (a long link
outage, a restart with a million queued), the rest stay only in the store as
a *backlog* and are paged in, in id order, as room frees up. So a restart is
ready to send after one page is read, not after the whole queue is, and memory
does not grow with the backlog.

Within memory, higher priority goes first, then older ids.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any

from omnigate.sms.numbers import Address
from omnigate.sms.segment import Segmented


class Outbound:
    """One queued MT message as the dispatcher handles it (a cache of its row)."""

    __slots__ = (
        "account", "attempts", "chars", "committed_at", "concat_ref", "dlr", "expires_at", "failure",
        "flash", "id", "link", "not_before", "origin", "parts", "pending", "priority",
        "recipient", "report", "reported", "route", "segmented", "sender", "sender_text", "sent",
        "text",
        "tier", "tier_failures", "ucs2",
    )

    def __init__(self, *, id: int, recipient: str, text: str, sender: Address | None,
                 sender_text: str | None, flash: bool, report: bool, priority: int,
                 not_before: float, expires_at: float, parts: int, chars: int,
                 account: str | None, origin: str, committed_at: float,
                 attempts: int = 0, segmented: Segmented | None = None,
                 sent: set[int] | None = None, ucs2: bool = False,
                 dlr: tuple[str | None, int | None] | None = None) -> None:
        self.id = id
        self.recipient = recipient
        self.text = text
        self.sender = sender
        self.sender_text = sender_text
        self.flash = flash
        self.report = report
        self.priority = priority
        self.not_before = not_before
        self.expires_at = expires_at
        self.parts = parts
        self.chars = chars
        self.account = account
        self.origin = origin
        self.committed_at = committed_at
        self.attempts = attempts
        self.segmented = segmented
        self.sent: set[int] = sent or set()
        self.reported = (0, 0)  # (reports already in the store, worst rank) after a restart
        self.ucs2 = ucs2
        self.dlr = dlr  # (dlr-url, dlr-mask) of a Kannel client; (None, mask): an SMPP client
        self.concat_ref = id & 0xFF
        self.tier_failures = 0
        self.route: Any = None
        self.link: str | None = None
        self.tier = 0
        self.pending = 0  # parts handed to the link, not yet answered
        self.failure: tuple[str, str] | None = None  # worst (kind, reason) of this attempt


class Queue:
    def __init__(self, memory_limit: int) -> None:
        self.memory_limit = memory_limit
        self._ready: dict[int, deque[Outbound]] = {}
        self._priorities: list[int] = []  # descending
        self._timers: list[tuple[float, int, Outbound]] = []
        self._ready_count = 0
        # Backlog bookkeeping: every queued message with id <= loaded_upto is
        # in memory (or being sent); ids above may exist only in the store.
        self.loaded_upto = 0
        self.backlog = True  # unknown until the first page is read
        self.skipped = 0  # new messages left to the store while backlog was set

    def __len__(self) -> int:
        return self._ready_count + len(self._timers)

    @property
    def ready(self) -> int:
        return self._ready_count

    def room(self) -> int:
        return self.memory_limit - len(self)

    def offer_new(self, msg: Outbound, now: float) -> bool:
        """A newly committed message; False if it stays in the store for now."""
        if self.backlog or len(self) >= self.memory_limit:
            self.backlog = True
            self.skipped += 1
            return False
        self.loaded_upto = max(self.loaded_upto, msg.id)
        self.push(msg, now)
        return True

    def loaded(self, msgs: list[Outbound], last_id: int, complete: bool, skipped_before: int,
               now: float) -> None:
        """A backlog page read from the store; `complete` if it was the last page."""
        for msg in msgs:
            self.push(msg, now)
        self.loaded_upto = max(self.loaded_upto, last_id)
        # New messages skipped while we read may be above the page: keep backlog then.
        self.backlog = not complete or self.skipped != skipped_before

    def push(self, msg: Outbound, now: float) -> None:
        if msg.not_before > now:
            heapq.heappush(self._timers, (msg.not_before, msg.id, msg))
            return
        self.push_ready(msg)

    def push_ready(self, msg: Outbound, front: bool = False) -> None:
        q = self._ready.get(msg.priority)
        if q is None:
            q = self._ready[msg.priority] = deque()
            self._priorities = sorted(self._ready, reverse=True)
        if front:
            q.appendleft(msg)
        else:
            q.append(msg)
        self._ready_count += 1

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def release_due(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            self.push_ready(heapq.heappop(self._timers)[2])

    def pop(self) -> Outbound | None:
        for p in self._priorities:
            q = self._ready[p]
            if q:
                self._ready_count -= 1
                return q.popleft()
        return None

    def take_expired(self, now: float) -> list[Outbound]:
        """Remove and return every message in memory whose validity has passed."""
        out: list[Outbound] = []
        for q in self._ready.values():
            if any(m.expires_at <= now for m in q):
                keep = [m for m in q if m.expires_at > now]
                out += [m for m in q if m.expires_at <= now]
                q.clear()
                q.extend(keep)
        self._ready_count -= len(out)
        if any(t[2].expires_at <= now for t in self._timers):
            expired = [t for t in self._timers if t[2].expires_at <= now]
            self._timers = [t for t in self._timers if t[2].expires_at > now]
            heapq.heapify(self._timers)
            out += [t[2] for t in expired]
        return out

    def __iter__(self) -> Iterator[Outbound]:
        for q in self._ready.values():
            yield from q
        for t in self._timers:
            yield t[2]
