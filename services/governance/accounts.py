"""A resident's points account: the building blocks every use case moves points with, and the expiry sweep.

The helpers run inside a caller's transaction. Lock order, the same everywhere so concurrent use
cases cannot deadlock: grant / cap counter → budget row → redemption row → account row → reward
row. The account row (locked by `hold_account`) serialises every change to one resident's lots, so
a balance is never spent twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.domain import LotView
from services.governance.models import Budget, Lot
from services.kit.db import table_of, transaction

LOTS = table_of(Lot)
BUDGETS = table_of(Budget)


def now_utc() -> datetime:
    return datetime.now(UTC)


def expiry_after(now: datetime, days: int | None) -> datetime | None:
    """When a lot credited at `now` expires (never, without a validity)."""
    return now + timedelta(days=days) if days is not None else None


@dataclass
class HeldAccount:
    """A locked account's figures, kept in step by the helpers below (not an ORM object, so no
    stray flush can overwrite what the SQL updates did)."""

    community: str
    resident_id: str
    balance: int
    debt: int
    reserved: int


# Hot-path statements as plain SQL: the ORM-enabled forms cost more in Python than the database work.
# The lock and the budget draw are database functions (sql/), shared with gov_grant and gov_reserve.
_HOLD_ACCOUNT_SQL = text("SELECT balance, debt, reserved FROM gov_hold_account(:community, :resident)")
_DRAW_BUDGET_SQL = text("SELECT gov_draw_budget(:community, CAST(:points AS integer))")

# One round trip per statement line: the balance moves and the line is written in one statement.
_ENTRY_SQL = text("""
WITH a AS (
    UPDATE gov_accounts SET balance = balance + :delta, debt = debt + :debt_change,
                            reserved = reserved + :reserved_change
    WHERE community = :community AND resident_id = :resident RETURNING balance
)
INSERT INTO gov_entries (community, resident_id, kind, delta, balance_after, ref_type, ref_id, reason)
SELECT CAST(:community AS text), CAST(:resident AS text), CAST(:kind AS text), CAST(:delta AS integer), a.balance,
       CAST(:ref_type AS text), CAST(:ref_id AS text), CAST(:reason AS text)
FROM a RETURNING balance_after
""")

# A credit, in one statement (sql/gov_credit_lot.sql): the lot, the debt paid first, the balance and
# the statement line.
_CREDIT_SQL = text("""
SELECT balance, lot_id, paid FROM gov_credit_lot(
    :community, :resident, CAST(:debt AS bigint), CAST(:points AS integer), CAST(:expires_at AS timestamptz),
    :kind, :ref_type, :ref_id, :reason, NULL)
""")


async def hold_account(session: AsyncSession, community: str, resident_id: str) -> HeldAccount:
    """The resident's account row, created on first use, locked until the transaction ends."""
    row = (await session.execute(_HOLD_ACCOUNT_SQL, {"community": community, "resident": resident_id})).one()
    return HeldAccount(community, resident_id, int(row.balance), int(row.debt), int(row.reserved))


async def live_lots(session: AsyncSession, community: str, resident_id: str) -> list[LotView]:
    """The resident's lots with points left, expired or not."""
    rows = (
        await session.execute(
            select(LOTS.c.id, LOTS.c.remaining, LOTS.c.expires_at).where(
                LOTS.c.community == community, LOTS.c.resident_id == resident_id, LOTS.c.remaining > 0
            )
        )
    ).all()
    return [LotView(id=int(r.id), remaining=int(r.remaining), expires_at=r.expires_at) for r in rows]


async def take_from_lots(session: AsyncSession, plan: Sequence[tuple[int, int]]) -> None:
    for lot_id, points in plan:
        await session.execute(update(LOTS).where(LOTS.c.id == lot_id).values(remaining=LOTS.c.remaining - points))


async def record_entry(
    session: AsyncSession,
    acct: HeldAccount,
    kind: str,
    delta: int,
    *,
    ref_type: str | None = None,
    ref_id: str | None = None,
    reason: str | None = None,
    debt_change: int = 0,
    reserved_change: int = 0,
) -> int:
    """Move the balance by `delta` (and debt, reserved) and record it in the statement; returns the new balance."""
    balance = (
        await session.execute(
            _ENTRY_SQL,
            {
                "delta": delta,
                "debt_change": debt_change,
                "reserved_change": reserved_change,
                "community": acct.community,
                "resident": acct.resident_id,
                "kind": kind,
                "ref_type": ref_type,
                "ref_id": ref_id,
                "reason": reason,
            },
        )
    ).scalar_one()
    acct.balance = int(balance)
    acct.debt += debt_change
    acct.reserved += reserved_change
    return acct.balance


