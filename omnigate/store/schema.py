"""Tables of the store. Times are epoch seconds (float) so SQLite and PostgreSQL agree.

Bump SCHEMA_VERSION with every change and teach `Store.open` the step.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "omnigate_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

messages = Table(
    "messages", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("client_key", String(300), unique=True),  # account + client_ref, for idempotency
    Column("origin", String(16), nullable=False),
    Column("account", String(128)),
    Column("sender", String(32)),
    Column("recipient", String(20), nullable=False),  # E.164 with '+'
    Column("text", Text, nullable=False),
    Column("coding", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("chars", Integer, nullable=False),
    Column("flash", Boolean, nullable=False, default=False),
    Column("report", Boolean, nullable=False, default=True),
    Column("dlr_url", Text),  # Kannel-style callback, with its dlr-mask
    Column("dlr_mask", Integer),
    Column("priority", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("link", String(64)),
    Column("error", Text),
    Column("node", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),  # schedule_at, or the next retry
    Column("expires_at", Float, nullable=False),
)
# Only queued messages are in the queue index, so a message leaves it once
# when it is sent instead of moving inside it on every status change.
_QUEUED = messages.c.status.in_(("queued", "sending"))
Index("ix_messages_queue", messages.c.node, messages.c.id,
      sqlite_where=_QUEUED, postgresql_where=_QUEUED)
Index("ix_messages_recipient", messages.c.recipient, messages.c.id)

parts = Table(
    "parts", metadata,
    Column("message_id", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("link", String(64), nullable=False),
    Column("carrier_ref", String(80), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("message_id", "seq"),
    Index("ix_parts_carrier_ref", "link", "carrier_ref"),
)

events = Table(
    "events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("node", String(64), nullable=False),
    Column("link", String(64)),
    Column("reason", Text),
    Index("ix_events_message", "message_id"),
)

inbound = Table(
    "inbound", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("link", String(64), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("coding", Integer, nullable=False),
    Column("concat_ref", Integer),
    Column("concat_total", Integer),
    Column("concat_seq", Integer),
    Column("received_at", Float, nullable=False),
    Column("node", String(64), nullable=False),
    Index("ix_inbound_received", "received_at"),
)
