"""Database engine, sessions and the per-service table registry.

Every service has its own database and its own SQLModel registry, so two services may both have a
table called `settings` without colliding when the test suite imports them together. Sessions are
created with autobegin off: every piece of work states its transaction (`transaction(session)`),
so a forgotten commit is an error at once instead of silently lost data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, Result, Table
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError, MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import registry
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import greenlet_spawn
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

# One naming convention for constraints, so migrations name things the same way every time.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def model_base(name: str) -> type[SQLModel]:
    """A SQLModel base class with its own registry and metadata, one per service.

    Usage in `services/<svc>/models.py`::

        TimebankModel = model_base("TimebankModel")

        class Account(TimebankModel, table=True): ...
    """
    reg = registry(metadata=new_metadata())
    base: type[SQLModel] = type(name, (SQLModel,), {"__module__": __name__}, registry=reg)
    return base


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel table class, typed (SQLModel sets `__table__` only at run time)."""
    table = model.__table__  # type: ignore[attr-defined]
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def asyncpg_url(url: str) -> str:
    """Accept `postgresql://` or `postgres://` URLs and use the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]}")


def plain_url(url: str) -> str:
    """The libpq form of a URL (for asyncpg.connect and psql)."""
    return asyncpg_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20, echo: bool = False) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping: with asyncpg it costs three statements on every checkout (half the round
        # trips of a one-call use case). After an outage the first use of a stale connection fails
        # (a 503 with Retry-After, or a consumer retry) and SQLAlchemy then invalidates the pool.
        pool_pre_ping=False,
        pool_recycle=1800,
        echo=echo,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "community-platform"}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False, autobegin=False)


@asynccontextmanager
async def transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Run the block in one transaction: begin one, or join the one already open.

    A use case calls this once; an outer caller (the idempotency wrapper, a batch endpoint) may
    already have begun the transaction, and then the use case's work joins it.
    """
    if session.in_transaction():
        yield session
        return
    async with session.begin():
        yield session


async def execute_alone(session: AsyncSession, statement: Executable, params: Mapping[str, Any]) -> Result[Any]:
    """Run one statement as its own transaction, or inside the session's if one is open.

    For a use case that is a single statement (a database function doing all of its checks and
    writes): PostgreSQL wraps a lone statement in a transaction of its own, so there is no BEGIN
    and no COMMIT round trip, and the row locks the statement takes are released when it ends,
    never held across a round trip to this process (which, under contention, is most of a
    transaction's lock time). The result is fully buffered. When an outer caller (the idempotency
    wrapper) has begun a transaction, the statement joins it as any other would.
    """
    if session.in_transaction():
        return await session.execute(statement, params)
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        raise RuntimeError("execute_alone needs a session bound to an AsyncEngine")
    async with bind.connect() as conn:
        alone = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return await alone.execute(statement, params)  # buffered: usable after the connection returns


async def fetch_alone(session: AsyncSession, sql: str, *args: Any) -> Any:
    """`execute_alone` for the hottest one-statement use cases: `sql` in the driver's own form
    (`$1`, `$2`, ...), returning the first row (attribute access) or None.

    Alone, the statement goes straight to the pooled asyncpg connection, skipping SQLAlchemy's
    Connection, compile, parameter and result layers: about 0.25 ms of CPU per call, measured as
    much as the rest of a confirmation's Python work (bench/timebank_confirm.py). Joined to an open
    transaction it goes straight to that transaction's asyncpg connection too (`_in_transaction`).
    Driver errors are raised as SQLAlchemy would raise them.
    """
    if session.in_transaction():
        record = await _in_transaction(session, "fetchrow", sql, args)
    else:
        record = await _on_pooled_connection(session, "fetchrow", sql, args)
    return None if record is None else SimpleNamespace(**record)


