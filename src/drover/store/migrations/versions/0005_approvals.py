"""Four-eyes approvals of actions: requests, votes, and when an approved action was released.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.add_column(sa.Column("released_at", sa.DateTime))
    op.create_table(
        "approval_requests",
        sa.Column("action_id", sa.String(64), sa.ForeignKey("actions.id"), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("application", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("policies", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.DateTime, nullable=False),
        sa.Column("open_until", sa.DateTime, nullable=False),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "ix_approval_requests_state_open_until", "approval_requests", ["state", "open_until"]
    )
    op.create_table(
        "approval_votes",
        sa.Column(
            "action_id",
            sa.String(64),
            sa.ForeignKey("approval_requests.action_id"),
            primary_key=True,
        ),
        sa.Column("approver", sa.String(200), primary_key=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("via", sa.String(64), nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("approval_votes")
    op.drop_table("approval_requests")
    with op.batch_alter_table("actions") as table:
        table.drop_column("released_at")
