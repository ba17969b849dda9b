"""The schema of the walking skeleton: actions, their per-host rows, overrides.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("application", sa.String(64), nullable=False),
        sa.Column("services", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("deadline", sa.DateTime, nullable=False),
    )
    op.create_index("ix_actions_created_at", "actions", ["created_at"])
    op.create_table(
        "action_hosts",
        sa.Column("action_id", sa.String(64), sa.ForeignKey("actions.id"), primary_key=True),
        sa.Column("host", sa.String(64), primary_key=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("duration_s", sa.Float),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_action_hosts_outcome", "action_hosts", ["outcome"])
    op.create_table(
        "overrides",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("application", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64)),
        sa.Column("host", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("cleared_at", sa.DateTime),
        sa.Column("cleared_by", sa.String(200)),
    )
    op.create_index("ix_overrides_expires_at", "overrides", ["expires_at"])


def downgrade() -> None:
    op.drop_table("overrides")
    op.drop_table("action_hosts")
    op.drop_table("actions")
