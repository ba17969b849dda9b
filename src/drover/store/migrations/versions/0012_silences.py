"""Silences: alerts people asked not to be sent, until they expire.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(64)),
        sa.Column("key", sa.String(300)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("ended_by", sa.String(200)),
    )
    op.create_index("ix_silences_expires_at", "silences", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_silences_expires_at", "silences")
    op.drop_table("silences")
