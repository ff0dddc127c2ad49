"""Inbound targets: hand one MO message to a mailbox, a web application, a file or a reply.

Each `deliver` either returns (the target has it) or raises `TargetFailed`
after its own retries; the inbox then falls back to the default targets, so
a message that a target keeps refusing still reaches somebody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import aiohttp

from omnigate.api.spool import Spool, write_inbound_file
from omnigate.api.sqltable import SqlSource
from omnigate.config import InboundConfig
from omnigate.delivery.email import Mailer
from omnigate.model import Inbound, Origin, Submit, SubmitError, SubmitRequest

log = logging.getLogger("omnigate.inbound")

# The SMPP server takes MO for an account it serves: (account, message) -> taken
AccountDelivery = Callable[[str, Inbound], Awaitable[bool]]


@dataclass(slots=True)
class MoMessage:
    """One whole MO message as targets see it."""

    id: int
    reference: str
    inbound: Inbound  # link, sender, recipient, coding, time of the first part; the whole text
    parts: int
    total: int
    complete: bool

    def with_text(self, text: str) -> Inbound:
        """The message as one Inbound with the text a target gets (an alias removed)."""
        i = self.inbound
        return Inbound(i.link, i.sender, i.recipient, text, i.received_at, i.coding)

    def as_json(self, text: str) -> dict[str, object]:
        received = self.inbound.received_at
        return {"reference": self.reference, "id": self.id, "from": self.inbound.sender,
                "to": self.inbound.recipient, "text": text, "link": self.inbound.link,
                "parts": self.parts, "total": self.total, "complete": self.complete,
                "received_at": (received if received.tzinfo else received.replace(tzinfo=UTC))
                .isoformat(timespec="milliseconds")}


class TargetFailed(Exception):
    """The target did not take the message (after its retries)."""


class Targets:
    def __init__(self, config: InboundConfig, *, submit: Submit, mailer: Mailer | None,
                 incoming: Path, spool: Spool | None = None,
                 tables: Mapping[str, SqlSource] | None = None,
                 account_delivery: AccountDelivery | None = None) -> None:
        self.config = config
        self.submit = submit
        self.mailer = mailer
        self.incoming = incoming
        self.spool = spool
        self.tables = tables or {}
        self.account_delivery = account_delivery
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.http_timeout),
            headers={"User-Agent": "omnigate"})

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
            self._session = None

    async def deliver(self, msg: MoMessage, target: str, text: str) -> None:
        if target.startswith("mailto:"):
            await self._mail(msg, target[7:], text)
        elif target.startswith(("http://", "https://")):
            await self._http(msg, target, text)
        elif target.startswith("file:"):
            await self._file(msg, target[5:], text)
        elif target.startswith("table:"):
            await self._table(msg, target[6:], text)
        elif target.startswith("reply:"):
            await self._reply(msg, target[6:])
        elif target.startswith("smpp:"):
            if not await self._smpp(msg, target[5:], text):
                raise TargetFailed(f"no [smpp_server] account {target[5:]!r}")
        elif target.startswith("account:"):
            await self._account(msg, target[8:], text)
        else:
            raise TargetFailed(f"unknown target {target!r}")

    async def _mail(self, msg: MoMessage, to: str, text: str) -> None:
        if self.mailer is None:
            raise TargetFailed("no [mail] relay configured")
        failed = await self.mailer.send_inbound(msg.with_text(text), to, reference=msg.reference)
        if failed is not None:
            raise TargetFailed(failed)

    async def _http(self, msg: MoMessage, url: str, text: str) -> None:
        assert self._session is not None
        delay = self.config.http_retry
        reason = "not tried"
        for attempt in range(1, self.config.http_attempts + 1):
            try:
                async with self._session.post(url, json=msg.as_json(text)) as resp:
                    body = await resp.text()
                    if resp.status < 300:
                        answer = body.strip()
                        if answer and resp.content_type == "text/plain":
                            await self._reply(msg, answer)
                        return
                    reason = f"HTTP {resp.status} {body.strip()[:200]}".strip()
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        raise TargetFailed(reason)  # the application refuses it: no retry
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if attempt < self.config.http_attempts:
                log.warning("inbound %s to %s: try %d failed (%s); again in %.1f s",
                            msg.reference, url, attempt, reason, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise TargetFailed(f"{reason} (after {self.config.http_attempts} tries)")

    async def _file(self, msg: MoMessage, directory: str, text: str) -> None:
        """`<reference>` in the spool's MO file format, written then renamed."""
        try:
            if not directory and self.spool is not None:
                await self.spool.deliver_inbound(msg.with_text(text), msg.reference)
                return
            path = Path(directory) if directory else self.incoming
            await asyncio.to_thread(write_inbound_file, path, msg.with_text(text),
                                    msg.reference)
        except OSError as exc:
            raise TargetFailed(f"{directory or self.incoming}: {exc.strerror}") from None

    async def _table(self, msg: MoMessage, name: str, text: str) -> None:
        source = self.tables.get(name)
        if source is None:
            raise TargetFailed(f"no [[sql]] source named {name!r}")
        try:
            await source.deliver_inbound(msg.with_text(text), msg.reference)
        except Exception as exc:  # the driver's own errors: the database did not take it
            raise TargetFailed(f"sql[{name}]: {exc}") from None

    async def _reply(self, msg: MoMessage, text: str) -> None:
        """An SMS back to the phone, from the number it wrote to when that is a number."""
        own = msg.inbound.recipient.lstrip("+")
        request = SubmitRequest(to=[msg.inbound.sender], text=text, origin=Origin.AUTO,
                                sender=own if own.isdigit() else None)
        try:
            [accepted] = await self.submit(request)
        except SubmitError as exc:
            raise TargetFailed(f"reply not accepted: {exc.field}: {exc.reason}") from None
        log.info("inbound %s answered with SMS %d", msg.reference, accepted.id)

    async def _smpp(self, msg: MoMessage, account: str, text: str) -> bool:
        """Queued durably for the account's SMPP binds; False when the server has no such account."""
        return self.account_delivery is not None and await self.account_delivery(
            account, msg.with_text(text))

    async def _account(self, msg: MoMessage, account: str, text: str) -> None:
        if await self._smpp(msg, account, text):
            return
        targets = self.config.accounts.get(account)
        if not targets:
            raise TargetFailed(f"account {account!r} has no inbound targets and no SMPP "
                               "receiver bound")
        for target in targets:
            if target.startswith("account:"):
                raise TargetFailed(f"[inbound.accounts] {account}: {target} names an account")
            await self.deliver(msg, target, text)
