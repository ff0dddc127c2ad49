"""Tables of the store. Times are epoch seconds (float) so SQLite and PostgreSQL agree.

Bump SCHEMA_VERSION with every change and teach `Store.open` the step.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
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
    event,
)

# 2: omnigate_nodes, omnigate_handoffs (cluster)
# 3: inbound.message_id, inbound_messages (reassembled and routed MO)
# 4: accounts, account_keys, charges, movements, views v_traffic_daily and v_billing
# 5: alarms, alarm_events (on-call group alarms, omnigate/oncall/)
# 6: inbound_messages.reply_to (two-way dialog)
SCHEMA_VERSION = 6

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

# One row per MO part as a link received it; `message_id` names the message it
# belongs to from the first part on, so a restart can rebuild unfinished ones.
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
    Column("message_id", BigInteger),  # inbound_messages.id (NULL in rows from schema 1-2)
    Index("ix_inbound_received", "received_at"),
    Index("ix_inbound_message", "message_id"),
)

# One row per MO message (parts joined), with its tracking reference and where
# the inbound routing sent it.
inbound_messages = Table(
    "inbound_messages", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("reference", String(32), nullable=False, unique=True),  # IN-2026-000123
    Column("link", String(64), nullable=False),
    Column("sender", String(32), nullable=False),
    Column("recipient", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("parts", Integer, nullable=False),  # received
    Column("total", Integer, nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("node", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # received | delivered | partly | failed | unrouted
    Column("rule", String(16)),
    Column("targets", Text),  # JSON: [[target, "ok" | reason], ...]
    Column("detail", Text),
    Column("reply_to", BigInteger),  # the message it answers (a dialog reply)
    Column("updated_at", Float, nullable=False),
    Index("ix_inbound_messages_received", "received_at"),
    Index("ix_inbound_messages_status", "status"),
)

# -- cluster (several nodes on one PostgreSQL store) -----------------------------

nodes = Table(
    "omnigate_nodes", metadata,
    Column("name", String(64), primary_key=True),
    Column("heartbeat_at", Float, nullable=False),  # the database's clock, epoch seconds
    Column("started_at", Float, nullable=False),
    Column("info", Text, nullable=False),  # JSON: version, links and their states, owned links
)

handoffs = Table(
    "omnigate_handoffs", metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("node", String(64), nullable=False),  # the node asked to send it
    Index("ix_handoffs_node", "node"),
)

# -- accounts and billing (omnigate/accounts/) -----------------------------------

accounts = Table(
    "accounts", metadata,
    Column("name", String(128), primary_key=True),
    Column("settings", Text, nullable=False),  # JSON of config.AccountConfig without the name
    Column("from_config", Boolean, nullable=False, default=False),  # config rewrites it at start
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

account_keys = Table(
    "account_keys", metadata,
    Column("id", String(32), primary_key=True),  # the key's public prefix, shown in lists
    Column("account", String(128), nullable=False),
    Column("hash", Text, nullable=False),
    Column("label", String(128)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Index("ix_account_keys_account", "account"),
)

# One row per message of a known account, written in the message's own commit:
# what it cost and whom it is charged to, as it was at the door.
charges = Table(
    "charges", metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("amount", Float, nullable=False),  # parts x price of the destination prefix
    Column("prepaid", Boolean, nullable=False),
    Column("company", String(128)),
    Column("department", String(128)),
    Column("cost_centre", String(128)),
    Column("project", String(128)),
    Column("refunded_at", Float),  # prepaid amount given back (final status in [billing].refund)
    Index("ix_charges_account", "account", "created_at"),
)

# Prepaid balance changes other than charges: top-ups and administrative sets.
movements = Table(
    "movements", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("account", String(128), nullable=False),
    Column("at", Float, nullable=False),
    Column("amount", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # topup | set
    Column("note", Text),
    Index("ix_movements_account", "account", "at"),
)

# -- on-call alarms (omnigate/oncall/) --------------------------------------------

# One row per alarm: a message to a schedule with `ack = true`, its level and state.
alarms = Table(
    "alarms", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("ref", String(8), nullable=False),  # what recipients answer: OK <ref>
    Column("first_schedule", String(64), nullable=False),  # the schedule alarmed first
    Column("schedule", String(64), nullable=False),  # the schedule of the current level
    Column("level", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("test", Boolean, nullable=False),  # a drill (TEST: prefix)
    Column("status", String(16), nullable=False),  # open | acknowledged
    Column("recipients", Text, nullable=False),  # JSON: E.164 numbers alarmed so far
    Column("escalate_at", Float),  # the next level is due (None: no further level)
    Column("acked_by", String(20)),
    Column("acked_at", Float),
    Column("node", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_alarms_status", "status"),
)

# The timeline of an alarm: sent, escalated, acknowledged, announced.
alarm_events = Table(
    "alarm_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("alarm_id", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
    Column("level", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_alarm_events_alarm", "alarm_id"),
)

# Views for report tools (Excel, Metabase), by UTC day. Dropped before the tables
# so drop_all (tests, resets) still works on PostgreSQL.
_DAY = {"sqlite": "date({0}, 'unixepoch')",
        "postgresql": "to_char(to_timestamp({0}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"}
_VIEWS = {
    "v_traffic_daily": "SELECT {day} AS day, account, origin, link, status, "
                       "COUNT(*) AS messages, SUM(parts) AS parts FROM messages "
                       "GROUP BY 1, account, origin, link, status",
    "v_billing": "SELECT {day} AS day, account, company, department, cost_centre, project, "
                 "COUNT(*) AS messages, SUM(parts) AS parts, "
                 "SUM(CASE WHEN refunded_at IS NULL THEN amount ELSE 0 END) AS amount "
                 "FROM charges GROUP BY 1, account, company, department, cost_centre, project",
}
_CREATE = {"sqlite": "CREATE VIEW IF NOT EXISTS", "postgresql": "CREATE OR REPLACE VIEW"}
for _name, _select in _VIEWS.items():
    _table = "messages" if "FROM messages" in _select else "charges"
    for _dialect, _day in _DAY.items():
        event.listen(metadata, "after_create", DDL(
            f"{_CREATE[_dialect]} {_name} AS "
            + _select.format(day=_day.format(f"{_table}.created_at"))).execute_if(dialect=_dialect))
    event.listen(metadata, "before_drop", DDL(f"DROP VIEW IF EXISTS {_name}"))