async def fetch_all_alone(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
    """`fetch_alone` for a statement returning many rows: all of them, in order."""
    if session.in_transaction():
        records = await _in_transaction(session, "fetch", sql, args)
    else:
        records = await _on_pooled_connection(session, "fetch", sql, args)
    return [SimpleNamespace(**record) for record in records]


async def _in_transaction(session: AsyncSession, method: str, sql: str, args: tuple[Any, ...]) -> Any:
    """`sql` on the asyncpg connection of the session's open transaction, as SQLAlchemy's adapter
    sends a statement (under its mutex, beginning the driver's transaction first if this is the
    transaction's first statement), without the Connection, cursor and result layers around it:
    those were about 60 % of a filing's SQLAlchemy CPU (docs/architecture.md, issue 15's fourth
    pass). The session's connection is looked up once per transaction, not per statement.
    `tests/kit/test_db.py` pins the adapter's internals this relies on (SQLAlchemy is pinned)."""
    root = session.sync_session.get_transaction()
    held = session.info.get(_DRIVER)
    if held is None or held[0] is not root:
        conn = await session.connection()
        held = session.info[_DRIVER] = (root, conn, conn.sync_connection.connection)  # type: ignore[union-attr]
    _, conn, pooled = held
    adapted: Any = pooled.dbapi_connection  # SQLAlchemy's AsyncAdapt_asyncpg_connection
    async with adapted._execute_mutex:
        if not adapted._started:
            await adapted._start_transaction()
        try:
            return await getattr(adapted._connection, method)(sql, *args)
        except Exception as error:
            raise await _as_sqlalchemy_error(conn.engine, pooled, sql, args, error, conn.invalidate) from error


async def _on_pooled_connection(session: AsyncSession, method: str, sql: str, args: tuple[Any, ...]) -> Any:
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        raise RuntimeError("fetch_alone needs a session bound to an AsyncEngine")
    # The pool's connection without a Connection around it: one it holds idle at once, else the usual way.
    pooled = _idle_connection(bind) or await bind.raw_connection()
    try:
        driver = pooled.driver_connection
        assert driver is not None  # an open pooled connection
        return await getattr(driver, method)(sql, *args)
    except Exception as error:
        raise await _as_sqlalchemy_error(bind, pooled, sql, args, error) from error
    finally:
        pool = bind.sync_engine.pool
        if pooled.is_valid and isinstance(pool, QueuePool) and pool.checkedin() < pool.size():
            pooled.close()  # back into a pool with room: no I/O
        else:
            # Under greenlet_spawn, as SQLAlchemy's AsyncConnection returns its own: giving an overflow
            # connection back to a full pool (or dropping a broken one) closes it, an await in the driver.
            await greenlet_spawn(pooled.close)


def _idle_connection(engine: AsyncEngine) -> Any:
    """A connection the pool holds idle, checked out without greenlet_spawn, or None.

    A greenlet per checkout cost about 45 µs of CPU more per statement than this (uvloop, one
    statement at a time: 93-122 against 46-62 µs with the checkout and return, 26 for the statement
    alone). The checkout itself does no I/O when the pool has an idle connection, unless that one
    is due to be replaced (recycled or invalidated): SQLAlchemy then raises MissingGreenlet before
    any await (closing the connect coroutine it was given) and puts the record back, and the
    caller checks out the usual way, which reconnects. The connection being replaced is then
    terminated rather than closed with a goodbye to the server, as SQLAlchemy does outside a greenlet.
    """
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool) or pool.checkedin() == 0:
        return None
    try:
        return engine.sync_engine.raw_connection()
    except MissingGreenlet:
        return None


@dataclass(frozen=True)
class DriverStatement:
    """A Core statement compiled once, at import, to the driver's SQL (`$1`, `$2`, ...) for
    `fetch_alone`: the tables stay declared on the models, and no request pays for compiling."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]  # the values written into the statement (`phase == "posted"`)

    def args(self, **params: Any) -> tuple[Any, ...]:
        """The statement's parameters, by their `bindparam` names, in the driver's order."""
        return tuple(params[name] if name in params else self.fixed[name] for name in self.names)


def driver_statement(statement: ClauseElement) -> DriverStatement:
    compiled = statement.compile(dialect=_DRIVER_DIALECT)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not a SQL statement: {statement!r}")
    fixed = {name: bind.value for bind, name in compiled.bind_names.items() if not bind.required}
    return DriverStatement(str(compiled), tuple(compiled.positiontup or ()), fixed)


_DRIVER_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


async def _as_sqlalchemy_error(
    engine: AsyncEngine,
    pooled: Any,
    sql: str,
    args: tuple[Any, ...],
    error: Exception,
    invalidate: Callable[[BaseException], Awaitable[None]] | None = None,
) -> Exception:
    """A driver error as SQLAlchemy raises it (a `DBAPIError` whose `orig` has the SQLSTATE), so
    retries on deadlock and the outage handler (503) see the same exceptions on every path; a
    broken connection is dropped from the pool (by `invalidate` when a Connection holds it)."""
    try:
        pooled.dbapi_connection._handle_exception(error)  # raises the DB-API form of `error`
    except Exception as adapted:
        dialect = engine.sync_engine.dialect
        dbapi = dialect.loaded_dbapi
        if not isinstance(adapted, dbapi.Error):
            return adapted
        invalidated = dialect.is_disconnect(adapted, pooled.dbapi_connection, None)
        if invalidated:
            await (invalidate(adapted) if invalidate is not None else greenlet_spawn(pooled.invalidate, adapted))
        return DBAPIError.instance(sql, args, adapted, dbapi.Error, connection_invalidated=invalidated)
    return error


_REQUEST_SESSIONS = "kit.sessions"
_DRIVER = "kit.driver"


async def get_session(request: Request) -> AsyncSession:
    """The request's session. A plain function, not a generator with a `finally: close()`: with
    autobegin off a session holds a connection only inside `transaction()`, which gives it back on
    the way out, so after a route there is nothing to close, and FastAPI's generator dependencies
    (an exit stack, a task per request) cost about a tenth of a small read's CPU. A session somehow
    left in a transaction is closed by `RequestSessions` after the response."""
    return open_session(request.scope, request.app)


def open_session(scope: Scope, app: Any) -> AsyncSession:
    """A new session of the app's, recorded in the request's scope for `RequestSessions`."""
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    session = maker()
    scope.setdefault(_REQUEST_SESSIONS, []).append(session)
    return session


class RequestSessions:
    """Plain ASGI: after each request, close any of its sessions still in a transaction (a
    connection must never stay checked out past its request)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            for session in scope.get(_REQUEST_SESSIONS, ()):
                if session.in_transaction():
                    await session.close()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def row_dict(obj: Any) -> dict[str, Any]:
    """A table object's columns as a dict (for events and responses built from rows)."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}
