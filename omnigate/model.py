"""The words every part of omnigate shares: messages, parts, statuses, results.

Nothing here knows a carrier protocol or an ingress. A `Part` is what a link is
handed; a `SubmitRequest` is what every ingress hands `Gateway.submit`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from omnigate.sms.coding import Coding
from omnigate.sms.numbers import Address


class Status(enum.StrEnum):
    """Status words of DESIGN.md; the same strings in the store and the API."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED, Status.REJECTED}
)


class Origin(enum.StrEnum):
    """Which ingress a message came through (routing and reports use it)."""

    HTTP = "http"
    SMTP = "smtp"
    SPOOL = "spool"
    SQL = "sql"
    TCP = "tcp"
    WEB = "web"
    SMPP = "smpp"
    CLI = "cli"
    AUTO = "auto"  # written by omnigate itself: autoresponses, replies from HTTP targets


class FailureKind(enum.StrEnum):
    """How a link classifies a refused part; the dispatcher decides what follows.

    `throttled` means the carrier asked us to slow down (SMPP ESME_RTHROTTLED,
    ESME_RMSGQFUL): the part is retried without counting an attempt.
    """

    TEMPORARY = "temporary"
    THROTTLED = "throttled"
    PERMANENT = "permanent"


class SubmitError(Exception):
    """Bad input or refused by policy: nothing was stored.

    `field` names the offending input (``to``, ``text``, ``from`` ...) so every
    ingress can say it in its own language; `kind` picks the status family
    (``invalid`` -> 400, ``auth`` -> 401, ``payment`` -> 402, ``forbidden`` -> 403,
    ``too_large`` -> 413, ``quota`` -> 429).
    """

    def __init__(self, field: str, reason: str, kind: str = "invalid") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.kind = kind


@dataclass(slots=True)
class SubmitRequest:
    """One submission from an ingress: one text to one or more recipients."""

    to: list[str]
    text: str
    origin: Origin
    sender: str | None = None
    account: str | None = None
    flash: bool = False
    priority: int = 0
    validity: float | None = None  # seconds; None = config default
    schedule_at: datetime | None = None
    client_ref: str | None = None
    # The caller knows this client_ref was never submitted (a row just claimed): no lookup
    # before the commit; a duplicate would still be answered as stored (unique key).
    client_ref_new: bool = False
    report: bool = True  # ask the carrier for a delivery report
    ucs2: bool = False  # force UCS-2 even when the text fits GSM 03.38
    dlr_url: str | None = None  # Kannel-style status callback (see delivery/dlr_url.py)
    dlr_mask: int | None = None  # which events the callback wants (Kannel dlr-mask bits)
    client: str | None = None  # the caller's IP address, for per-account networks
    mail_from: str | None = None  # SMTP envelope sender, for per-account patterns
    # E.164 -> why the message goes there (on-call schedules): an event row per message,
    # written in the message's own commit
    reasons: dict[str, str] | None = None
    note: str | None = None  # recorded as an event on each message (attachments left out)


@dataclass(slots=True, frozen=True)
class Accepted:
    """What an ingress tells its caller for one recipient, after the commit."""

    id: int
    to: str
    status: Status
    parts: int


class Submit(Protocol):
    """The one function every ingress is given: returns only after commit."""

    async def __call__(self, request: SubmitRequest) -> list[Accepted]: ...


@dataclass(slots=True)
class Part:
    """One SMS segment as a link sends it; knows no PDU.

    `data` is the user data without UDH: unpacked GSM 03.38 septets (one per
    byte, escapes included) for `Coding.GSM7`, UTF-16BE for `Coding.UCS2`.
    `concat` is (reference, total, seq) for a part of a long message; each
    link carries it its own way (UDH, SAR TLVs, ...).
    """

    message_id: int
    seq: int
    total: int
    recipient: str  # E.164 without '+'
    sender: Address | None
    coding: Coding
    data: bytes
    concat: tuple[int, int, int] | None = None
    flash: bool = False
    report: bool = True
    validity_until: float | None = None  # epoch seconds
    attempt: int = 0
    link: str | None = field(default=None, compare=False)


@dataclass(slots=True, frozen=True)
class MessageInfo:
    """What listeners are told about the message whose status changed."""

    id: int
    recipient: str  # E.164 with '+'
    sender: str | None
    account: str | None
    origin: str
    text: str
    dlr_url: str | None = None
    dlr_mask: int | None = None


@dataclass(slots=True, frozen=True)
class StatusChange:
    """One status change of an MT message, after it is queued for the store."""

    message: MessageInfo
    status: Status
    link: str | None
    reason: str | None
    at: float


class StatusListener(Protocol):
    """Told of every status change after `queued` (dlr-url callbacks, notices, traces).

    Called on the loop, synchronously and cheaply: a listener queues its own work.
    """

    def on_status(self, change: StatusChange) -> None: ...


@dataclass(slots=True, frozen=True)
class Inbound:
    """A mobile-originated SMS (or one part of a long one) as a link received it."""

    link: str
    sender: str
    recipient: str
    text: str
    received_at: datetime
    coding: Coding = Coding.GSM7
    concat: tuple[int, int, int] | None = None


@dataclass(slots=True, frozen=True)
class DeliveryReport:
    """A carrier's statement about one part it took earlier, keyed by its reference."""

    link: str
    carrier_ref: str
    status: Status  # DELIVERED, UNDELIVERED, or EXPIRED
    error: str | None = None
    done_at: datetime | None = None
