"""The application's environment when an action was requested: what reads and cancels of the
action are authorized on, even after the config moves the application elsewhere.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.add_column(sa.Column("environment", sa.String(64)))
    # Actions held for approval recorded it with their request; the others stay null, and are
    # authorized on the application's environment in the active config, as before.
    op.execute(
        "UPDATE actions SET environment = (SELECT r.environment FROM approval_requests r "
        "WHERE r.action_id = actions.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("actions") as table:
        table.drop_column("environment")