async def credit_lot(
    session: AsyncSession,
    acct: HeldAccount,
    points: int,
    expires_at: datetime | None,
    kind: str,
    *,
    ref_type: str,
    ref_id: str,
    reason: str | None,
) -> int:
    """Credit points as a new lot (an award's: a grant's lot is credited by gov_grant itself); a debt
    left by a clawback or deduction is paid first. Returns the lot id."""
    row = (
        await session.execute(
            _CREDIT_SQL,
            {
                "community": acct.community,
                "resident": acct.resident_id,
                "debt": acct.debt,
                "points": points,
                "expires_at": expires_at,
                "kind": kind,
                "ref_type": ref_type,
                "ref_id": ref_id,
                "reason": reason,
            },
        )
    ).one()
    acct.balance = int(row.balance)
    acct.debt -= int(row.paid)
    return int(row.lot_id)


async def take_points_back(
    session: AsyncSession,
    acct: HeldAccount,
    points: int,
    kind: str,
    *,
    own_lot: int | None,
    ref_type: str,
    ref_id: str,
    reason: str | None,
) -> None:
    """Clawback or deduction: from lots (own lot first), the rest as debt; the balance may go negative."""
    plan, debt = domain.plan_clawback(await live_lots(session, acct.community, acct.resident_id), points, own_lot)
    await take_from_lots(session, plan)
    await record_entry(session, acct, kind, -points, ref_type=ref_type, ref_id=ref_id, reason=reason, debt_change=debt)


async def draw_budget(session: AsyncSession, community: str, points: int) -> bool:
    """Draw from the community budget; False when it does not cover `points` (it never goes negative)."""
    drawn = (await session.execute(_DRAW_BUDGET_SQL, {"community": community, "points": points})).scalar_one()
    return bool(drawn)


async def return_to_budget(session: AsyncSession, community: str, points: int) -> None:
    await session.execute(
        update(BUDGETS)
        .where(BUDGETS.c.community == community)
        .values(remaining=BUDGETS.c.remaining + points, clawed_back=BUDGETS.c.clawed_back + points)
    )


async def expire_lots_of(session: AsyncSession, acct: HeldAccount, now: datetime, lots: list[LotView] | None = None) -> int:
    """Expire this (locked) account's due lots, one statement line each. Returns points expired."""
    if lots is None:
        lots = await live_lots(session, acct.community, acct.resident_id)
    total = 0
    for lot in domain.due_lots(lots, now):
        await session.execute(update(LOTS).where(LOTS.c.id == lot.id).values(remaining=0))
        await record_entry(
            session,
            acct,
            "expiry",
            -lot.remaining,
            ref_type="lot",
            ref_id=str(lot.id),
            reason=f"积分过期 / points expired ({lot.expires_at.isoformat() if lot.expires_at else ''})",
        )
        total += lot.remaining
    return total


async def spend_points(session: AsyncSession, acct: HeldAccount, amount: int, now: datetime) -> list[tuple[int, int]]:
    """Take `amount` from the soonest-expiring live lots of a locked account (no statement line)."""
    lots = await live_lots(session, acct.community, acct.resident_id)
    await expire_lots_of(session, acct, now, lots)
    try:
        plan = domain.plan_spend(lots, amount, now, acct.debt)  # skips the lots just expired
    except domain.InsufficientPoints as exc:
        raise problems.InsufficientPoints(
            (f"需要 {exc.needed} 积分，可用 {exc.available}", f"Needs {exc.needed} points, {exc.available} available"),
            needed=exc.needed,
            available=exc.available,
        ) from None
    await take_from_lots(session, plan)
    return plan


async def expire_due_lots(session: AsyncSession, *, now: datetime | None = None, accounts: int = 200) -> int:
    """Expire due lots for up to `accounts` residents; returns the points expired."""
    at = now or now_utc()
    async with transaction(session):
        owners = (
            await session.execute(
                select(LOTS.c.community, LOTS.c.resident_id)
                .where(LOTS.c.remaining > 0, LOTS.c.expires_at.is_not(None), LOTS.c.expires_at <= at)
                .group_by(LOTS.c.community, LOTS.c.resident_id)
                .order_by(LOTS.c.community, LOTS.c.resident_id)
                .limit(accounts)
            )
        ).all()
        total = 0
        for community, resident_id in owners:
            acct = await hold_account(session, community, resident_id)
            total += await expire_lots_of(session, acct, at)
        return total
