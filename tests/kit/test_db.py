"""`execute_alone` and `fetch_alone`: a one-statement use case is its own transaction, or joins the caller's."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, bindparam, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import (
    driver_statement,
    execute_alone,
    fetch_all_alone,
    fetch_alone,
    make_engine,
    make_sessionmaker,
    transaction,
)
from tests.support.stack import TestStack

_WRITE = text("INSERT INTO notes (body) VALUES (:body) RETURNING pg_current_xact_id()::text AS xact")
_DRIVER_WRITE = "INSERT INTO notes (body) VALUES ($1) RETURNING body, pg_current_xact_id()::text AS xact"


@asynccontextmanager
async def notes_database(
    stack: TestStack, name: str, pool_size: int, max_overflow: int = 20
) -> AsyncIterator[tuple[AsyncEngine, Any]]:
    """A database of its own with an empty `notes` table: its engine and sessionmaker."""
    url = await stack.empty_database(name)
    engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE notes (body text PRIMARY KEY)"))
        yield engine, make_sessionmaker(engine)
    finally:
        await engine.dispose()
        await stack.drop_database(url)


async def bodies_of(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT body FROM notes ORDER BY body"))).scalars().all())


async def test_execute_alone_commits_by_itself_and_joins_an_open_transaction(stack: TestStack) -> None:
    async with notes_database(stack, "kit_db", pool_size=2) as (engine, maker):
        async with maker() as session:
            first = (await execute_alone(session, _WRITE, {"body": "alone 1"})).one().xact
            second = (await execute_alone(session, _WRITE, {"body": "alone 2"})).one().xact
            assert first != second  # each statement was a transaction of its own
            assert not session.in_transaction()

        async with maker() as session:
            with pytest.raises(RuntimeError):
                async with transaction(session):
                    before = (await session.execute(_WRITE, {"body": "before"})).one().xact
                    joined = (await execute_alone(session, _WRITE, {"body": "joined"})).one().xact
                    assert joined == before
                    raise RuntimeError("the caller's transaction fails")

        assert await bodies_of(engine) == ["alone 1", "alone 2"]


async def test_fetch_alone_uses_the_driver_alone_and_joins_an_open_transaction(stack: TestStack) -> None:
    async with notes_database(stack, "kit_db_fetch", pool_size=2) as (engine, maker):
        async with maker() as session:
            first = await fetch_alone(session, _DRIVER_WRITE, "alone 1")
            second = await fetch_alone(session, _DRIVER_WRITE, "alone 2")
            assert (first.body, second.body) == ("alone 1", "alone 2")
            assert first.xact != second.xact
            assert await fetch_alone(session, "SELECT body FROM notes WHERE body = $1", "none") is None

        async with maker() as session:
            with pytest.raises(RuntimeError):
                async with transaction(session):
                    before = (await session.execute(_WRITE, {"body": "before"})).one().xact
                    joined = await fetch_alone(session, _DRIVER_WRITE, "joined")
                    assert joined.xact == before
                    raise RuntimeError("the caller's transaction fails")

        assert await bodies_of(engine) == ["alone 1", "alone 2"]


async def test_fetch_alone_raises_driver_errors_as_sqlalchemy_does_and_keeps_the_pool_usable(stack: TestStack) -> None:
    async with notes_database(stack, "kit_db_errors", pool_size=1, max_overflow=0) as (_, maker):
        async with maker() as session:
            await fetch_alone(session, "INSERT INTO notes VALUES ($1)", "once")
            with pytest.raises(IntegrityError) as raised:
                await fetch_alone(session, "INSERT INTO notes VALUES ($1)", "once")
            assert raised.value.orig is not None and getattr(raised.value.orig, "sqlstate", None) == "23505"
            # The one pooled connection went back to the pool and still works.
            assert (await fetch_alone(session, "SELECT count(*) AS n FROM notes")).n == 1


async def test_fetch_alone_closes_overflow_connections_it_returns_to_a_full_pool(
    stack: TestStack, caplog: pytest.LogCaptureFixture
) -> None:
    """More callers than the pool holds: the overflow connections are closed on return (an await in
    the driver), not left open with an error logged, and a broken one is dropped the same way."""
    url = await stack.empty_database("kit_db_overflow")
    engine = make_engine(url, pool_size=1, max_overflow=3)
    maker = make_sessionmaker(engine)
    try:

        async def slow() -> None:
            async with maker() as session:
                assert (await fetch_alone(session, "SELECT 1 AS one FROM pg_sleep(0.2)")).one == 1

        with caplog.at_level("ERROR", logger="sqlalchemy.pool"):
            await asyncio.gather(*(slow() for _ in range(4)))
            async with maker() as session:
                backend = (await fetch_alone(session, "SELECT pg_backend_pid() AS pid")).pid
                with pytest.raises(DBAPIError) as killed:
                    # The server ends this very connection mid-statement: it must leave the pool.
                    await fetch_alone(session, "SELECT pg_terminate_backend($1::int) FROM pg_sleep(0.05)", backend)
                assert killed.value.connection_invalidated
        assert not [r for r in caplog.records if "closing connection" in r.getMessage()], caplog.text
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with engine.connect() as conn:
            open_now = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'community-platform'"
                    )
                )
            ).scalar_one()
        assert open_now == 1  # only the pool's one kept connection (this one)
    finally:
        await engine.dispose()
        await stack.drop_database(url)


async def test_fetch_alone_replaces_an_idle_connection_the_pool_must_reconnect(
    stack: TestStack, caplog: pytest.LogCaptureFixture
) -> None:
    """fetch_alone takes an idle connection without a greenlet; one that must first be replaced
    (here: invalidated, as after an outage; or due for recycling) needs I/O, so it goes the usual
    way and reconnects, with no error logged and no coroutine left unawaited."""
    url = await stack.empty_database("kit_db_reconnect")
    engine = make_engine(url, pool_size=1, max_overflow=0)
    maker = make_sessionmaker(engine)
    try:
        session = maker()
        first = (await fetch_alone(session, "SELECT pg_backend_pid() AS pid")).pid
        assert (await fetch_alone(session, "SELECT pg_backend_pid() AS pid")).pid == first  # the idle one, reused
        async with engine.connect() as conn:
            await conn.invalidate()  # the pool keeps the record, without a connection
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
        with caplog.at_level("ERROR", logger="sqlalchemy.pool"), warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            second = (await fetch_alone(session, "SELECT pg_backend_pid() AS pid")).pid
            gc.collect()
        assert second != first
        assert not [w for w in warned if "never awaited" in str(w.message)], [str(w.message) for w in warned]
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
        assert (await fetch_alone(session, "SELECT pg_backend_pid() AS pid")).pid == second
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
        await stack.drop_database(url)


async def test_a_core_statement_compiled_once_runs_through_fetch_alone_with_its_parameters_by_name(stack: TestStack) -> None:
    notes = Table("notes", MetaData(), Column("body", String, primary_key=True), Column("author", String))
    statement = driver_statement(
        select(notes.c.body).where(notes.c.author == bindparam("author"), notes.c.body > bindparam("after"), notes.c.body != "x")
    )
    assert statement.args(after="b", author="wang") == ("wang", "b", "x")  # the value written in the statement too
    url = await stack.empty_database("kit_db_driver")
    engine = make_engine(url, pool_size=1)
    maker = make_sessionmaker(engine)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE notes (body text PRIMARY KEY, author text)"))
            await conn.execute(text("INSERT INTO notes VALUES ('a', 'wang'), ('c', 'wang'), ('d', 'li')"))
        async with maker() as session:
            row = await fetch_alone(session, statement.sql, *statement.args(author="wang", after="b"))
            assert row.body == "c"
            assert await fetch_alone(session, statement.sql, *statement.args(author="li", after="d")) is None
    finally:
        await engine.dispose()
        await stack.drop_database(url)


async def test_fetch_alone_in_a_transaction_begins_it_shares_it_and_rolls_back_with_it(stack: TestStack) -> None:
    """In a session's transaction the statement goes straight to that transaction's asyncpg
    connection: as its first statement it begins the transaction, the ORM's statements after it
    join the same one, a driver error arrives as SQLAlchemy's and rolls everything back, and the
    session's next transaction gets its own connection."""
    async with notes_database(stack, "kit_db_in_tx", pool_size=1, max_overflow=0) as (engine, maker):
        async with maker() as session:
            async with transaction(session):
                first = await fetch_alone(session, _DRIVER_WRITE, "first")  # the transaction's first statement
                after = (await session.execute(_WRITE, {"body": "orm"})).one().xact
                rows = await fetch_all_alone(session, "SELECT body FROM notes ORDER BY body")
                assert first.xact == after and [r.body for r in rows] == ["first", "orm"]

            with pytest.raises(IntegrityError) as raised:
                async with transaction(session):
                    await fetch_alone(session, _DRIVER_WRITE, "second")
                    await fetch_alone(session, _DRIVER_WRITE, "first")
            assert getattr(raised.value.orig, "sqlstate", None) == "23505"

            async with transaction(session):  # a new transaction: not the one that failed
                third = await fetch_alone(session, _DRIVER_WRITE, "third")
            assert third.xact != first.xact
        assert await bodies_of(engine) == ["first", "orm", "third"]
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
