"""Which database errors are worth retrying, and which say the values themselves are refused."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from drover.store.errors import is_transient, refused_value


class _DriverError(Exception):
    """As asyncpg's errors reach SQLAlchemy: with the SQLSTATE the server gave."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi(sqlstate: str | None) -> DBAPIError:
    return DBAPIError("UPDATE action_hosts ...", {}, _DriverError(sqlstate))


@pytest.mark.parametrize(
    "err",
    [
        OperationalError("SELECT 1", {}, Exception("database is locked")),
        InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        _dbapi("57P01"),  # admin shutdown
        _dbapi("08006"),  # connection failure
        _dbapi("40001"),  # serialization failure
        _dbapi("53300"),  # too many connections
        PoolTimeout("QueuePool limit reached"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
)
def test_an_unreachable_or_busy_database_is_transient(err: BaseException) -> None:
    assert is_transient(err)
    assert not refused_value(err)


@pytest.mark.parametrize(
    "err",
    [
        DataError("UPDATE ...", {}, Exception("value too long for type character varying")),
        IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed")),
        StatementError("bind parameter", "UPDATE ...", {}, ValueError("not a date")),
        _dbapi("22003"),  # numeric value out of range
        _dbapi("22021"),  # character not in repertoire (a NUL in text)
        _dbapi(None),  # refused by the driver before the server saw it
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ],
)
def test_a_value_the_database_refuses_is_not_transient(err: BaseException) -> None:
    assert refused_value(err)
    assert not is_transient(err)


def test_an_error_of_drovers_own_is_neither() -> None:
    assert not refused_value(RuntimeError("a bug"))
    assert not is_transient(RuntimeError("a bug"))
