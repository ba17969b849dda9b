"""The schema of the system of record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
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
    # When its rollout began: null for one released when it was requested; set by an approval.
    Column("released_at", UTCDateTime),
    # kind `command`: model.command.CommandInvocation (name, params, rendered argv, ...)
    Column("command", JSON(none_as_null=True)),
    # The application's environment when it was requested: what access to the action is
    # checked on (the config may move the application later). Null: from before 0009.
    Column("environment", String(64)),
    # The X-Request-Id of the request that made it: on the log lines of its whole path (0011).
    Column("correlation", String(64), nullable=False, server_default=""),
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
    Column("output_chunks", Integer),  # a command's: how many chunks its result says it sent
    # A command's output here may still grow: true until the end of its stream is written
    # (store/output.py), so that only these rows are looked at, however long the history.
    Column("output_open", Boolean, nullable=False, server_default=false()),
    # A cancel with abort_running: when the server decided to abort this host (and marked it
    # `cancelled`), and when the bus stored the abort for it. Asked but not sent: the
    # dispatcher sends it (again), so an abort is never lost to a bus that was down.
    Column("abort_requested_at", UTCDateTime),
    Column("abort_sent_at", UTCDateTime),
    # When the host's own result was recorded; null: none yet, so a final outcome is the
    # server's decision (which the host's answer may still replace: store/actions.py).
    Column("answered_at", UTCDateTime),
    Index("ix_action_hosts_outcome", "outcome"),
    Index("ix_action_hosts_output_open", "output_open"),
)

# A command's output, stored whole (store/output.py): seq 1..n per host as the agent sent it,
# and seq 0 for the end of the host's stream. `position` orders every row of an action in the
# order they were stored, without gaps: what the live output follows and resumes from.
action_output = Table(
    "action_output",
    metadata,
    Column("action_id", String(64), ForeignKey("actions.id"), primary_key=True),
    Column("host", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    UniqueConstraint("action_id", "position", name="uq_action_output_position"),
)

# Four-eyes approvals (store/approvals.py): one request per action that needs it, and its votes.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("action_id", String(64), ForeignKey("actions.id"), primary_key=True),
    Column("state", String(16), nullable=False),  # model.approval.ApprovalState
    Column("application", String(64), nullable=False),
    Column("environment", String(64), nullable=False),  # the application's, when requested
    Column("kind", String(200), nullable=False),  # restart, command:<name>, ...
    Column("policies", JSON, nullable=False),  # [model.approval.ApprovalPolicy], as requested
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("open_until", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", String(200)),
    Column("reason", Text),  # why it was rejected, expired or cancelled
    Column("updated_at", UTCDateTime, nullable=False),  # also: touched to lock it for a vote
    Index("ix_approval_requests_state_open_until", "state", "open_until"),
)

# One vote per person and request: the primary key says so, whatever races.
approval_votes = Table(
    "approval_votes",
    metadata,
    Column("action_id", String(64), ForeignKey("approval_requests.action_id"), primary_key=True),
    Column("approver", String(200), primary_key=True),
    Column("decision", String(16), nullable=False),  # model.approval.Decision
    Column("comment", Text, nullable=False),  # a rejection's reason
    Column("at", UTCDateTime, nullable=False),
    Column("via", String(64), nullable=False),
    Column("groups", JSON, nullable=False),  # the approver's, when they voted
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

# People and access (store/users.py, tokens.py, sessions.py, logins.py). No secret is stored:
# passwords as argon2 hashes, token secrets and session ids as their SHA-256.
users = Table(
    "users",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("password_hash", Text),  # argon2; null: signs in by OIDC or holds tokens only
    Column("source", String(16), nullable=False),  # model.access.UserSource
    Column("grants", JSON, nullable=False),  # [{role, applications, environments}]
    Column("groups", JSON, nullable=False),  # [name]; for OIDC users, as the last login said
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    # Who last set the password (a user's name) and when; null: set out of band (the database
    # bootstrap, drover dev). An approval counts only from a password the user set themself.
    Column("password_set_by", String(200)),
    Column("password_set_at", UTCDateTime),
    # OIDC users: the provider's (iss, sub) bound at the first sign-in; the name may change
    # at the provider, the subject may not.
    Column("oidc_issuer", String(1000)),
    Column("oidc_subject", String(255)),
    Index("ux_users_oidc_identity", "oidc_issuer", "oidc_subject", unique=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # public: shown in lists, used to revoke
    Column("user", String(200), ForeignKey("users.name"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),  # null: until revoked
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    # The user who made it, when not its owner or out of band: such a token is not the
    # owner's alone, and an approval through it does not count.
    Column("created_by", String(200)),
    Index("ix_api_tokens_user", "user"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("user", String(200), ForeignKey("users.name"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("via", String(16), nullable=False),  # password or oidc
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # absolute: however active it is
    Column("idle_expires_at", UTCDateTime, nullable=False),  # moved on by each use
    Index("ix_sessions_user", "user"),
)

# Login attempts of the last minutes, for the rate limit shared by every server process: each
# is recorded `pending` before its password is checked, then `failed`, or `ok` (kept longer:
# an address a user signed in from is not locked out by failures from elsewhere).
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("name", String(200), nullable=False),
    Column("source", String(100), nullable=False),
    Column("outcome", String(8), nullable=False, server_default="failed"),
    Index("ix_login_failures_at", "at"),
    Index("ix_login_failures_name", "name"),
    Index("ix_login_failures_source", "source"),
)

# OIDC logins under way: between the redirect to the provider and its callback.
oidc_requests = Table(
    "oidc_requests",
    metadata,
    Column("state_sha256", String(64), primary_key=True),
    Column("nonce", String(128), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# One-time tokens a host enrolls with (`drover hosts token create`): only the SHA-256 of the
# secret is kept. Used once, by the first host that shows it before it expires.
enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("host", String(63)),  # only this host may use it; null: any
    Column("used_at", UTCDateTime),
    Column("used_by_host", String(63)),
)

# The bus keys hosts have shown: enrolled (at most one per host), pending an admin's approval,
# rejected, or revoked (nats-server refuses revoked keys: the account JWT lists them).
host_keys = Table(
    "host_keys",
    metadata,
    Column("public_key", String(64), primary_key=True),
    Column("host", String(63), nullable=False),
    Column("state", String(10), nullable=False),  # pending | enrolled | rejected | revoked
    Column("requested_at", UTCDateTime, nullable=False),
    Column("source", String(100), nullable=False, server_default=""),  # the address it came from
    Column("via", String(32), nullable=False, server_default=""),  # token id, or "approval"
    Column("decided_at", UTCDateTime),
    Column("decided_by", String(200)),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", String(200)),
    Index("ix_host_keys_host", "host"),
    Index("ix_host_keys_state", "state"),
)


silences = Table(
    "silences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("rule", String(64)),  # null: any rule
    Column("key", String(300)),  # a glob over the alert's key (a host, host/app/service); null: any
    Column("reason", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),  # ended early by someone
    Column("ended_by", String(200)),
    Index("ix_silences_expires_at", "expires_at"),
)


schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("schedule", String(64), primary_key=True),
    Column("due_at", UTCDateTime, primary_key=True),
    Column("state", String(16), nullable=False),  # ran, missed, refused
    Column("action_id", String(64)),  # ran: the action it made
    Column("note", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)
