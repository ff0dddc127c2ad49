"""What the TCP session reads and watches besides `submit`: statuses, links, queue counts.

WAIT and TRACE are event-driven: `StatusWatch` is one of the dispatcher's
status listeners (and link state listeners), so a waiting script wakes when
the status changes, not on a poll. The dispatcher tells listeners as it
queues a change for the store; the store is read only for what happened
before anyone waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import func, select

from omnigate.api.tcpproto import one_line
from omnigate.carriers.base import Link, LinkState
from omnigate.ids import id_floor
from omnigate.metrics import Metrics
from omnigate.model import Origin, Status, StatusChange, SubmitRequest
from omnigate.store import Store, schema
from omnigate.store.db import iso

TRACE_BUFFER = 1000  # lines held for a slow TRACE reader before newer ones are dropped
_FAILURE_KINDS = ("temporary", "throttled", "permanent")  # model.FailureKind values
FINAL = frozenset(s.value for s in Status if s.final)


class Trace:
    """One TRACE session's lines, bounded: a reader that falls behind loses lines, counted."""

    def __init__(self, limit: int = TRACE_BUFFER) -> None:
        self.limit = limit
        self._lines: deque[str] = deque()
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, line: str) -> None:
        if len(self._lines) >= self.limit:
            self.dropped += 1
        else:
            self._lines.append(line)
        self.ready.set()

    def take(self) -> list[str]:
        out = list(self._lines)
        if self.dropped:
            out.append(f"... {self.dropped} events dropped (reading too slowly)")
            self.dropped = 0
        self._lines.clear()
        self.ready.clear()
        return out


class StatusWatch:
    """Status changes to WAIT commands (by message id) and TRACE sessions; cheap when idle."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Future[StatusChange]]] = {}
        self._traces: set[Trace] = set()

    def on_status(self, change: StatusChange) -> None:
        if change.status.final:
            waiters = self._waiters.get(change.message.id)
            if waiters:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(change)
        if self._traces:
            m = change.message
            line = one_line(f"{iso(change.at)} message {m.id} {change.status.value} "
                            f"{m.recipient} link={change.link or '-'} {change.reason or ''}")
            for trace in self._traces:
                trace.put(line)

    def on_link_state(self, link: str, state: LinkState) -> None:
        if self._traces:
            line = f"{iso(time.time())} link {link} {state.value}"
            for trace in self._traces:
                trace.put(line)

    @contextlib.contextmanager
    def final_status(self, id: int) -> Iterator[asyncio.Future[StatusChange]]:
        """A future set by the message's next final status, while the block runs."""
        waiter: asyncio.Future[StatusChange] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiters[id]
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[id]

    @contextlib.contextmanager
    def trace(self) -> Iterator[Trace]:
        trace = Trace()
        self._traces.add(trace)
        try:
            yield trace
        finally:
            self._traces.discard(trace)


# -- operator views -----------------------------------------------------------


def link_lines(links: Mapping[str, Link], view: Callable[[], list[dict[str, Any]]],
               metrics: Metrics) -> list[str]:
    """One line per link: name, state, then hosts, window use, rate and counts as key=value."""
    registry = metrics.registry
    out = []
    for row in view():
        name = row["name"]
        link = links.get(name)
        sent = registry.get_sample_value("omnigate_parts_sent_total", {"link": name}) or 0
        failed = sum(registry.get_sample_value("omnigate_parts_failed_total",
                                               {"link": name, "kind": k}) or 0
                     for k in _FAILURE_KINDS)
        fields: dict[str, Any] = {"type": row.get("type")}
        if link is not None:
            fields["hosts"] = ",".join(link.config.hosts) or "-"
            fields["max_rate"] = f"{link.config.max_rate:g}"
        fields |= {"in_flight": row.get("in_flight"), "capacity": row.get("capacity"),
                   "sent": int(sent), "failed": int(failed)}
        fields |= {k: v for k, v in row.items() if k not in fields and k not in ("name", "state")}
        pairs = " ".join(f"{k}={_word(v)}" for k, v in fields.items())
        out.append(f"{name} {row.get('state')} {pairs}")
    return out


def _word(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "_".join(str(value).split()) or "-"


async def status_counts(store: Store, since: float) -> list[tuple[str, str, int]]:
    """(status, link, count): every queued message, and the others created since `since`.

    Two queries so each finds its index: the queue's partial index, and the
    primary key for a time range (ids grow with time).
    """
    c = schema.messages.c
    queued = c.status.in_(("queued", "sending"))
    columns = (c.status, c.link, func.count())
    async with store.engine.connect() as conn:
        rows = list((await conn.execute(
            select(*columns).where(queued).group_by(c.status, c.link))).all())
        rows += (await conn.execute(
            select(*columns).where(c.id >= id_floor(since), c.created_at >= since, ~queued)
            .group_by(c.status, c.link))).all()
    order = {s.value: i for i, s in enumerate(Status)}
    return sorted(((r[0], r[1] or "-", int(r[2])) for r in rows),
                  key=lambda r: (order.get(r[0], len(order)), r[1]))


RETRYABLE = frozenset({Status.FAILED.value, Status.UNDELIVERED.value, Status.EXPIRED.value})


def copy_request(msg: dict[str, Any], *, origin: Origin | None = None,
                 account: str | None = None, client: str | None = None) -> SubmitRequest:
    """A new submission of a stored message, as "send again" in an admin UI (TCP RETRY,
    the web Messages page): same number, text, sender, flash and priority.

    `client_ref` makes the copy idempotent: a message is copied once however
    often it is named (send the copy again to try again).
    """
    if origin is None:
        try:
            origin = Origin(msg["origin"])
        except ValueError:
            origin = Origin.TCP
    return SubmitRequest(to=[msg["to"]], text=msg["text"], origin=origin, sender=msg["from"],
                         account=msg["account"] or account, flash=msg["flash"],
                         priority=msg["priority"], client=client,
                         client_ref=f"retry:{msg['id']}")
