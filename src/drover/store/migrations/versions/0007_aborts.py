"""Aborts: a cancel that aborts running hosts sends each an abort, and takes their answer.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action_hosts") as table:
        table.add_column(sa.Column("abort_requested_at", sa.DateTime))
        table.add_column(sa.Column("abort_sent_at", sa.DateTime))
        table.add_column(sa.Column("answered_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("action_hosts") as table:
        table.drop_column("answered_at")
        table.drop_column("abort_sent_at")
        table.drop_column("abort_requested_at")
