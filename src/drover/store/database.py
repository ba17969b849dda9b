"""Opening the system of record: one engine, durable settings, the schema migrated to the newest
revision (store/migrations) before anything else touches it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"  # the schema databases had before migrations existed
# Alembic keeps the migration in progress in module globals: one at a time in a process. Across
# processes, a PostgreSQL advisory lock (migrations/env.py) does the same.
_MIGRATING = asyncio.Lock()


# How long a write waits for SQLite's one write lock before it fails ("database is locked").
# Python's default is 5 s; a server busy on both cores (seen in CI) held it longer.
SQLITE_LOCK_WAIT = 30.0


async def open_database(url: str) -> AsyncEngine:
    sqlite = url.startswith("sqlite")
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_LOCK_WAIT} if sqlite else {})
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_durability)
    async with _MIGRATING, engine.begin() as conn:
        await conn.run_sync(migrate)
    return engine


def migrate(connection: Connection) -> None:
    """Bring the schema to the newest revision; several processes may do it at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if "actions" in tables and "alembic_version" not in tables:
        command.stamp(config, BASELINE)  # made by drover before it had migrations
    command.upgrade(config, "head")


def _sqlite_durability(dbapi_conn: Any, _record: Any) -> None:
    # WAL for concurrent readers; synchronous=FULL so a committed record survives power loss.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
