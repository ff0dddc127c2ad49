"""The store's reads for inbound (MO) messages, mixed into `Store`."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from omnigate.store import schema


class InboundReads:
    engine: AsyncEngine

    async def unassembled_parts(self) -> list[Any]:
        """Parts whose message was not complete at the last stop (to rebuild groups)."""
        p, m = schema.inbound.c, schema.inbound_messages.c
        async with self.engine.connect() as conn:
            return list((await conn.execute(
                select(schema.inbound)
                .where(p.message_id.is_not(None),
                       p.message_id.not_in(select(m.id).scalar_subquery()))
                .order_by(p.id))).all())

    async def undelivered_inbound(self) -> list[Any]:
        """Messages stored but not yet routed and delivered when we last stopped."""
        m = schema.inbound_messages.c
        async with self.engine.connect() as conn:
            return list((await conn.execute(
                select(schema.inbound_messages).where(m.status == "received")
                .order_by(m.id))).all())

    async def last_reference(self, prefix: str) -> str | None:
        m = schema.inbound_messages.c
        async with self.engine.connect() as conn:
            return (await conn.execute(
                select(m.reference).where(m.reference.like(f"{prefix}%"))
                .order_by(func.length(m.reference).desc(), m.reference.desc())
                .limit(1))).scalar()

    async def last_outbound(self, recipient: str, since: float,
                            sender: str | None = None) -> Any | None:
        """The newest message sent to this E.164 number since `since` (origin, account,
        id), only from `sender` when given (a dialog number)."""
        c = schema.messages.c
        query = (select(c.id, c.origin, c.account, c.created_at)
                 .where(c.recipient == recipient, c.created_at >= since)
                 .order_by(c.id.desc()).limit(1))
        if sender is not None:
            query = query.where(c.sender == sender)
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).first()

    async def list_inbound(self, *, limit: int = 100, sender: str | None = None,
                           status: str | None = None) -> list[dict[str, Any]]:
        m = schema.inbound_messages.c
        query = select(schema.inbound_messages).order_by(m.id.desc()).limit(limit)
        if sender:
            query = query.where(m.sender == sender.lstrip("+"))
        if status:
            query = query.where(m.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [inbound_dict(r) for r in rows]

    async def get_inbound(self, reference: str) -> dict[str, Any] | None:
        m = schema.inbound_messages.c
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                select(schema.inbound_messages).where(m.reference == reference))).first()
        return inbound_dict(row) if row else None


def inbound_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "reference": row.reference, "link": row.link, "from": row.sender,
            "to": row.recipient, "text": row.text, "parts": row.parts, "total": row.total,
            "complete": row.complete, "received_at": row.received_at, "status": row.status,
            "rule": row.rule, "targets": json.loads(row.targets) if row.targets else [],
            "detail": row.detail, "reply_to": row.reply_to}
