"""The schema of the system of record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out — also on SQLite, which keeps no zone."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData()

actions = Table(
    "actions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("application", String(64), nullable=False),
    Column("services", JSON, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column(
        "strategy", JSON(none_as_null=True)
    ),  # model.strategy.Strategy; null: from before rollouts
    Column("rollout_state", String(16)),  # model.rollout.RolloutState
    Column("halt_reason", Text),
    Column("cancel", JSON(none_as_null=True)),  # {"abort_running": bool} once someone cancelled it
    Index("ix_actions_created_at", "created_at"),
)

action_hosts = Table(
    "action_hosts",
    metadata,
    Column("action_id", String(64), ForeignKey("actions.id"), primary_key=True),
    Column("host", String(64), primary_key=True),
    Column("outcome", String(32), nullable=False),
    Column("exit_code", Integer),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("duration_s", Float),
    Column("output", Text, nullable=False, default=""),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("batch", Integer, nullable=False, server_default="0"),
    Column("sent_at", UTCDateTime),  # released to the dispatcher; null: its batch is not due
    Column("deadline", UTCDateTime),  # of this host's request: not started after it
    Index("ix_action_hosts_outcome", "outcome"),
)

overrides = Table(
    "overrides",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("application", String(64), nullable=False),
    Column("service", String(64)),
    Column("host", String(64)),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime),
    Column("cleared_by", String(200)),
    Index("ix_overrides_expires_at", "expires_at"),
)

# Append-only: the code never updates or deletes a row (store/audit.py).
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("source", String(100), nullable=False),
    Column("correlation", String(64), nullable=False),
    Index("ix_audit_at", "at"),
    Index("ix_audit_subject", "subject"),
    Index("ix_audit_actor", "actor"),
)
