"""Telling a database that is out of reach from one that refuses what it was given.

A loop that stores what arrives must retry the first kind — the same write succeeds once the
database is back — and must not retry the second for ever: the same values are refused again,
and everything behind them waits.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE classes (PostgreSQL, appendix A) of errors about the server, not the statement:
# connection exception, transaction rollback (serialization failure, deadlock), insufficient
# resources, operator intervention (shutdown, cancelled query), system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_transient(err: BaseException) -> bool:
    """The database could not be reached, or gave up for reasons of its own: the same
    statement may well succeed if tried again."""
    if isinstance(err, DBAPIError):
        if err.connection_invalidated or isinstance(err, OperationalError | InterfaceError):
            return True
        # asyncpg's errors reach SQLAlchemy mostly as a plain DBAPIError: the SQLSTATE says.
        sqlstate = getattr(err.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return isinstance(err, DisconnectionError | PoolTimeout | OSError | TimeoutError)


def refused_value(err: BaseException) -> bool:
    """The database, or its driver, refused a value of the statement — out of range, not
    encodable, breaking a constraint: the same values fail again however often they are tried.
    (The SQLite driver raises such errors unwrapped: OverflowError for an integer past 64
    bits, UnicodeEncodeError for text that is not UTF-8.)"""
    if is_transient(err):
        return False
    return isinstance(err, StatementError | ValueError | TypeError | OverflowError)
