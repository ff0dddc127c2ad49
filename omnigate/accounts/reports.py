"""Traffic and billing reports read back from the store, by UTC day, week or month.

The database groups by day (the same expressions as the `v_traffic_daily` and
`v_billing` views, so a report tool reading the views gets the same numbers);
weeks (ISO, '2026-W47') and months are rolled up here. Rows are plain dicts,
rendered as JSON or as CSV for an invoicing or internal-charging import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from omnigate.model import SubmitError
from omnigate.store import schema

PERIODS = ("day", "week", "month")
DIMENSIONS = ("company", "department", "cost_centre", "project")
TRAFFIC_GROUPS = ("account", "origin", "link", "status", *DIMENSIONS)
BILLING_GROUPS = ("account", *DIMENSIONS)


def _day_column(engine: AsyncEngine, table: str) -> Any:
    if engine.dialect.name == "sqlite":
        return literal_column(f"date({table}.created_at, 'unixepoch')")
    return literal_column(
        f"to_char(to_timestamp({table}.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")


def period_of(day: str, period: str) -> str:
    if period == "day":
        return day
    if period == "month":
        return day[:7]
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def parse_range(since: str | None, until: str | None) -> tuple[float, float]:
    """'YYYY-MM-DD' days, both included, UTC -> [start, end) epoch seconds; default: this month."""
    try:
        first = date.fromisoformat(since) if since else datetime.now(UTC).date().replace(day=1)
        last = date.fromisoformat(until) if until else datetime.now(UTC).date()
    except ValueError:
        raise SubmitError("from" if since else "to", "expected a day as YYYY-MM-DD") from None
    if last < first:
        raise SubmitError("to", "is before from")
    start = datetime.combine(first, datetime.min.time(), UTC).timestamp()
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC).timestamp()
    return start, end


def _groups(value: str | None, allowed: Sequence[str]) -> list[str]:
    groups = [g for g in (value or "account").split(",") if g]
    for g in groups:
        if g not in allowed:
            raise SubmitError("group", f"unknown grouping {g!r} (use {', '.join(allowed)})")
    return groups


def _period(value: str | None) -> str:
    period = value or "day"
    if period not in PERIODS:
        raise SubmitError("period", f"use one of {', '.join(PERIODS)}")
    return period


def _roll(rows: list[Any], groups: list[str], period: str, sums: Sequence[str]
          ) -> list[dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (period_of(row.day, period), *(getattr(row, g) for g in groups))
        entry = out.get(key)
        if entry is None:
            entry = out[key] = {"period": key[0], **dict(zip(groups, key[1:], strict=True)),
                                **dict.fromkeys(sums, 0)}
        for s in sums:
            entry[s] += getattr(row, s) or 0
    for entry in out.values():
        if "amount" in entry:
            entry["amount"] = round(entry["amount"], 6)
    return sorted(out.values(), key=lambda e: tuple("" if v is None else str(v)
                                                   for v in e.values()))


async def traffic(engine: AsyncEngine, *, since: str | None, until: str | None,
                  group: str | None, period: str | None, account: str | None = None
                  ) -> list[dict[str, Any]]:
    """Messages and parts per period and grouping, from the messages themselves."""
    groups, per = _groups(group, TRAFFIC_GROUPS), _period(period)
    start, end = parse_range(since, until)
    m, ch = schema.messages.c, schema.charges.c
    day = _day_column(engine, "messages").label("day")
    columns = {g: (ch[g] if g in DIMENSIONS else m[g]).label(g) for g in groups}
    q = (select(day, *columns.values(), func.count().label("messages"),
                func.sum(m.parts).label("parts"))
         .select_from(schema.messages.outerjoin(schema.charges, ch.message_id == m.id))
         .where(m.created_at >= start, m.created_at < end)
         .group_by(day, *columns.values()))
    if account:
        q = q.where(m.account == account)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return _roll(rows, groups, per, ("messages", "parts"))


async def billing(engine: AsyncEngine, *, since: str | None, until: str | None,
                  group: str | None, period: str | None, account: str | None = None
                  ) -> list[dict[str, Any]]:
    """Parts and amount charged per period and grouping; refunded amounts left out."""
    groups, per = _groups(group, BILLING_GROUPS), _period(period)
    start, end = parse_range(since, until)
    ch = schema.charges.c
    day = _day_column(engine, "charges").label("day")
    columns = [ch[g].label(g) for g in groups]
    charged = func.sum(func.coalesce(ch.amount, 0)).filter(ch.refunded_at.is_(None))
    q = (select(day, *columns, func.count().label("messages"), func.sum(ch.parts).label("parts"),
                charged.label("amount"))
         .where(ch.created_at >= start, ch.created_at < end)
         .group_by(day, *columns))
    if account:
        q = q.where(ch.account == account)
    async with engine.connect() as conn:
        rows = (await conn.execute(q)).all()
    return _roll(rows, groups, per, ("messages", "parts", "amount"))


async def movements(engine: AsyncEngine, *, since: str | None, until: str | None,
                    account: str | None = None) -> list[dict[str, Any]]:
    """Prepaid balance movements: top-ups and sets, and refunds of charges."""
    start, end = parse_range(since, until)
    mv, ch = schema.movements.c, schema.charges.c
    q = select(mv.account, mv.at, mv.kind, mv.amount, mv.note) \
        .where(mv.at >= start, mv.at < end)
    r = select(ch.account, ch.refunded_at.label("at"), ch.amount, ch.message_id) \
        .where(ch.refunded_at >= start, ch.refunded_at < end)
    if account:
        q, r = q.where(mv.account == account), r.where(ch.account == account)
    async with engine.connect() as conn:
        rows = [{"account": x.account, "at": _iso(x.at), "kind": x.kind, "amount": x.amount,
                 "note": x.note} for x in (await conn.execute(q)).all()]
        rows += [{"account": x.account, "at": _iso(x.at), "kind": "refund", "amount": x.amount,
                  "note": f"message {x.message_id}"} for x in (await conn.execute(r)).all()]
    return sorted(rows, key=lambda x: (x["at"], x["account"]))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Comma-separated with a header line; empty cells for missing values."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
