"""The window of one connection's outstanding requests, with their deadlines and keep-alive.

SMPP, CIMD2 and UCP/EMI sessions (STYLE §4) keep the same books: requests awaiting an
answer keyed by their number on the wire (SMPP sequence number, CIMD2 packet number,
UCP TRN), each with a response deadline and the owner's opaque token; how many of them
are submits (the window proper); whether a keep-alive probe (enquire_link, alive, OT 31
alert) is out; when the peer was last heard from. This class is those books and nothing
else: sans-I/O like the sessions that own it by composition, with `now` passed in, and
ignorant of bytes, numbering and states. What a number means, when a session may send,
and what an expiry means stay in each session.

One `response_timeout` for every request makes the order sent the order of deadlines,
so the first entry of `pending` is always the next to expire (aioquic keeps its loss
timers the same way); `renew` moves a request to the end to keep that true.

The hot path is a submit and its answer: `add_submit` makes one tuple per part (as the
sessions did before), `take_submit` makes nothing. `pending`, `submits` and `probing`
are plain attributes the sessions read for their own checks but change only through
these methods; `last` is the sessions' to set, as each counts different traffic.
"""

from __future__ import annotations

from typing import Any

# An outstanding request: (op, deadline, token, extra). A tuple, not a class: one is
# made per part sent, and a tuple costs a third of a slotted instance. `extra` is the
# session's (CIMD2 keeps the packet bytes for a resend there); None when unused.
Request = tuple[int, float, Any, Any]


class Window:
    """Outstanding requests by number, in deadline order; see the module docstring."""

    __slots__ = ("keepalive", "last", "pending", "probe_op", "probing", "response_timeout",
                 "submit_op", "submits")

    def __init__(self, *, response_timeout: float, keepalive: float, submit_op: int,
                 probe_op: int) -> None:
        self.response_timeout = response_timeout
        self.keepalive = keepalive  # idle seconds before a probe goes out
        self.submit_op = submit_op  # counted in `submits`
        self.probe_op = probe_op  # sets `probing` while it waits
        self.pending: dict[int, Request] = {}
        self.submits = 0
        self.probing = False
        self.last = 0.0  # last sign of life; the session decides which traffic counts

    def add(self, number: int, op: int, token: Any, now: float, extra: Any = None) -> None:
        """Await an answer to request `number`, due `response_timeout` from `now`."""
        self.pending[number] = (op, now + self.response_timeout, token, extra)
        if op == self.submit_op:
            self.submits += 1
        elif op == self.probe_op:
            self.probing = True

    def add_submit(self, number: int, token: Any, now: float, extra: Any = None) -> None:
        """`add` for a submit: the hot path, one part each, so without the tests."""
        self.pending[number] = (self.submit_op, now + self.response_timeout, token, extra)
        self.submits += 1

    def take_submit(self, number: int) -> Request | None:
        """`take` for the answer to a submit (the hot path)."""
        p = self.pending.get(number)
        if p is None or p[0] != self.submit_op:
            return None
        del self.pending[number]
        self.submits -= 1
        return p

    def take(self, number: int, op: int) -> Request | None:
        """The request `number` answers, removed, if it is one of `op`; otherwise None
        and a request of another operation under that number keeps waiting."""
        p = self.pending.get(number)
        if p is None or p[0] != op:
            return None
        del self.pending[number]
        if op == self.submit_op:
            self.submits -= 1
        elif op == self.probe_op:
            self.probing = False
        return p

    def pop(self, number: int) -> Request | None:
        """The request `number`, removed whatever its operation (a nack or error names
        only the number), or None."""
        p = self.pending.pop(number, None)
        if p is not None:
            self._settled(p[0])
        return p

    def renew(self, number: int, now: float, extra: Any = None) -> Request:
        """Request `number` sent again: a fresh deadline, moved to the end (KeyError if
        it is not waiting)."""
        op, _, token, _ = self.pending.pop(number)
        p = self.pending[number] = (op, now + self.response_timeout, token, extra)
        return p

    def oldest(self) -> int | None:
        """The number of the request waiting longest, or None."""
        return next(iter(self.pending), None)

    def next_deadline(self, keepalive: bool) -> float | None:
        """The first response deadline, or, if `keepalive` (the session is logged in)
        and no probe is out, the end of the idle time if that comes sooner."""
        deadline = None
        if self.pending:
            deadline = next(iter(self.pending.values()))[1]
        if keepalive and not self.probing:
            idle = self.last + self.keepalive
            if deadline is None or idle < deadline:
                deadline = idle
        return deadline

    def expire(self, now: float) -> list[tuple[int, Request]]:
        """Remove and return, oldest first, the requests whose deadline has come."""
        expired: list[tuple[int, Request]] = []
        pending = self.pending
        while pending:
            number, p = next(iter(pending.items()))
            if p[1] > now:
                break
            del pending[number]
            self._settled(p[0])
            expired.append((number, p))
        return expired

    def probe_due(self, now: float, keepalive: bool) -> bool:
        """Whether to send a keep-alive probe now: logged in, none out, idle long enough."""
        return keepalive and not self.probing and now >= self.last + self.keepalive

    def close(self) -> list[Any]:
        """Forget everything; the tokens still held, in the order sent (None skipped)."""
        tokens = [p[2] for p in self.pending.values() if p[2] is not None]
        self.pending.clear()
        self.submits = 0
        self.probing = False
        return tokens

    def _settled(self, op: int) -> None:
        if op == self.submit_op:
            self.submits -= 1
        elif op == self.probe_op:
            self.probing = False
