"""Schedule runs: each time a schedule was due, and whether it ran (its action) or was missed.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("schedule", sa.String(64), primary_key=True),
        sa.Column("due_at", sa.DateTime, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("action_id", sa.String(64)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedule_runs")
