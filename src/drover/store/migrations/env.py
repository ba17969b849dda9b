"""Alembic's environment: always run on a connection `open_database` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from drover.store.tables import metadata

# Any fixed number: the key of the PostgreSQL advisory lock that lets one server process at a
# time migrate, when several start together.
MIGRATION_LOCK = 0x6472_6F76_6572  # "drover"


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying a table
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("drover's migrations run from drover (store.database.open_database)")
run(connection)
