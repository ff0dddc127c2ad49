"""Mail out (aiosmtplib): failure notices, inbound SMS as e-mail, link alarms.

Everything goes through one `Mailer`: callers hand it a finished
`EmailMessage` with `send()`, which only queues (bounded, never blocks the
loop); one worker task delivers over one SMTP connection to the configured
relay, kept open while mail is waiting. A temporary failure (a 4xx reply,
RFC 5321 §4.2.1, or a lost or refused connection) is retried with
exponential backoff up to `max_attempts`; a permanent one (5xx) is logged
with the relay's reason. Retries live in memory: a restart loses the mails
not yet sent, never the SMS, which is in the store with its status.

Three uses:

- `on_status` (a `StatusListener`): a message that came in by mail and ends
  `failed`, `undelivered` or `expired` gets one notice to its sender
  (`MessageInfo.account`, the envelope sender) naming the number, the text
  and the reason.
- `inbound_as_email` / `Mailer.send_inbound`: an inbound SMS as a mail
  `From: <msisdn>@<sms domain>`, so that Reply in any mail client sends an
  SMS back through the SMTP ingress.
- `on_link_state`: link down/up alarms to `[mail].error_address`.

Every mail we make is marked `Auto-Submitted: auto-generated` (RFC 3834 §5),
so auto-responders stay quiet and our own ingress refuses to turn it into an
SMS (no loops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from omnigate.carriers.base import LinkState
from omnigate.config import MailConfig, split_hostport
from omnigate.model import Inbound, Origin, Status, StatusChange

log = logging.getLogger("omnigate.mail")

NOTICE_STATUSES = frozenset({Status.FAILED, Status.UNDELIVERED, Status.EXPIRED})
_NOTICED_KEPT = 100_000  # message ids remembered so each gets one notice (bounded)
_JITTER = 0.2  # +- this fraction of a retry delay, so retries of one outage spread out


# -- the mails -----------------------------------------------------------------


def _local_part(sender: str) -> str:
    """An inbound sender as an address local part: digits of a number, else a dot-atom."""
    digits = sender.lstrip("+")
    if digits.isdigit():
        return digits
    atom = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in sender)
    return atom.strip(".-") or "unknown"


def _shown(sender: str) -> str:
    """'+46701234567' for a number, the name itself for an alphanumeric sender."""
    digits = sender.lstrip("+")
    return f"+{digits}" if digits.isdigit() else sender


def inbound_as_email(inbound: Inbound, *, to: str, domain: str,
                     reference: str | None = None) -> EmailMessage:
    """An inbound SMS as a mail from `<msisdn>@<domain>` to `to` (RFC 5322).

    The body is UTF-8 in quoted-printable, 7-bit clean for any relay (RFC 2045
    §6.7); replying sends an SMS back to the number through the SMTP ingress.
    """
    msg = EmailMessage()
    msg["From"] = Address(display_name=_shown(inbound.sender),
                          addr_spec=f"{_local_part(inbound.sender)}@{domain}")
    msg["To"] = to
    msg["Subject"] = f"SMS from {_shown(inbound.sender)}" + (f" [{reference}]" if reference else "")
    received = inbound.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    msg["Date"] = format_datetime(received)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(inbound.text, charset="utf-8", cte="quoted-printable")
    return msg


def failure_notice(change: StatusChange, *, to: str, sender: str) -> EmailMessage:
    """The one mail a sender gets when an SMS it mailed will not arrive."""
    info = change.message
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"SMS to {info.recipient} {change.status.value}"
    msg["Date"] = format_datetime(datetime.fromtimestamp(change.at, UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: an answer to the sender's mail
    body = (f"Your SMS to {info.recipient} was not delivered.\n\n"
            f"Number:  {info.recipient}\n"
            f"Status:  {change.status.value}\n"
            f"Reason:  {change.reason or 'not given'}\n"
            f"Message: {info.id}\n\n"
            f"Text:\n{info.text}\n")
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg


def alarm(subject: str, text: str, *, to: str, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, charset="utf-8", cte="quoted-printable")
    return msg


# -- the mailer ----------------------------------------------------------------


class _Temporary(Exception):
    """Worth trying again later: 4xx, or the connection failed."""


@dataclass(slots=True)
class _Job:
    msg: EmailMessage
    attempt: int = 0
    outcome: asyncio.Future[str | None] | None = None  # None when sent, else why not


class Mailer:
    """Queues mails and delivers them to the relay from one worker task."""

    def __init__(self, config: MailConfig, *, sms_domain: str | None = None,
                 own_domains: frozenset[str] = frozenset(),
                 notice_addresses: dict[str, str] | None = None) -> None:
        self.config = config
        self.notice_addresses = notice_addresses or {}  # account -> where its notices go
        self.host, self.port = split_hostport(config.relay)
        self.sms_domain = config.domain or sms_domain
        # never mail a notice into our own SMS domains: it would come back as an SMS
        self._own = frozenset(d.lower() for d in own_domains)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.TimerHandle] = set()
        self._noticed: OrderedDict[int, None] = OrderedDict()
        self.sent = 0  # delivered to the relay
        self.failed = 0  # given up on (permanent, or attempts exhausted)
        self._unsettled = 0  # mails queued, being sent, or waiting for a retry
        self._settled = asyncio.Event()
        self._settled.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-out")

    async def stop(self, grace: float = 5.0) -> None:
        """Deliver what is queued within `grace`; mails waiting for a retry are logged as lost."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        # Cancel until it ends: on 3.11 a cancel that lands as an inner wait_for
        # completes (aiosmtplib uses them) can be swallowed, and the worker would
        # then wait on the queue for ever.
        while not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=0.1)
        if not self._task.cancelled() and self._task.exception() is not None:
            log.error("mail worker had failed: %r", self._task.exception())
        self._task = None
        for handle in self._retries:
            handle.cancel()
        lost = self._queue.qsize() + len(self._retries)
        self._retries.clear()
        self._unsettled = 0
        self._settled.set()
        if lost:
            log.warning("mail: %d mail(s) not sent at stop (the SMS are in the store)", lost)

    # -- what callers use ------------------------------------------------------

    def send(self, msg: EmailMessage) -> bool:
        """Queue a mail; False (and a log line) when the queue is full. Never blocks."""
        return self._enqueue(_Job(msg))

    async def deliver(self, msg: EmailMessage) -> str | None:
        """Queue a mail and wait until the relay took it (None) or it was given up (why).

        For mail whose sender keeps its own record until it knows (inbound SMS):
        a crash before the relay took it leaves that record to be tried again.
        """
        job = _Job(msg, outcome=asyncio.get_running_loop().create_future())
        if not self._enqueue(job):
            return "the mail queue is full"
        assert job.outcome is not None
        return await job.outcome

    def _enqueue(self, job: _Job) -> bool:
        msg = job.msg
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            log.error("mail queue full (%d); mail to %s dropped", self.config.queue_size,
                      msg["To"])
            return False
        self._unsettled += 1
        self._settled.clear()
        return True

    async def settled(self) -> None:
        """Wait until every mail handed in so far is sent or given up on."""
        await self._settled.wait()

    def _done(self) -> None:
        self._unsettled -= 1
        if not self._unsettled:
            self._settled.set()

    def on_status(self, change: StatusChange) -> None:
        """StatusListener: one failure notice per message that ends badly, to its mail
        sender or its account's notice address."""
        info = change.message
        if (not self.config.notices or change.status not in NOTICE_STATUSES
                or not info.account or info.id in self._noticed):
            return
        to = self.notice_addresses.get(info.account)
        if to is None and info.origin == Origin.SMTP.value and "@" in info.account:
            to = info.account
        if to is None or to.rpartition("@")[2].lower() in self._own:
            return
        self._noticed[info.id] = None
        if len(self._noticed) > _NOTICED_KEPT:
            self._noticed.popitem(last=False)
        self.send(failure_notice(change, to=to, sender=self.config.from_))

    async def send_inbound(self, inbound: Inbound, to: str,
                           reference: str | None = None) -> str | None:
        """Mail an inbound SMS to `to` and wait for the relay: None, or why it failed."""
        if not self.sms_domain:
            return "no SMS domain ([mail].domain or [smtp].domains) for inbound mail"
        return await self.deliver(inbound_as_email(inbound, to=to, domain=self.sms_domain,
                                                   reference=reference))

    def link_alarms(self) -> Callable[[str, LinkState], None]:
        """A link-state listener that mails a link going down after it was up, and its return.

        Connecting and reconnecting attempts are not alarms: only a change of service is.
        """
        alarmed: set[str] = set()
        was_up: set[str] = set()

        def on_state(link: str, state: LinkState) -> None:
            if state is LinkState.UP:
                was_up.add(link)
                if link in alarmed:
                    alarmed.discard(link)
                    self.on_link_state(link, "up")
            elif state is LinkState.DOWN and link in was_up and link not in alarmed:
                alarmed.add(link)
                self.on_link_state(link, "down")

        return on_state

    def on_link_state(self, link: str, state: str, reason: str | None = None) -> None:
        """Alarm hook: tell `[mail].error_address` that a link went down or came up."""
        if not self.config.error_address:
            return
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        text = f"Link {link} is {state} since {when}.\n" + (f"Reason: {reason}\n" if reason else "")
        self.send(alarm(f"omnigate: link {link} {state}", text, to=self.config.error_address,
                        sender=self.config.from_))

    # -- the worker ------------------------------------------------------------

    def _client(self) -> aiosmtplib.SMTP:
        cfg = self.config
        return aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=cfg.timeout,
                               use_tls=cfg.tls, start_tls=cfg.starttls,
                               username=cfg.username, password=cfg.password)

    async def _run(self) -> None:
        client: aiosmtplib.SMTP | None = None
        try:
            while True:
                if client is not None and self._queue.empty():
                    # Nothing waiting: say goodbye instead of holding the relay's connection.
                    await _quit(client)
                    client = None
                job = await self._queue.get()
                try:
                    if client is None or not client.is_connected:
                        client = self._client()
                        await client.connect()
                    await self._deliver(client, job)
                except _Temporary as exc:
                    await _rset(client)
                    self._retry(job, str(exc))
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    # refused, lost, timed out, or TLS/AUTH trouble: a new connection next time
                    if client is not None:
                        client.close()
                    client = None
                    self._retry(job, f"{type(exc).__name__}: {exc}")
                except Exception as exc:  # a mail we cannot even serialise: drop it, live on
                    log.exception("mail to %s: cannot send", job.msg["To"])
                    self._give_up(job, f"{type(exc).__name__}: {exc}")
                finally:
                    self._queue.task_done()
        finally:  # cancelled at stop: never leave the relay's connection open
            if client is not None:
                client.close()

    async def _deliver(self, client: aiosmtplib.SMTP, job: _Job) -> None:
        """One mail; raises _Temporary on 4xx, lets connection errors through."""
        msg = job.msg
        try:
            await client.send_message(msg, sender=self.config.from_)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            reason = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if any(400 <= r.code < 500 for r in exc.recipients):
                raise _Temporary(reason) from None
            await _rset(client)
            self._give_up(job, reason)
            return
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError):
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise _Temporary(f"{exc.code} {exc.message}") from None
            await _rset(client)
            self._give_up(job, f"{exc.code} {exc.message}")
            return
        self.sent += 1
        self._done()
        if job.outcome is not None and not job.outcome.done():
            job.outcome.set_result(None)

    def _retry(self, job: _Job, reason: str) -> None:
        job.attempt += 1
        cfg = self.config
        if job.attempt >= cfg.max_attempts:
            self._give_up(job, f"{reason} (gave up after {job.attempt} attempts)")
            return
        delay = min(cfg.retry_maximum, cfg.retry_initial * 2 ** (job.attempt - 1))
        delay *= 1 + random.uniform(-_JITTER, _JITTER)
        log.info("mail to %s: %s; retry in %.0fs", job.msg["To"], reason, delay)
        handle: asyncio.TimerHandle

        def requeue() -> None:
            self._retries.discard(handle)
            try:
                self._queue.put_nowait(job)
            except asyncio.QueueFull:
                self._give_up(job, "mail queue full at retry")

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retries.add(handle)

    def _give_up(self, job: _Job, reason: str) -> None:
        self.failed += 1
        self._done()
        log.error("mail to %s (%s) not delivered: %s", job.msg["To"], job.msg["Subject"], reason)
        if job.outcome is not None and not job.outcome.done():
            job.outcome.set_result(reason)

    @property
    def pending(self) -> int:
        """Mails queued or waiting for a retry (for tests and health)."""
        return self._queue.qsize() + len(self._retries)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


async def _rset(client: aiosmtplib.SMTP | None) -> None:
    """After a refused mail, reset the transaction so the connection serves the next;
    a connection that cannot even do that is closed (and reopened for the next mail)."""
    if client is None or not client.is_connected:
        return
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()
