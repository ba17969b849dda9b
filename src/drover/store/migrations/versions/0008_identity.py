"""Identity: who set a password or made a token, the OIDC subject a user is bound to, and
login attempts recorded before their password is checked.

Revision ID: 0008
Revises: 0007

Rows from before have no setter or maker recorded (null): they count as the user's own, as
credentials set up out of band do. The audit trail (`user.changed`, `token.created`) says who
made them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(sa.Column("password_set_by", sa.String(200)))
        table.add_column(sa.Column("password_set_at", sa.DateTime))
        table.add_column(sa.Column("oidc_issuer", sa.String(1000)))
        table.add_column(sa.Column("oidc_subject", sa.String(255)))
        table.create_index("ux_users_oidc_identity", ["oidc_issuer", "oidc_subject"], unique=True)
    with op.batch_alter_table("api_tokens") as table:
        table.add_column(sa.Column("created_by", sa.String(200)))
    with op.batch_alter_table("login_failures") as table:
        table.add_column(
            sa.Column("outcome", sa.String(8), nullable=False, server_default="failed")
        )


def downgrade() -> None:
    with op.batch_alter_table("login_failures") as table:
        table.drop_column("outcome")
    with op.batch_alter_table("api_tokens") as table:
        table.drop_column("created_by")
    with op.batch_alter_table("users") as table:
        table.drop_index("ux_users_oidc_identity")
        table.drop_column("oidc_subject")
        table.drop_column("oidc_issuer")
        table.drop_column("password_set_at")
        table.drop_column("password_set_by")
