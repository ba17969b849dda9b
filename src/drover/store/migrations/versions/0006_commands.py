"""Commands and jobs: the command an action runs, and its output, stored whole.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.add_column(sa.Column("command", sa.JSON))
    with op.batch_alter_table("action_hosts") as table:
        table.add_column(sa.Column("output_chunks", sa.Integer))
        table.add_column(
            sa.Column("output_open", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_index("ix_action_hosts_output_open", "action_hosts", ["output_open"])
    op.create_table(
        "action_output",
        sa.Column("action_id", sa.String(64), sa.ForeignKey("actions.id"), primary_key=True),
        sa.Column("host", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("action_id", "position", name="uq_action_output_position"),
    )


def downgrade() -> None:
    op.drop_table("action_output")
    op.drop_index("ix_action_hosts_output_open", "action_hosts")
    with op.batch_alter_table("action_hosts") as table:
        table.drop_column("output_open")
        table.drop_column("output_chunks")
    with op.batch_alter_table("actions") as table:
        table.drop_column("command")
