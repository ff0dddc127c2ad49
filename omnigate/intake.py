"""Normalise and check a submission once, at the door: what every ingress shares.

`prepare` turns a `SubmitRequest` into ready-to-store messages or raises one
`SubmitError` naming the field; nothing is stored for a refused request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from omnigate.config import MessagesConfig, NumbersConfig
from omnigate.ids import IdGenerator
from omnigate.model import SubmitError, SubmitRequest
from omnigate.queue import Outbound
from omnigate.routing.outbound import Router
from omnigate.sms.numbers import NumberError, normalise_msisdn, parse_sender
from omnigate.sms.segment import TooLong, segment

PRIORITY_RANGE = range(0, 10)  # 0 normal .. 9 most urgent
@dataclass(slots=True)
class Prepared:
    messages: list[Outbound]
    rows: dict[str, list[dict[str, Any]]]


def client_keys(request: SubmitRequest, count: int) -> list[str]:
    """Idempotency keys: one per recipient of a request with a client_ref."""
    base = f"{request.account or ''}\x1f{request.client_ref}\x1f"
    return [f"{base}{i}" for i in range(count)]


def recipients(request: SubmitRequest, numbers: NumbersConfig) -> list[str]:
    if not request.to:
        raise SubmitError("to", "at least one recipient is needed")
    out: list[str] = []
    for raw in request.to:
        try:
            number = normalise_msisdn(raw, numbers.default_region, mobile_only=numbers.mobile_only)
        except NumberError as exc:
            raise SubmitError("to", exc.reason) from None
        if number not in out:
            out.append(number)
    return out


def prepare(request: SubmitRequest, *, numbers: NumbersConfig, messages: MessagesConfig,
            router: Router, ids: IdGenerator, node: str) -> Prepared:
    to = recipients(request, numbers)
    if not request.text:
        raise SubmitError("text", "the text is empty")
    try:
        seg = segment(request.text, max_parts=messages.max_parts,
                      transliterate=messages.transliterate, ucs2=request.ucs2)
    except TooLong as exc:
        raise SubmitError("text", str(exc)) from None
    sender = None
    if request.sender:
        try:
            sender = parse_sender(request.sender, numbers.default_region)
        except NumberError as exc:
            raise SubmitError("from", exc.reason) from None
    if request.dlr_url and not request.dlr_url.startswith(("http://", "https://")):
        raise SubmitError("dlr-url", "must be an http:// or https:// URL")
    if request.priority not in PRIORITY_RANGE:
        raise SubmitError("priority", f"must be {PRIORITY_RANGE.start}..{PRIORITY_RANGE.stop - 1}")
    validity = messages.validity if request.validity is None else request.validity
    if validity <= 0:
        raise SubmitError("validity", "must be a positive number of seconds")
    now = time.time()
    not_before = now
    if request.schedule_at is not None:
        if request.schedule_at.tzinfo is None:
            raise SubmitError("schedule_at", "needs a time zone (e.g. 2026-12-24T18:00:00+01:00)")
        not_before = max(now, request.schedule_at.timestamp())
    expires_at = not_before + validity

    keys = client_keys(request, len(to)) if request.client_ref else [None] * len(to)
    msgs: list[Outbound] = []
    message_rows: list[dict[str, Any]] = []
    origin = request.origin.value
    for number, key in zip(to, keys, strict=True):
        msg = Outbound(
            id=ids.next(), recipient=number, text=seg.text, sender=sender,
            sender_text=request.sender, flash=request.flash, report=request.report,
            priority=request.priority, not_before=not_before, expires_at=expires_at,
            parts=len(seg.parts), chars=seg.chars, account=request.account, origin=origin,
            committed_at=now, segmented=seg, ucs2=request.ucs2,
            dlr=(request.dlr_url, request.dlr_mask)
            if request.dlr_url or request.dlr_mask else None)
        msg.route = router.route_for(msg, now)
        if msg.route is None:
            raise SubmitError("to", f"no route for {number} (from {origin}"
                              f"{', account ' + request.account if request.account else ''})")
        msgs.append(msg)
        message_rows.append({
            "id": msg.id, "client_key": key, "origin": origin, "account": request.account,
            "sender": request.sender, "recipient": number, "text": seg.text,
            "coding": int(seg.coding), "parts": msg.parts, "chars": seg.chars,
            "flash": request.flash, "report": request.report, "priority": request.priority,
            "dlr_url": request.dlr_url, "dlr_mask": request.dlr_mask,
            "status": "queued", "attempts": 0, "link": None, "error": None, "node": node,
            "created_at": now, "updated_at": now, "not_before": not_before,
            "expires_at": expires_at})
    # The message row is its own first event (queued, created_at, node, origin): an
    # events row for it would double the rows written at the door.
    rows: dict[str, list[dict[str, Any]]] = {"messages": message_rows}
    if request.note:
        rows["events"] = [{"message_id": m.id, "at": now, "status": "queued", "node": node,
                           "link": None, "reason": request.note} for m in msgs]
    if request.reasons:  # who and why, for messages to an on-call schedule
        rows.setdefault("events", []).extend(
            {"message_id": m.id, "at": now, "status": "queued", "node": node, "link": None,
             "reason": request.reasons[m.recipient]}
            for m in msgs if m.recipient in request.reasons)
    return Prepared(msgs, rows)
