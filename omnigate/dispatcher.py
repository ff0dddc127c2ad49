"""Due messages -> router -> link -> recorded result; the links' events come back here.

The dispatcher never polls the store on the hot path: a committed message is
handed over in memory (`Queue.offer_new`), and the pump runs when something
changes (a commit, a link answer, a link coming up, a retry falling due).
Results are written through the group committer without waiting, so a
status change costs a row in the next batch, not a round trip.

The store keeps a message `queued` until a carrier has taken all of it
(`sent`); `sending` is the in-memory state of a message in a link's window.
After a crash, every `queued` message is sent again except the parts a
carrier already took (their rows are in `parts`). The window of duplicates is
the parts in a link's window at the crash, plus those the carrier answered
while their `parts` row waited for the next group commit (milliseconds).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from omnigate.carriers.base import Link, LinkState
from omnigate.config import MessagesConfig, NumbersConfig, RetryConfig
from omnigate.metrics import Metrics
from omnigate.model import (
    DeliveryReport,
    FailureKind,
    Inbound,
    MessageInfo,
    Part,
    Status,
    StatusChange,
    StatusListener,
)
from omnigate.queue import Outbound, Queue
from omnigate.routing.outbound import Choice, Router, Wait
from omnigate.routing.ratelimit import TokenBucket
from omnigate.sms.coding import Coding
from omnigate.sms.numbers import NumberError, parse_sender
from omnigate.sms.segment import segment
from omnigate.store import Store
from omnigate.trafficlog import TrafficLog

log = logging.getLogger("omnigate.dispatcher")

_SWEEP_EVERY = 5.0  # seconds between expiry sweeps of the in-memory queue
_REFS_KEPT = 100_000  # carrier references remembered for DLR matching without a query
_PAGE = 5000  # messages read from the store per backlog page
_RECHECK = 0.25  # seconds before a blocked route is tried again without an event
_DEFER_MAX = 2000  # messages set aside in one pump pass (waiting routes, accounts over rate)
_REPORT_RANK = {Status.DELIVERED: 0, Status.EXPIRED: 1, Status.UNDELIVERED: 2}
_FAILURE_RANK = {FailureKind.THROTTLED: 0, FailureKind.TEMPORARY: 1, FailureKind.PERMANENT: 2}


def _info(msg: Outbound) -> MessageInfo:
    url, mask = msg.dlr or (None, None)
    return MessageInfo(msg.id, msg.recipient, msg.sender_text, msg.account, msg.origin,
                       msg.text, url, mask)


class Dispatcher:
    """Owns the in-memory queue and every MT status change after the commit."""

    def __init__(self, *, store: Store, router: Router, links: dict[str, Link], node: str,
                 messages: MessagesConfig, numbers: NumbersConfig, retry: RetryConfig,
                 metrics: Metrics, traffic: TrafficLog, memory_limit: int,
                 listeners: list[StatusListener] | None = None,
                 account_rates: dict[str, float] | None = None,
                 inbox: Callable[[Inbound], None],
                 state_listeners: list[Callable[[str, LinkState], None]] | None = None) -> None:
        self.store = store
        self.writer = store.writer
        self.router = router
        self.links = links
        self.node = node
        self.messages = messages
        self.region = numbers.default_region
        self.retry = retry
        self.metrics = metrics
        self.traffic = traffic
        self.listeners = listeners or []
        self.inbox = inbox  # stores, reassembles and routes MO (omnigate.inbox)
        self._account_rates = {name: TokenBucket(rate)
                               for name, rate in (account_rates or {}).items() if rate > 0}
        self.state_listeners = state_listeners or []
        self.queue = Queue(memory_limit)
        self.in_flight: dict[int, Outbound] = {}
        self.depth = 0  # queued in the store for this node, memory or not
        self._refs: OrderedDict[tuple[str, str], tuple[int, int, int]] = OrderedDict()
        # id -> [reports missing, worst rank]; bounded like _refs, the store answers the rest
        self._awaiting: OrderedDict[int, list[int]] = OrderedDict()
        # id -> the message as listeners see it, from `sent` until its report (bounded)
        self._sent_info: OrderedDict[int, MessageInfo] = OrderedDict()
        self._pump_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._refilling: asyncio.Task[None] | None = None
        self._refill_lock = asyncio.Lock()
        self._slow: asyncio.Queue[DeliveryReport] = asyncio.Queue()
        self._slow_worker: asyncio.Task[None] | None = None
        self._closing = False
        # Cluster hooks (see cluster.py): may this node send now (its lease holds), and
        # can another node send a message whose route has no usable link here.
        self.may_send: Callable[[], bool] = lambda: True
        self.hand_off: Callable[[Outbound], bool] = lambda msg: False
        self.idle = asyncio.Event()
        self.idle.set()

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Read the store's queue (crash recovery) and begin pumping."""
        self.depth = await self.store.count_queued(self.node)
        self.metrics.watch_queue(lambda: self.depth)
        if self.depth:
            log.info("recovering %d queued messages from the store", self.depth)
        await self._refill()
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_EVERY, self._sweep)
        self.schedule_pump()

    def close(self) -> None:
        """Stop handing out parts; results still arriving are recorded."""
        self._closing = True
        for handle in (self._pump_handle, self._timer, self._sweeper, self._recheck):
            if handle:
                handle.cancel()
        if self._refilling:
            self._refilling.cancel()

    async def drain_reports(self, stop: bool = False) -> None:
        """Wait until reports being matched through the store are done; `stop` ends the worker."""
        await self._slow.join()
        if stop and self._slow_worker:
            self._slow_worker.cancel()
            self._slow_worker = None

    # -- intake -------------------------------------------------------------

    def add(self, msgs: list[Outbound]) -> None:
        """Messages just committed by `Gateway.submit`."""
        now = time.time()
        self.depth += len(msgs)
        offer = self.queue.offer_new
        for msg in msgs:
            offer(msg, now)
        self.schedule_pump()

    # -- the pump -----------------------------------------------------------

    def schedule_pump(self) -> None:
        if self._pump_handle is None and not self._closing:
            self._pump_handle = asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_handle = None
        now = time.time()
        queue = self.queue
        queue.release_due(now)
        blocked: set[int] = set()
        deferred: list[Outbound] = []
        router = self.router
        routes = len(router.routes)
        accounts = self._account_rates
        if not self.may_send():
            routes = 0  # fenced: another node may own our queue until our lease is renewed
            blocked.add(0)
        while len(blocked) < routes and len(deferred) < _DEFER_MAX:
            msg = queue.pop()
            if msg is None:
                break
            if msg.expires_at <= now:
                self._expire(msg, now)
                continue
            if router.timed:
                self._reroute(msg, now)
            route = msg.route
            if id(route) in blocked:
                deferred.append(msg)
                continue
            bucket = accounts.get(msg.account) if accounts and msg.account else None
            if bucket is not None and not bucket.ready(now):
                deferred.append(msg)  # over the account's rate: waits, not a failure
                continue
            choice = router.choose(route, msg.tier_failures, msg.parts - len(msg.sent), now)
            if isinstance(choice, Wait):
                if choice is Wait.DOWN and self.hand_off(msg):
                    self.depth -= 1
                    continue
                blocked.add(id(route))
                deferred.append(msg)
                continue
            if bucket is not None:
                bucket.take(now)
            if choice.tier != msg.tier:
                self._fell_back(msg, choice, now)
            self._hand_over(msg, self.links[choice.link], now)
        for msg in reversed(deferred):
            queue.push_ready(msg, front=True)
        if (blocked or deferred) and self._recheck is None and not self._closing:
            # A link's room can return without an event (a throttle back-off ending).
            self._recheck = asyncio.get_running_loop().call_later(_RECHECK, self._on_recheck)
        self._arm_timer()
        if queue.backlog and len(queue) < queue.memory_limit // 2:
            self._start_refill()
        if not self.in_flight and not queue.ready:
            self.idle.set()

    def _reroute(self, msg: Outbound, now: float) -> None:
        """Time windows: the route is the one matching when the message is due."""
        route = self.router.route_for(msg, now)
        if route is not None and route is not msg.route:
            msg.route, msg.tier, msg.tier_failures = route, 0, 0

    def _fell_back(self, msg: Outbound, choice: Choice, now: float) -> None:
        """Record why a message leaves (or returns to) a tier: an event the API shows."""
        route = msg.route
        first = min(msg.tier_failures // route.fallback_after, len(route.tiers) - 1)
        if choice.tier < msg.tier:
            why = f"back to tier {choice.tier + 1}"
        elif choice.tier > first:
            why = f"no usable link in tier {first + 1} (down, suspended or circuit open)"
        else:
            why = f"{msg.tier_failures} failed attempts on tier {msg.tier + 1}"
        msg.tier = choice.tier
        reason = f"route {route.name}: tier {choice.tier + 1} via {choice.link}: {why}"
        self.writer.write("events", {"message_id": msg.id, "at": now, "status": "queued",
                                     "node": self.node, "link": choice.link, "reason": reason})
        log.info("message %d %s", msg.id, reason)

    def _hand_over(self, msg: Outbound, link: Link, now: float) -> None:
        seg = msg.segmented
        if seg is None:  # read back from the store: the stored coding decides
            seg = msg.segmented = segment(msg.text, max_parts=255, ucs2=msg.ucs2)
        total = len(seg.parts)
        msg.link = link.name
        msg.failure = None
        self.in_flight[msg.id] = msg
        self.idle.clear()
        recipient = msg.recipient[1:]
        for seq, data in enumerate(seg.parts, 1):
            if seq in msg.sent:
                continue
            msg.pending += 1
            link.submit(Part(
                message_id=msg.id, seq=seq, total=total, recipient=recipient,
                sender=msg.sender, coding=seg.coding, data=data,
                concat=(msg.concat_ref, total, seq) if total > 1 else None,
                flash=msg.flash, report=msg.report, validity_until=msg.expires_at,
                attempt=msg.attempts, link=link.name))

    def _arm_timer(self) -> None:
        when = self.queue.next_timer()
        if when is None or self._closing:
            return
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - time.time())
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_recheck(self) -> None:
        self._recheck = None
        self.schedule_pump()

    def _on_timer(self) -> None:
        self._timer = None
        self.schedule_pump()

    # -- backlog ------------------------------------------------------------

    def _start_refill(self) -> None:
        if self._refilling is None and not self._closing and not self._refill_lock.locked():
            self._refilling = asyncio.create_task(self._refill_then_pump())

    async def _refill_then_pump(self) -> None:
        try:
            await self._refill()
        except Exception:
            log.exception("reading queued messages from the store failed; retrying")
            await asyncio.sleep(1.0)
        finally:
            self._refilling = None
        self.schedule_pump()

    async def _refill(self) -> None:
        # One page at a time: a second reader would load the same rows again.
        async with self._refill_lock:
            queue = self.queue
            limit = min(_PAGE, max(queue.room(), 0))
            if limit == 0 or not queue.backlog:
                return
            skipped = queue.skipped
            rows = await self.store.load_queued(self.node, queue.loaded_upto, limit)
            sent = await self.store.sent_parts([r.id for r in rows]) if rows else {}
            self._load_page(rows, sent, limit, skipped)

    def _load_page(self, rows: list[Any], sent: dict[int, set[int]], limit: int,
                   skipped: int) -> None:
        queue = self.queue
        busy = self.in_flight  # after `reload`, rows of messages in a window are still queued
        msgs = [m for m in (self._from_row(r, sent.get(r.id)) for r in rows
                            if r.id not in busy) if m is not None]
        last = rows[-1].id if rows else queue.loaded_upto
        queue.loaded(msgs, last, len(rows) < limit, skipped, time.time())

    def _from_row(self, row: Any, sent: dict[int, str] | None) -> Outbound | None:
        sender = None
        if row.sender:
            try:
                sender = parse_sender(row.sender, self.region)
            except NumberError as exc:
                self._finish(row.id, Status.FAILED, None, f"sender: {exc.reason}")
                return None
        msg = Outbound(
            id=row.id, recipient=row.recipient, text=row.text, sender=sender,
            sender_text=row.sender, flash=row.flash, report=row.report, priority=row.priority,
            not_before=row.not_before, expires_at=row.expires_at, parts=row.parts,
            chars=row.chars, account=row.account, origin=row.origin,
            committed_at=row.created_at, attempts=row.attempts, sent=set(sent or ()),
            ucs2=row.coding == Coding.UCS2,
            dlr=(row.dlr_url, row.dlr_mask) if row.dlr_url or row.dlr_mask else None)
        ranks = [_REPORT_RANK[Status(s)] for s in (sent or {}).values()
                 if Status(s) in _REPORT_RANK]
        if ranks:  # reports that came before a restart still count
            msg.reported = (len(ranks), max(ranks))
        msg.route = self.router.route_for(msg, time.time())
        if msg.route is None:
            self._finish(row.id, Status.FAILED, None, f"no route for {row.recipient}")
            return None
        return msg

    # -- cluster --------------------------------------------------------------

    async def adopt(self, ids: list[int]) -> int:
        """Take over queued messages another node had (it died, or handed them to us)."""
        rows = [r for r in await self.store.load_messages(self.node, ids) if r.id not in self.in_flight]
        if not rows:
            return 0
        sent = await self.store.sent_parts([r.id for r in rows])
        self.depth += len(rows)  # before _from_row, which finishes unsendable ones
        now = time.time()
        queue = self.queue
        for msg in (self._from_row(r, sent.get(r.id)) for r in rows):
            if msg is not None:
                queue.push(msg, now)
        # Without a backlog all our queued messages are in memory, so the paging
        # mark may pass the adopted ids (a later page must not load them again).
        if not queue.backlog:
            queue.loaded_upto = max(queue.loaded_upto, rows[-1].id)
        self.schedule_pump()
        return len(rows)

    async def reload(self) -> None:
        """Forget the queue in memory and read ours from the store again.

        After this node's lease lapsed, other nodes may have taken over our
        messages; the store says which are still ours. Messages in a link's
        window stay there and their results are still recorded.
        """
        self.queue = Queue(self.queue.memory_limit)
        self.depth = await self.store.count_queued(self.node)
        await self._refill()
        self.schedule_pump()

    # -- results from links (LinkEvents) -----------------------------------

    def on_sent(self, part: Part, carrier_ref: str) -> None:
        msg = self.in_flight.get(part.message_id)
        now = time.time()
        link = part.link or ""
        self.writer.write("parts", {"message_id": part.message_id, "seq": part.seq, "link": link,
                                    "carrier_ref": carrier_ref, "status": "sent",
                                    "error": None, "updated_at": now})
        if part.report:
            refs = self._refs
            refs[(link, carrier_ref)] = (part.message_id, part.seq, part.total)
            if len(refs) > _REFS_KEPT:
                refs.popitem(last=False)
            # Counted from the first part taken: a report may overtake a later part.
            if part.message_id not in self._awaiting:
                done, worst = msg.reported if msg is not None else (0, 0)
                self._awaiting[part.message_id] = [part.total - done, worst]
                if len(self._awaiting) > _REFS_KEPT:
                    self._awaiting.popitem(last=False)
        self.metrics.child(self.metrics.sent, link).inc()
        if msg is None:
            return
        msg.sent.add(part.seq)
        msg.pending -= 1
        if msg.pending == 0:
            self._attempt_done(msg, now)

    def on_failed(self, part: Part, kind: FailureKind, reason: str) -> None:
        self.metrics.child(self.metrics.failed, part.link or "", kind.value).inc()
        msg = self.in_flight.get(part.message_id)
        if msg is None:
            return
        if msg.failure is None or _FAILURE_RANK[kind] > _FAILURE_RANK[FailureKind(msg.failure[0])]:
            msg.failure = (kind.value, reason)
        msg.pending -= 1
        if msg.pending == 0:
            self._attempt_done(msg, time.time())

    def _attempt_done(self, msg: Outbound, now: float) -> None:
        del self.in_flight[msg.id]
        if msg.failure is None:
            msg.attempts += 1
            self.router.succeeded(msg.link or "")
            self._record_sent(msg, now)
        else:
            kind, reason = FailureKind(msg.failure[0]), msg.failure[1]
            link = self.links.get(msg.link or "")
            if kind is FailureKind.TEMPORARY and link is not None and link.state is LinkState.UP:
                self.router.failed(link.name, now)
            if kind is FailureKind.THROTTLED:
                self.queue.push_ready(msg, front=True)
            elif kind is FailureKind.PERMANENT:
                msg.attempts += 1
                self._finish(msg.id, Status.FAILED, msg.link, reason, msg.attempts, msg)
            else:
                msg.attempts += 1
                self._retry_later(msg, reason, now)
        self.schedule_pump()

    def _record_sent(self, msg: Outbound, now: float) -> None:
        self.depth -= 1
        self.writer.write("message_state", {
            "b_id": msg.id, "status": "sent", "attempts": msg.attempts, "link": msg.link,
            "error": None, "not_before": msg.not_before, "updated_at": now})
        self.writer.write("events", {"message_id": msg.id, "at": now, "status": "sent",
                                     "node": self.node, "link": msg.link,
                                     "reason": f"route {msg.route.name}, tier {msg.tier + 1}"})
        self.metrics.latency.observe(now - msg.committed_at)
        self.traffic.write("OUT", msg.link or "", msg.account or msg.sender_text or msg.origin,
                           msg.recipient, msg.chars, msg.parts)
        if self.listeners:
            info = _info(msg)
            self._tell(info, Status.SENT, msg.link, None, now)
            if msg.report:
                self._sent_info[msg.id] = info
                if len(self._sent_info) > _REFS_KEPT:
                    self._sent_info.popitem(last=False)

    def _retry_later(self, msg: Outbound, reason: str, now: float) -> None:
        if self._closing:
            return  # still `queued` in the store; the next start sends it
        if msg.attempts >= self.retry.max_attempts:
            self._finish(msg.id, Status.FAILED, msg.link,
                         f"{reason} (gave up after {msg.attempts} attempts)", msg.attempts, msg)
            return
        link = self.links.get(msg.link or "")
        # A failure counts against the tier only while its link was up (STYLE §3):
        # a dropped connection says nothing about the next message.
        if link is not None and link.state is LinkState.UP:
            msg.tier_failures += 1
        r = self.retry
        delay = min(r.maximum, r.initial * r.factor ** (msg.attempts - 1))
        delay *= 1 + random.uniform(-r.jitter, r.jitter)
        msg.not_before = now + delay
        self.writer.write("message_state", {
            "b_id": msg.id, "status": "queued", "attempts": msg.attempts, "link": msg.link,
            "error": reason, "not_before": msg.not_before, "updated_at": now})
        self.writer.write("events", {"message_id": msg.id, "at": now, "status": "queued",
                                     "node": self.node, "link": msg.link,
                                     "reason": f"retry in {delay:.1f}s: {reason}"})
        self.queue.push(msg, now)
        self._arm_timer()
        if self.listeners:
            self._tell(_info(msg), Status.QUEUED, msg.link, f"retry in {delay:.1f}s: {reason}", now)

    def _finish(self, id: int, status: Status, link: str | None, reason: str,
                attempts: int | None = None, msg: Outbound | None = None) -> None:
        """A final status for a message that will not be sent (any more)."""
        now = time.time()
        self._awaiting.pop(id, None)
        info = self._sent_info.pop(id, None)
        if msg is not None and self.listeners:
            self._tell(info or _info(msg), status, link, reason, now)
        self.depth -= 1
        self.writer.write("message_status" if attempts is None else "message_state", {
            "b_id": id, "status": status.value, "error": reason, "updated_at": now,
            **({} if attempts is None else
               {"attempts": attempts, "link": link, "not_before": now})})
        self.writer.write("events", {"message_id": id, "at": now, "status": status.value,
                                     "node": self.node, "link": link, "reason": reason})
        log.warning("message %d %s: %s", id, status.value, reason)

    def _expire(self, msg: Outbound, now: float) -> None:
        self._finish(msg.id, Status.EXPIRED, None,
                     "validity passed before the message could be sent", msg=msg)

    def _sweep(self) -> None:
        now = time.time()
        for msg in self.queue.take_expired(now):
            self._expire(msg, now)
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_EVERY, self._sweep)

    # -- delivery reports ---------------------------------------------------

    def on_report(self, report: DeliveryReport) -> None:
        self.metrics.child(self.metrics.delivered, report.link, report.status.value).inc()
        found = self._refs.pop((report.link, report.carrier_ref), None)
        if found is None:
            self._slow.put_nowait(report)
            if self._slow_worker is None:
                self._slow_worker = asyncio.create_task(self._reports_from_store())
            return
        message_id, seq, _total = found
        self._apply_report(message_id, seq, report)

    def _apply_report(self, message_id: int, seq: int, report: DeliveryReport) -> None:
        now = time.time()
        self.writer.write("part_status", {"b_message_id": message_id, "b_seq": seq,
                                          "status": report.status.value,
                                          "error": report.error, "updated_at": now})
        waiting = self._awaiting.get(message_id)
        if waiting is None:
            return  # counted already, or the message failed meanwhile
        waiting[0] -= 1
        waiting[1] = max(waiting[1], _REPORT_RANK.get(report.status, 2))
        if waiting[0] > 0:
            return
        del self._awaiting[message_id]
        status = next(s for s, r in _REPORT_RANK.items() if r == waiting[1])
        self.writer.write("message_status", {"b_id": message_id, "status": status.value,
                                             "error": report.error, "updated_at": now})
        self.writer.write("events", {"message_id": message_id, "at": now,
                                     "status": status.value, "node": self.node,
                                     "link": report.link, "reason": report.error})
        info = self._sent_info.pop(message_id, None)
        if info is not None:
            self._tell(info, status, report.link, report.error, now)

    async def _reports_from_store(self) -> None:
        """Reports for parts sent before a restart or long ago, one at a time, in order.

        One at a time, because the first report of a message rebuilds its count of
        reports still missing from the store, and the next must find that count
        rather than read part statuses not yet committed.
        """
        while True:
            report = await self._slow.get()
            try:
                await self._report_from_store(report)
            except Exception:
                log.exception("report from %s for %s could not be matched", report.link,
                              report.carrier_ref)
            finally:
                self._slow.task_done()

    async def _report_from_store(self, report: DeliveryReport) -> None:
        found = await self.store.find_part(report.link, report.carrier_ref)
        if found is None:
            log.warning("report from %s for unknown carrier reference %s (%s)",
                        report.link, report.carrier_ref, report.status.value)
            return
        message_id = found.message_id
        if message_id not in self._awaiting and found.status == Status.SENT:
            statuses = await self.store.part_statuses(message_id)
            missing = found.parts - len(statuses) + statuses.count("sent")
            worst = max([_REPORT_RANK[Status(s)] for s in statuses if Status(s) in _REPORT_RANK],
                        default=0)
            self._awaiting[message_id] = [missing, worst]
            self._sent_info[message_id] = MessageInfo(
                message_id, found.recipient, found.sender, found.account, found.origin,
                found.text, found.dlr_url, found.dlr_mask)
        self._apply_report(message_id, found.seq, report)

    def _tell(self, info: MessageInfo, status: Status, link: str | None, reason: str | None,
              at: float) -> None:
        change = StatusChange(info, status, link, reason, at)
        for listener in self.listeners:
            try:
                listener.on_status(change)
            except Exception:
                log.exception("status listener %r failed", listener)

    # -- MO and link state --------------------------------------------------

    def on_mo(self, inbound: Inbound) -> None:
        self.metrics.child(self.metrics.inbound, inbound.link).inc()
        self.inbox(inbound)
        self.traffic.write("IN", inbound.link, inbound.sender, inbound.recipient,
                           len(inbound.text), 1)
        total, seq = (inbound.concat or (None, None, None))[1:]
        log.info("MO on %s from %s to %s stored (%d chars%s)", inbound.link, inbound.sender,
                 inbound.recipient, len(inbound.text),
                 f", part {seq}/{total}" if total else "")

    def on_state(self, link: Link, state: LinkState) -> None:
        self.metrics.link_up.labels(link.name).set(1 if state is LinkState.UP else 0)
        for listener in self.state_listeners:
            try:
                listener(link.name, state)
            except Exception:
                log.exception("link state listener %r failed", listener)
        self.schedule_pump()

    def status_overlay(self) -> Callable[[int], str | None]:
        """What the API shows for a message in a link's window: `sending`."""
        return lambda id: Status.SENDING.value if id in self.in_flight else None
