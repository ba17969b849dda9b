"""The migrations make exactly the schema of store/tables.py, on SQLite and PostgreSQL, and a
database made before migrations existed is taken up, not re-created."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection

from drover.store.actions import ActionStore
from drover.store.database import BASELINE, MIGRATIONS, open_database
from drover.store.tables import metadata
from tests.postgres import PostgresCluster


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrated_schema_is_exactly_the_tables_module(database_url: str) -> None:
    engine = await open_database(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            assert len(version) == 1
    finally:
        await engine.dispose()


async def test_opening_again_changes_nothing_and_keeps_the_data(database_url: str) -> None:
    engine = await open_database(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO overrides (id, application, status, reason, created_by, created_at,"
                " expires_at) VALUES ('o1', 'shop', 'stopped', 'r', 'a', :t, :t)"
            ),
            {"t": datetime(2026, 11, 23, 12, 0)},
        )
    await engine.dispose()
    again = await open_database(database_url)
    try:
        async with again.connect() as conn:
            assert (await conn.execute(text("SELECT id FROM overrides"))).scalars().all() == ["o1"]
    finally:
        await again.dispose()


OPEN = (
    "import asyncio, sys; from drover.store.database import open_database as o; "
    "asyncio.run(o(sys.argv[1]))"
)


@pytest.mark.postgres
async def test_several_server_processes_migrating_one_database_at_once_all_succeed(
    postgres_cluster: PostgresCluster,
) -> None:
    # Several server processes are for PostgreSQL; SQLite is one server's database.
    url = postgres_cluster.new_database()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPEN, url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    for process in processes:
        _, err = await process.communicate()
        assert process.returncode == 0, err.decode()
    engine = await open_database(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


def database_at_baseline(path: Path, *statements: str, versioned: bool = True) -> str:
    """An SQLite database with the baseline schema and `statements` run in it; without the
    version table (`versioned=False`) it is what drover made before it had migrations."""
    old = create_engine(f"sqlite:///{path}")
    with old.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, BASELINE)
        if not versioned:
            conn.execute(text("DROP TABLE alembic_version"))
        for statement in statements:
            conn.execute(text(statement))
    old.dispose()
    return f"sqlite+aiosqlite:///{path}"


AN_ACTION = (
    "INSERT INTO actions VALUES ('a1', 'restart', 'shop', '[]', 'x', "
    "'2026-11-23 12:00:00', '2026-11-23 12:10:00')"
)


async def test_a_database_made_before_migrations_is_stamped_and_kept(tmp_path: Path) -> None:
    url = database_at_baseline(tmp_path / "old.db", AN_ACTION, versioned=False)
    engine = await open_database(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT id FROM actions"))).scalars().all() == ["a1"]
            assert "alembic_version" in await conn.run_sync(
                lambda sync: inspect(sync).get_table_names()
            )
    finally:
        await engine.dispose()


async def test_rows_pending_when_rollouts_came_are_still_sent(tmp_path: Path) -> None:
    url = database_at_baseline(
        tmp_path / "old.db",
        AN_ACTION,
        "INSERT INTO action_hosts (action_id, host, outcome, output, updated_at) "
        "VALUES ('a1', 'h1', 'pending', '', '2026-11-23 12:00:00')",
    )
    store = await ActionStore.open(url)
    try:
        assert [(d.action_id, d.host) for d in await store.undispatched()] == [("a1", "h1")]
        assert await store.in_progress() == []  # sent whole, as before: nothing to drive
    finally:
        await store.close()
