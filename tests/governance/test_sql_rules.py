"""Rules written in both Python and SQL give the same answer for the same cases.

The database functions come from `services/governance/sql/*.sql`; the migrated database must hold
them exactly as written. `gov_reserve` holds the spending order, the points available after a debt,
lots due to expire and the per-resident limit that `domain.plan_spend`, `domain.due_lots` and
`domain.within_resident_limit` hold for points payments and refusals: each such table is fed to both
sides. Paying a debt first lives only in SQL (`gov_credit_lot`, for grants and awards alike), so its
table states the expected answers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.governance import domain
from services.governance.domain import LotView
from tests.support.sqlfiles import mismatched_functions
from tests.support.stack import TestStack

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
COMMUNITY = "c-sql-rules"


@pytest.fixture(scope="module")
async def db(stack: TestStack) -> AsyncIterator[asyncpg.Connection]:
    url = await stack.fresh_database("governance")
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
        await stack.drop_database(url)


async def test_the_migrated_functions_are_the_sql_files(db: asyncpg.Connection, stack: TestStack) -> None:
    database = await db.fetchval("SELECT current_database()")
    assert await mismatched_functions(stack.database_url(database), "governance") == {}


@dataclass(frozen=True)
class SpendCase:
    name: str
    lots: tuple[tuple[int, timedelta | None], ...]  # (remaining, expiry relative to NOW)
    cost: int
    debt: int = 0
    limit: int | None = None
    earlier: tuple[tuple[str, int], ...] = ()  # (status, quantity) of the resident's earlier redemptions
    quantity: int = 1


HOUR = timedelta(hours=1)
SPEND_CASES = [
    SpendCase("one lot covers it", ((10, None),), cost=5),
    SpendCase("soonest expiry first, unexpiring last", ((10, None), (5, 48 * HOUR), (5, 24 * HOUR)), cost=8),
    SpendCase("equal expiry: the older lot first", ((3, 24 * HOUR), (3, 24 * HOUR)), cost=4),
    SpendCase("the whole balance", ((3, HOUR), (4, None)), cost=7),
    SpendCase("a debt is owed before spending", ((10, None),), cost=7, debt=4),
    SpendCase("a debt leaves exactly enough", ((10, None),), cost=6, debt=4),
    SpendCase("not enough points", ((2, HOUR), (3, None)), cost=6),
    SpendCase("no lots at all", (), cost=1),
    SpendCase("a debt larger than the lots", ((3, None),), cost=1, debt=10),
    SpendCase("a lot past its expiry is due", ((5, -HOUR), (10, None)), cost=3),
    SpendCase("a lot expiring this instant is due", ((5, timedelta(0)), (10, None)), cost=3),
    SpendCase(
        "over the resident's limit", ((10, None),), cost=2, limit=3, earlier=(("reserved", 1), ("captured", 1)), quantity=2
    ),
    SpendCase("at the resident's limit", ((10, None),), cost=2, limit=4, earlier=(("reserved", 1), ("captured", 1)), quantity=2),
    SpendCase("released redemptions do not count", ((10, None),), cost=2, limit=2, earlier=(("released", 2),), quantity=2),
]


async def _resident_with_lots(
    db: asyncpg.Connection, lots: tuple[tuple[int, timedelta | None], ...], debt: int
) -> tuple[str, list[LotView]]:
    resident = f"r-{uuid.uuid4().hex[:10]}"
    views = []
    for remaining, expires_in in lots:
        expires_at = None if expires_in is None else NOW + expires_in
        lot_id = await db.fetchval(
            "INSERT INTO gov_lots (community, resident_id, points, remaining, expires_at)"
            " VALUES ($1, $2, $3, $3, $4) RETURNING id",
            COMMUNITY,
            resident,
            remaining,
            expires_at,
        )
        views.append(LotView(id=lot_id, remaining=remaining, expires_at=expires_at))
    await db.execute(
        "INSERT INTO gov_accounts (community, resident_id, balance, debt) VALUES ($1, $2, $3, $4)",
        COMMUNITY,
        resident,
        sum(r for r, _ in lots) - debt,
        debt,
    )
    return resident, views


@pytest.mark.parametrize("case", SPEND_CASES, ids=lambda c: c.name)
async def test_reserving_in_sql_spends_as_the_python_rules_do(db: asyncpg.Connection, case: SpendCase) -> None:
    resident, lots = await _resident_with_lots(db, case.lots, case.debt)
    reward_id = await db.fetchval(
        "INSERT INTO gov_rewards (community, code, name, kind, points, per_resident_limit, enabled)"
        " VALUES ($1, $2, '环保袋', 'item', 1, $3, true) RETURNING id",
        COMMUNITY,
        f"w-{uuid.uuid4().hex[:8]}",
        case.limit,
    )
    for status, quantity in case.earlier:
        await db.execute(
            "INSERT INTO gov_redemptions (community, resident_id, reward_id, quantity, points, status, deadline)"
            " VALUES ($1, $2, $3, $4, 1, $5, $6)",
            COMMUNITY,
            resident,
            reward_id,
            quantity,
            status,
            NOW,
        )
    redemption_id = uuid.uuid4()
    sql = await db.fetchrow(
        "SELECT * FROM gov_reserve($1, $2, $3, $4, $5, $6, $7, $8, false, $9, 'test', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        COMMUNITY,
        resident,
        reward_id,
        redemption_id,
        NOW,
        case.cost,
        case.quantity,
        case.limit,
        NOW + HOUR,
    )
    allocated = {
        (r["lot_id"], r["points"])
        for r in await db.fetch("SELECT lot_id, points FROM gov_allocations WHERE redemption_id = $1", redemption_id)
    }

    assert sql["due"] == len(domain.due_lots(lots, NOW))
    if sql["due"]:
        assert not sql["checks_passed"] and not allocated
        return
    # The points available are the Python rule's: it can spend exactly that many and not one more.
    available = int(sql["available"])
    if available:
        domain.plan_spend(lots, available, NOW, case.debt)
    with pytest.raises(domain.InsufficientPoints) as too_much:
        domain.plan_spend(lots, available + 1, NOW, case.debt)
    assert too_much.value.available == available

    already = sum(q for status, q in case.earlier if status in ("reserved", "captured"))
    within_limit = domain.within_resident_limit(case.limit, already, case.quantity)
    if case.limit is not None:
        assert sql["already"] == already
    try:
        plan = set(domain.plan_spend(lots, case.cost, NOW, case.debt))
    except domain.InsufficientPoints:
        plan = None
    assert sql["checks_passed"] == (within_limit and plan is not None)
    assert allocated == (plan if sql["checks_passed"] else set())


# (debt, points granted, points paying the debt, points kept in the new lot)
DEBT_CASES = [(0, 10, 0, 10), (4, 10, 4, 6), (10, 10, 10, 0), (15, 10, 10, 0), (3, 1, 1, 0)]


@pytest.mark.parametrize(("debt", "points", "paid", "kept"), DEBT_CASES)
async def test_a_grant_pays_a_debt_first_and_keeps_the_rest(
    db: asyncpg.Connection, debt: int, points: int, paid: int, kept: int
) -> None:
    resident, _ = await _resident_with_lots(db, (), debt)
    rule_id = await db.fetchval(
        "INSERT INTO gov_rules (community, code, name, trigger, points, per_hour, enabled)"
        " VALUES ($1, $2, '签到', 'checkin.garbage_sorting', $3, false, true) RETURNING id",
        COMMUNITY,
        f"r-{uuid.uuid4().hex[:8]}",
        points,
    )
    await db.execute(
        "INSERT INTO gov_budgets (community, funded, remaining) VALUES ($1, 1000000, 1000000) ON CONFLICT DO NOTHING", COMMUNITY
    )
    outcome = await db.fetchrow(
        "SELECT * FROM gov_grant($1, $2, $3, $4, NULL, $5, NULL, NULL, NULL, NULL, 'test', 'checkin.garbage_sorting', 'now',"
        " $6, 'governance', 'governance.points.granted.v1', '/services/governance', NULL, NULL)",
        COMMUNITY,
        resident,
        rule_id,
        f"src-{uuid.uuid4()}",
        points,
        str(uuid.uuid4()),
    )
    assert outcome["outcome"] == "granted"
    lot = await db.fetchval(
        "SELECT l.remaining FROM gov_lots l JOIN gov_grants g ON g.lot_id = l.id WHERE g.id = $1", outcome["grant_id"]
    )
    account = await db.fetchrow(
        "SELECT balance, debt FROM gov_accounts WHERE community = $1 AND resident_id = $2", COMMUNITY, resident
    )
    assert (lot, account["debt"], account["balance"]) == (kept, debt - paid, points - debt)
    assert await db.fetchval("SELECT count(*) FROM kit_outbox WHERE key = $1", str(outcome["grant_id"])) == 1
