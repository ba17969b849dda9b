"""Rollouts: an action's strategy and state, and each host's batch, release and deadline.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.add_column(sa.Column("strategy", sa.JSON))
        table.add_column(sa.Column("rollout_state", sa.String(16)))
        table.add_column(sa.Column("halt_reason", sa.Text))
        table.add_column(sa.Column("cancel", sa.JSON))
    with op.batch_alter_table("action_hosts") as table:
        table.add_column(sa.Column("batch", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("sent_at", sa.DateTime))
        table.add_column(sa.Column("deadline", sa.DateTime))
    # Actions from before rollouts were sent whole: every row counts as released.
    # (pending ones too: the dispatcher sends those still unsent, as it did before)
    op.execute("UPDATE action_hosts SET sent_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("action_hosts") as table:
        table.drop_column("deadline")
        table.drop_column("sent_at")
        table.drop_column("batch")
    with op.batch_alter_table("actions") as table:
        table.drop_column("cancel")
        table.drop_column("halt_reason")
        table.drop_column("rollout_state")
        table.drop_column("strategy")
