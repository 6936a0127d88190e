"""Rules that hold in Python and in PostgreSQL: the migrated schema says what the models say, and
where a rule is written on both sides, the same table of cases goes to both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import DateTime, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable

from services.kit.db import plain_url
from services.parking import domain, gate
from services.parking.domain import BLOCKING_STATUSES, BookingStatus
from services.parking.models import Base, Booking, Spot
from tests.support.harness import RunningService

SCRATCH = "parking_model_check"

_CONSTRAINTS = """
SELECT t.relname || '.' || c.conname, pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = $1 AND c.contype IN ('c', 'x') AND t.relname = ANY($2::text[])
"""
_PARTIAL_INDEXES = """
SELECT i.relname, pg_get_expr(x.indpred, x.indrelid)
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = $1 AND x.indpred IS NOT NULL AND t.relname = ANY($2::text[])
"""


async def _rules(conn: asyncpg.Connection, schema: str) -> dict[str, str]:
    """Every check and exclusion constraint and every partial index predicate of parking's tables."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    rows = [*await conn.fetch(_CONSTRAINTS, schema, tables), *await conn.fetch(_PARTIAL_INDEXES, schema, tables)]
    return {name: definition for name, definition in rows}


async def test_the_migrated_constraints_are_the_ones_the_models_declare(parking: RunningService) -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    conn = await asyncpg.connect(plain_url(parking.database_url))
    try:
        migrated = await _rules(conn, "public")
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(f"CREATE SCHEMA {SCRATCH}; SET LOCAL search_path = {SCRATCH}, public")
            for table in Base.metadata.sorted_tables:
                await conn.execute(str(CreateTable(table).compile(dialect=dialect)))
                for index in table.indexes:
                    await conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
            declared = await _rules(conn, SCRATCH)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    assert "ex_bookings_spot_blocked" in "".join(declared) and "ix_bookings_held_expiry" in declared
    assert migrated == declared


# Which booking statuses hold the spot, answered by hand once and asked of both sides.
BLOCKING_CASES = [
    ("held", True),
    ("confirmed", True),
    ("active", True),
    ("completed", False),
    ("cancelled", False),
    ("expired", False),
]


def test_the_blocking_cases_cover_every_booking_status() -> None:
    assert sorted(status for status, _ in BLOCKING_CASES) == sorted(BookingStatus)


@pytest.mark.parametrize(("status", "blocks"), BLOCKING_CASES)
async def test_a_booking_holds_its_spot_in_python_and_in_the_exclusion_constraint(
    parking: RunningService, status: str, blocks: bool
) -> None:
    assert (BookingStatus(status) in BLOCKING_STATUSES) is blocks
    now = datetime.now(UTC)
    start = now + timedelta(days=1)
    spot = Spot(
        id=uuid.uuid4(),
        community=f"c-{uuid.uuid4().hex[:8]}",
        kind="public",
        code="R-1",
        location="B1",
        size="standard",
        has_charger=False,
        status="verified",
        created_at=now,
    )

    def booking(booking_status: str) -> Booking:
        return Booking(
            id=uuid.uuid4(),
            community=spot.community,
            spot_id=spot.id,
            kind="booking",
            plate="浙K12345",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            block_ends_at=start + timedelta(hours=1),
            status=booking_status,
            price_fen_per_30min=100,
            fee_fen=200,
            created_at=now,
            updated_at=now,
        )

    async with parking.state.sessionmaker() as session:
        async with session.begin():
            session.add(spot)
            await session.flush()
            session.add(booking(status))
            await session.flush()
            session.add(booking(BookingStatus.held))
            try:
                await session.flush()
                refused = False
            except IntegrityError as exc:
                assert "ex_bookings_spot_blocked" in str(exc.orig)
                refused = True
            await session.rollback()
    assert refused is blocks


# When a booked car may enter: (start, end, read at, grace) as minutes from a base time, and the answer.
ENTRY_CASES = [
    (60, 120, 90, 15, True),  # inside the booking
    (60, 120, 45, 15, True),  # exactly the grace before the start
    (60, 120, 44.99, 15, False),  # just before the grace
    (60, 120, 60, 0, True),  # at the start, no grace
    (60, 120, 59.99, 0, False),
    (60, 120, 119.99, 15, True),  # just before the end
    (60, 120, 120, 15, False),  # the end is exclusive
    (60, 120, 0, 240, True),  # a long grace
]


@pytest.mark.parametrize(("start", "end", "at", "grace", "expected"), ENTRY_CASES)
async def test_may_enter_answers_the_same_in_python_and_in_the_entry_query(
    parking: RunningService, start: float, end: float, at: float, grace: float, expected: bool
) -> None:
    base = datetime(2026, 3, 1, 8, tzinfo=UTC)
    starts_at, ends_at = base + timedelta(minutes=start), base + timedelta(minutes=end)
    read_at, grace_td = base + timedelta(minutes=at), timedelta(minutes=grace)
    assert domain.may_enter(starts_at, ends_at, read_at, grace_td) is expected
    when = DateTime(timezone=True)
    clause = gate.may_enter(literal(starts_at, when), literal(ends_at, when), read_at, grace_td)
    async with parking.state.sessionmaker() as session, session.begin():
        assert (await session.execute(select(clause))).scalar_one() is expected
