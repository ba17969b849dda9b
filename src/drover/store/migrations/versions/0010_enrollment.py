"""Enrollment: one-time tokens hosts enroll with, and the bus keys hosts have shown.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("host", sa.String(63)),
        sa.Column("used_at", sa.DateTime),
        sa.Column("used_by_host", sa.String(63)),
    )
    op.create_table(
        "host_keys",
        sa.Column("public_key", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(63), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("requested_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(100), nullable=False, server_default=""),
        sa.Column("via", sa.String(32), nullable=False, server_default=""),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("revoked_at", sa.DateTime),
        sa.Column("revoked_by", sa.String(200)),
    )
    op.create_index("ix_host_keys_host", "host_keys", ["host"])
    op.create_index("ix_host_keys_state", "host_keys", ["state"])


def downgrade() -> None:
    op.drop_table("host_keys")
    op.drop_table("enrollment_tokens")
