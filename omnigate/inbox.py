"""MO after the link: every part stored, long messages reassembled, routed, delivered.

Nothing received is lost on a crash: each part is written (through the group
committer) before anything else happens to it, naming the message it belongs
to; a whole message is written as `received` before it is routed, and its row
is updated with the routing result once its targets have it. At start the
inbox rebuilds unfinished long messages from their parts and delivers what
was `received` but not yet delivered.

Each message gets a tracking reference, `IN-<year>-<number>` (with the node id
when it is not 0, so nodes sharing a store never collide).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from omnigate.config import InboundConfig
from omnigate.delivery.inbound import MoMessage, TargetFailed, Targets
from omnigate.ids import IdGenerator
from omnigate.model import Inbound
from omnigate.routing.dialog import Dialogs
from omnigate.routing.inbound import InboundRouter
from omnigate.sms.coding import Coding
from omnigate.sms.reassembly import Assembled, Reassembler
from omnigate.store import Store

log = logging.getLogger("omnigate.inbound")


class Inbox:
    def __init__(self, config: InboundConfig, *, store: Store, ids: IdGenerator, node: str,
                 node_id: int, targets: Targets, dialogs: Dialogs) -> None:
        self.config = config
        self.store = store
        self.writer = store.writer
        self.node = node
        self.node_id = node_id
        self.targets = targets
        self.dialogs = dialogs
        self.router = InboundRouter(order=config.order, numbers=config.numbers,
                                    aliases=config.aliases, senders=config.senders,
                                    default=config.default)
        self.reassembler = Reassembler(config.wait, ids.next)
        self._queue: asyncio.Queue[MoMessage] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._year = 0
        self._counter = 0
        # Asked first, in order: one that consumed the message answers (rule, detail), e.g.
        # an on-call acknowledgement ("ack", ...); the routing rules never see it.
        self.claimers: list[Callable[[Inbound], Awaitable[tuple[str, str] | None]]] = []

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        await self.targets.start()
        await self._reference_counter(datetime.now(UTC).year)
        parts = await self.store.unassembled_parts()
        now = time.time()
        for row in parts:  # the wait counts from the restart: the sender may still resend
            _, done = self.reassembler.add(_part(row), now, id=row.message_id)
            if done:
                self._accept(done, now)
        for row in await self.store.undelivered_inbound():
            self._queue.put_nowait(_message(row))
        if parts or self._queue.qsize():
            log.info("inbound: %d parts of unfinished messages and %d undelivered messages "
                     "recovered", len(parts), self._queue.qsize())
        self._workers = [asyncio.create_task(self._work(), name=f"inbound-{i}")
                         for i in range(self.config.workers)]
        self._arm_sweep()

    async def stop(self, grace: float = 5.0) -> None:
        """Deliver what is queued within `grace`; the rest stays `received` for the next start."""
        if self._sweeper:
            self._sweeper.cancel()
        if self._workers:
            try:
                await asyncio.wait_for(self._queue.join(), grace)
            except TimeoutError:
                log.warning("inbound: %d messages left for the next start", self._queue.qsize())
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
        await self.targets.stop()

    async def idle(self) -> None:
        """Wait until every message handed in so far has been routed (for tests and stop)."""
        await self._queue.join()

    # -- parts in (called by the dispatcher, synchronously) --------------------

    def on_mo(self, part: Inbound) -> None:
        now = time.time()
        message_id, done = self.reassembler.add(part, now)
        ref, total, seq = part.concat or (None, None, None)
        self.writer.write("inbound", {
            "link": part.link, "sender": part.sender, "recipient": part.recipient,
            "text": part.text, "coding": int(part.coding), "concat_ref": ref,
            "concat_total": total, "concat_seq": seq,
            "received_at": part.received_at.timestamp(), "node": self.node,
            "message_id": message_id})
        if done:
            self._accept(done, now)
        else:
            self._arm_sweep()

    def _accept(self, done: Assembled, now: float) -> None:
        first = done.first
        msg = MoMessage(done.id, self._next_reference(now),
                        Inbound(first.link, first.sender, first.recipient, done.text,
                                first.received_at, first.coding),
                        done.parts, done.total, done.complete)
        self.writer.write("inbound_messages", {
            "id": msg.id, "reference": msg.reference, "link": first.link,
            "sender": first.sender, "recipient": first.recipient, "text": done.text,
            "parts": done.parts, "total": done.total, "complete": done.complete,
            "received_at": first.received_at.timestamp(), "node": self.node,
            "status": "received", "rule": None, "targets": None, "detail": None,
            "updated_at": now})
        if not done.complete:
            log.warning("inbound %s from %s: %d of %d parts arrived within %.0f s; "
                        "delivered incomplete", msg.reference, first.sender, done.parts,
                        done.total, self.config.wait)
        self._queue.put_nowait(msg)

    def _arm_sweep(self) -> None:
        deadline = self.reassembler.next_deadline()
        if deadline is None or (self._sweeper and self._sweeper.when() <= deadline):
            return
        if self._sweeper:
            self._sweeper.cancel()
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_at(loop.time() + max(0.0, deadline - time.time()), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.time()
        for done in self.reassembler.expired(now):
            self._accept(done, now)
        self._arm_sweep()

    # -- references ---------------------------------------------------------------

    def _prefix(self, year: int) -> str:
        return f"IN-{year}-" + (f"{self.node_id}-" if self.node_id else "")

    async def _reference_counter(self, year: int) -> None:
        last = await self.store.last_reference(self._prefix(year))
        self._year = year
        self._counter = int(last.rsplit("-", 1)[1]) if last else 0

    def _next_reference(self, now: float) -> str:
        year = datetime.fromtimestamp(now, UTC).year
        if year != self._year:  # a new year starts again at 1
            self._year, self._counter = year, 0
        self._counter += 1
        return f"{self._prefix(year)}{self._counter:06d}"

    # -- routing and delivery -------------------------------------------------------

    async def _work(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                await self._deliver(msg)
            except Exception:
                log.exception("inbound %s: delivery failed unexpectedly; it stays received",
                              msg.reference)
            finally:
                self._queue.task_done()

    async def _deliver(self, msg: MoMessage) -> None:
        inbound = msg.inbound
        for claimer in self.claimers:
            if (claim := await claimer(inbound)) is not None:
                self._record(msg, "delivered", claim[0], [], claim[1])
                log.info("inbound %s from %s: %s", msg.reference, inbound.sender, claim[1])
                return
        last: list[str] = []
        if self.router.wants_last_sender:
            last = await self._last_sender(inbound.sender)
        answered, dialog = None, []
        if inbound.recipient in self.dialogs:
            answered, dialog = await self._answered(inbound.sender, inbound.recipient)
        decision = self.router.route(inbound.sender, inbound.recipient, inbound.text, last,
                                     dialog)
        if decision is not None and decision.rule != "dialog":
            answered = None
        if decision is None:
            self._record(msg, "unrouted", None, [], "no rule matched and no default targets")
            log.warning("inbound %s from %s to %s: no rule matched and no [inbound].default",
                        msg.reference, inbound.sender, inbound.recipient)
            return
        results = await self._run(msg, decision.targets, decision.text)
        failed = [t for t, outcome in results if outcome != "ok"]
        detail = decision.detail
        if failed and decision.rule != "default" and self.config.default:
            detail += f"; {len(failed)} target(s) failed, sent to the default targets"
            results += await self._run(msg, tuple(self.config.default), inbound.text)
        delivered = [t for t, outcome in results if outcome == "ok"]
        status = ("delivered" if len(delivered) == len(results) else
                  "partly" if delivered else "failed")
        if answered is not None:
            detail += f" (answers message {answered})"
        self._record(msg, status, decision.rule, results, detail, answered)
        level = logging.INFO if status == "delivered" else logging.WARNING
        log.log(level, "inbound %s from %s to %s (%s): %s", msg.reference, inbound.sender,
                inbound.recipient, decision.detail,
                ", ".join(f"{t} {outcome}" for t, outcome in results))

    async def _run(self, msg: MoMessage, targets: tuple[str, ...],
                   text: str) -> list[tuple[str, str]]:
        async def one(target: str) -> tuple[str, str]:
            try:
                await self.targets.deliver(msg, target, text)
                return target, "ok"
            except TargetFailed as exc:
                return target, str(exc)

        return list(await asyncio.gather(*(one(t) for t in targets)))

    async def _last_sender(self, phone: str) -> list[str]:
        """Targets for whoever last wrote to this phone (an e-mail sender, or an account)."""
        digits = phone.lstrip("+")
        if not digits.isdigit():
            return []
        row = await self.store.last_outbound(f"+{digits}", time.time() - self.config.last_sender_age)
        return _sender_targets(row)

    async def _answered(self, phone: str, dialog_number: str) -> tuple[int | None, list[str]]:
        """The message a reply to a dialog number answers, and targets for its sender."""
        digits = phone.lstrip("+")
        if not digits.isdigit():
            return None, []
        row = await self.store.last_outbound(f"+{digits}", time.time() - self.config.last_sender_age,
                                             sender=dialog_number.lstrip("+"))
        return (row.id if row else None), _sender_targets(row)

    def _record(self, msg: MoMessage, status: str, rule: str | None,
                results: list[tuple[str, str]], detail: str, reply_to: int | None = None) -> None:
        self.writer.write("inbound_result", {
            "b_id": msg.id, "status": status, "rule": rule, "targets": json.dumps(results),
            "detail": detail, "reply_to": reply_to, "updated_at": time.time()})


def _sender_targets(row: Any) -> list[str]:
    """Where answers to a stored outbound message go: its mail sender, or its account."""
    if row is None or not row.account:
        return []
    if "@" in row.account:
        return [f"mailto:{row.account}"]
    return [f"account:{row.account}"]


def _part(row: Any) -> Inbound:
    """A row of the inbound (parts) table."""
    concat = (row.concat_ref, row.concat_total, row.concat_seq) if row.concat_total else None
    return Inbound(row.link, row.sender, row.recipient, row.text,
                   datetime.fromtimestamp(row.received_at, UTC), Coding(row.coding), concat)


def _message(row: Any) -> MoMessage:
    """A row of inbound_messages."""
    return MoMessage(row.id, row.reference,
                     Inbound(row.link, row.sender, row.recipient, row.text,
                             datetime.fromtimestamp(row.received_at, UTC)),
                     row.parts, row.total, row.complete)
