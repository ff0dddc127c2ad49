"""Kannel-style `dlr-url` callbacks: a GET to the client's URL when a status it asked for happens.

A client of Kannel's sendsms passes `dlr-mask` (which events it wants) and
`dlr-url` (where to report them, with %-escapes Kannel defines). omnigate
reports the message's status changes the same way, so such a client switches
without change. One callback per message (not per part), when the message
reaches the status.

A URL without any escape (nothing to fill in, so a GET would say nothing) is
the JSON variant: it gets a POST with a JSON body instead,
`{"id", "to", "from", "account", "status", "event", "reason", "link", "at"}`.

Callbacks are retried a few times with a pause, in memory: a crash loses the
callbacks not yet made (the status itself is in the store and the API).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from omnigate.model import Status, StatusChange

log = logging.getLogger("omnigate.delivery.dlr_url")

_ATTEMPTS = 3
_PAUSE = 5.0  # seconds between attempts
_TIMEOUT = aiohttp.ClientTimeout(total=10)
_QUEUE_MAX = 100_000  # callbacks waiting; beyond this they are dropped with a log line


class DlrEvent(enum.IntFlag):
    """Kannel's dlr-mask bits (Kannel user guide, "Delivery reports")."""

    DELIVERED = 1  # delivered to the phone
    UNDELIVERED = 2  # not delivered to the phone
    BUFFERED = 4  # queued on the SMSC (omnigate never learns this)
    SMSC_ACK = 8  # the SMSC took the message
    SMSC_NACK = 16  # the SMSC refused the message


def expand(url: str, values: dict[str, str]) -> str:
    """Replace Kannel's escapes (%d, %A, %i, %I, %p, %P, %q, %T, %%) with URL-encoded values.

    An escape omnigate does not know is left as it is, so the client sees it.
    """
    out: list[str] = []
    i = 0
    while i < len(url):
        ch = url[i]
        if ch == "%" and i + 1 < len(url):
            key = url[i + 1]
            if key == "%":
                out.append("%")
                i += 2
                continue
            if key in values:
                out.append(quote(values[key], safe=""))
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


_EVENTS = {
    Status.SENT: DlrEvent.SMSC_ACK,
    Status.FAILED: DlrEvent.SMSC_NACK,
    Status.EXPIRED: DlrEvent.SMSC_NACK,
    Status.DELIVERED: DlrEvent.DELIVERED,
    Status.UNDELIVERED: DlrEvent.UNDELIVERED,
}


def _answer(change: StatusChange, event: DlrEvent) -> str:
    """%A: Kannel puts the SMSC's answer here; ours is the status and its reason."""
    if event is DlrEvent.SMSC_ACK:
        return "ACK/"
    if event is DlrEvent.SMSC_NACK:
        return f"NACK/{change.reason or change.status.value}"
    return change.reason or change.status.value


class DlrNotifier:
    """Makes the callbacks from one worker task, never from the caller's path."""

    def __init__(self) -> None:
        # (url, JSON body or None for a Kannel GET, attempt)
        self._queue: asyncio.Queue[tuple[str, dict[str, Any] | None, int]] = \
            asyncio.Queue(_QUEUE_MAX)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        self._task = asyncio.create_task(self._run(), name="dlr-url")

    def on_status(self, change: StatusChange) -> None:
        """Queue a callback if the message's client asked for this event (StatusListener)."""
        msg = change.message
        event = _EVENTS.get(change.status)
        if not msg.dlr_url or not msg.dlr_mask or event is None or not msg.dlr_mask & event:
            return
        answer = _answer(change, event)
        if "%" in msg.dlr_url:
            target, body = expand(msg.dlr_url, {
                "d": str(int(event)), "A": answer, "i": change.link or "", "I": str(msg.id),
                "p": msg.recipient, "q": msg.recipient.lstrip("+"), "P": msg.sender or "",
                "T": str(int(change.at))}), None
        else:
            target, body = msg.dlr_url, {
                "id": msg.id, "to": msg.recipient, "from": msg.sender,
                "account": msg.account, "status": change.status.value, "event": int(event),
                "reason": change.reason, "link": change.link, "at": change.at}
        try:
            self._queue.put_nowait((target, body, 0))
        except asyncio.QueueFull:
            log.error("dlr-url queue full; callback for message %d dropped", msg.id)

    async def _run(self) -> None:
        assert self._session is not None
        while True:
            target, body, attempt = await self._queue.get()
            try:
                async with self._session.request("GET" if body is None else "POST", target,
                                                 json=body) as resp:
                    await resp.read()
                    if resp.status < 500:
                        if resp.status >= 400:
                            log.warning("dlr-url %s answered %d", _safe(target), resp.status)
                        continue
                    reason = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < _ATTEMPTS:
                asyncio.get_running_loop().call_later(
                    _PAUSE, self._queue.put_nowait, (target, body, attempt + 1))
            else:
                log.warning("dlr-url %s failed %d times, last: %s", _safe(target), _ATTEMPTS,
                            reason)

    async def stop(self, grace: float = 2.0) -> None:
        """Make what is queued within `grace` seconds, then close."""
        if self._task:
            deadline = time.monotonic() + grace
            while not self._queue.empty() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self._task.cancel()
        if self._session:
            await self._session.close()


def _safe(url: str) -> str:
    """The URL without its query, which may carry the client's credentials."""
    return url.split("?", 1)[0]
