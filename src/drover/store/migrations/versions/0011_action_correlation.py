"""The correlation id of the API request that made an action: carried to the agents and back,
on every log line and audit entry of the action's path.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.add_column(sa.Column("correlation", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.drop_column("correlation")
