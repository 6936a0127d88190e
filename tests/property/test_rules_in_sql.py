"""Rules that live in Python and in the migrated database's constraints and indexes give the same answers.

Each table of cases is fed to the Python rule and to the SQL the database actually holds (read
back from the catalogue with `pg_get_constraintdef` / `pg_get_expr`, evaluated over a VALUES row),
so a constraint or partial index that drifts from the domain's sets fails here.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import asyncpg

from services.kit.db import plain_url
from services.kit.sqlfiles import KIT_SQL_DIR, sql_dir
from services.property import domain
from services.property.domain import (
    AWAITING_RESPONSE,
    LIVE_PAYMENTS,
    OPEN_STATUSES,
    RESOLUTION_WATCHED,
    WORK_STARTED,
    Category,
    PaymentStatus,
    QuoteNotApproved,
    Status,
)
from services.property.models import OPEN_SQL
from tests.support.harness import RunningService

_CHECKS = """
SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
 WHERE c.conrelid = $1::regclass AND c.contype = 'c'
"""
_INDEX_PREDICATE = "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i WHERE i.indexrelid = $1::regclass"


async def _ticket_checks_pass(conn: asyncpg.Connection, category: str, status: str, quote: int | None, approved: bool) -> bool:
    """Whether every CHECK on `tickets` holds for a row with these values (the other columns NULL)."""
    checks = [definition.removeprefix("CHECK ") for _, definition in await conn.fetch(_CHECKS, "tickets")]
    conjunction = " AND ".join(f"COALESCE({c}, true)" for c in checks)  # a CHECK passes unless false
    # A resident's ticket (who filed it is its own rule, `filed_by`).
    row = "VALUES ($1::text, $2::text, $3::int, $4::timestamptz, NULL::int, NULL::int, 'resident', 'r-1', 'h-1', NULL::text)"
    columns = (
        "tickets(category, status, quote_fen, quote_approved_at, rating_overall, rating_speed,"
        " source, resident_id, household_id, incident_id)"
    )
    approved_at = datetime.now(UTC) if approved else None
    return bool(await conn.fetchval(f"SELECT {conjunction} FROM ({row}) AS {columns}", category, status, quote, approved_at))


# A row as the SLA job and the queues see it: a status, no breach recorded yet.
TICKET_ROW = (
    "(VALUES ($1::text, NULL::timestamptz, NULL::timestamptz)) AS tickets(status, response_breached_at, resolution_breached_at)"
)
ORDER_ROW = "(VALUES ($1::text)) AS payment_orders(status)"


async def _holds(conn: asyncpg.Connection, predicate: str, row: str, status: str) -> bool:
    """Whether a predicate (an index's or a query's) holds for `row` with this status."""
    return bool(await conn.fetchval(f"SELECT COALESCE({predicate}, false) FROM {row}", status))


def _python_quote_allowed(category: Category, amount: int) -> bool:
    try:
        domain.check_quote(category, amount)
    except domain.BasicServiceIsFree:
        return False
    return True


def _python_may_be_in(category: Category, status: Status, approved: bool) -> bool:
    """Work under way or done got there through `start`, which `check_start` guards."""
    if status not in WORK_STARTED:
        return True
    try:
        domain.check_start(category, approved)
    except QuoteNotApproved:
        return False
    return True


async def test_a_quote_is_allowed_by_python_exactly_where_the_database_allows_it(svc: RunningService) -> None:
    conn = await asyncpg.connect(plain_url(svc.database_url))
    try:
        for category, amount in itertools.product(Category, (-100, 0, 1, 12000)):
            in_sql = await _ticket_checks_pass(conn, category.value, Status.quoted.value, amount, False)
            assert _python_quote_allowed(category, amount) == in_sql, (category, amount)
    finally:
        await conn.close()


async def test_paid_work_needs_an_approved_quote_in_python_and_in_the_database(svc: RunningService) -> None:
    conn = await asyncpg.connect(plain_url(svc.database_url))
    try:
        # A basic ticket never has a quote to approve (the case above); a paid one may or may not.
        cases = [(c, s, a) for c, s, a in itertools.product(Category, Status, (False, True)) if domain.is_paid(c) or not a]
        for category, status, approved in cases:
            quote = 5000 if approved else None
            in_sql = await _ticket_checks_pass(conn, category.value, status.value, quote, approved)
            assert _python_may_be_in(category, status, approved) == in_sql, (category, status, approved)
    finally:
        await conn.close()


async def test_the_partial_indexes_and_queries_cover_the_statuses_the_domain_names(svc: RunningService) -> None:
    due, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    conn = await asyncpg.connect(plain_url(svc.database_url))
    try:
        steward_queue = await conn.fetchval(_INDEX_PREDICATE, "ix_tickets_steward_queue")
        response_watch = await conn.fetchval(_INDEX_PREDICATE, "ix_tickets_response_watch")
        resolution_watch = await conn.fetchval(_INDEX_PREDICATE, "ix_tickets_resolution_watch")
        live_payment = await conn.fetchval(_INDEX_PREDICATE, "uq_payment_orders_live")
        for status in Status:
            is_open = status in OPEN_STATUSES
            assert await _holds(conn, steward_queue, TICKET_ROW, status) == is_open, status
            assert await _holds(conn, OPEN_SQL, TICKET_ROW, status) == is_open, status
            # The response watch covers exactly the statuses whose queue deadline is the response one.
            races_response = domain.queue_deadline(status, due, later) == due
            assert await _holds(conn, response_watch, TICKET_ROW, status) == races_response, status
            assert (status in AWAITING_RESPONSE) == races_response
            # The resolution watch covers the open statuses racing resolution, but not a paused clock.
            watched = is_open and not races_response and status != Status.paused
            assert await _holds(conn, resolution_watch, TICKET_ROW, status) == watched, status
            assert (status in RESOLUTION_WATCHED) == watched
        for payment in PaymentStatus:
            assert await _holds(conn, live_payment, ORDER_ROW, payment) == (payment in LIVE_PAYMENTS)
    finally:
        await conn.close()


async def test_every_database_function_of_property_has_its_sql_file(svc: RunningService) -> None:
    files = {p.stem for p in sql_dir("property").glob("*.sql")} | {p.stem for p in KIT_SQL_DIR.glob("*.sql")}
    conn = await asyncpg.connect(plain_url(svc.database_url))
    try:
        rows = await conn.fetch(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'"
            " WHERE n.nspname = 'public' AND d.objid IS NULL"
        )
    finally:
        await conn.close()
    assert {r["proname"] for r in rows} <= files
