"""Opening the system of record: one engine, durable settings, the schema created."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from drover.store.tables import metadata


async def open_database(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_durability)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


def _sqlite_durability(dbapi_conn: Any, _record: Any) -> None:
    # WAL for concurrent readers; synchronous=FULL so a committed record survives power loss.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
