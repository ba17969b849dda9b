"""The system of record: what must never be lost (actions and their per-host results).

SQLite is the embedded default; the same SQLAlchemy Core tables serve PostgreSQL.
"""
