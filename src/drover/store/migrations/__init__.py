"""Alembic migrations of the system of record, applied by `store.database.open_database`.

Each revision is a module in `versions/`, written by hand (or by `alembic revision
--autogenerate` against `store.tables.metadata`, then read and corrected) and tested on SQLite and
PostgreSQL by tests/store/test_migrations.py, which also checks that the migrated schema is
exactly `store.tables.metadata`.
"""
