"""What a resident (or the staff) reads of points: balances, the statement (积分明细), live lots and
households' totals. Each public function is one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel import select as select_models
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import problems
from services.governance.accounts import LOTS, now_utc
from services.governance.models import Account, Entry, Lot, Resident
from services.kit.auth import Principal
from services.kit.db import DriverStatement, driver_statement, fetch_alone, table_of, transaction
from services.kit.pagination import PageParams, after_key_condition, make_page

ACCOUNTS = table_of(Account)
RESIDENTS = table_of(Resident)


@dataclass(frozen=True)
class PointsView:
    resident_id: str
    balance: int
    reserved: int
    debt: int
    expiring_within_30_days: int


def _points_statement() -> DriverStatement:
    """The resident's account with the points expiring by `soon`, as one statement (no row: no account yet)."""
    expiring = (
        select(func.coalesce(func.sum(LOTS.c.remaining), 0))
        .where(
            LOTS.c.community == bindparam("community"),
            LOTS.c.resident_id == bindparam("resident_id"),
            LOTS.c.remaining > 0,
            LOTS.c.expires_at.is_not(None),
            LOTS.c.expires_at <= bindparam("soon"),
        )
        .scalar_subquery()
    )
    accounts = table_of(Account).c
    return driver_statement(
        select(accounts.balance, accounts.reserved, accounts.debt, expiring.label("expiring")).where(
            accounts.community == bindparam("community"), accounts.resident_id == bindparam("resident_id")
        )
    )


_POINTS = _points_statement()


async def points_of(session: AsyncSession, community: str, resident_id: str) -> PointsView:
    soon = now_utc() + timedelta(days=30)
    args = _POINTS.args(community=community, resident_id=resident_id, soon=soon)
    acct = await fetch_alone(session, _POINTS.sql, *args)  # one statement: no transaction to open
    if acct is None:
        return PointsView(resident_id, 0, 0, 0, 0)
    return PointsView(resident_id, acct.balance, acct.reserved, acct.debt, int(acct.expiring))


async def statement(session: AsyncSession, community: str, resident_id: str, page: PageParams) -> tuple[list[Entry], str | None]:
    async with transaction(session):
        q = select_models(Entry).where(col(Entry.community) == community, col(Entry.resident_id) == resident_id)
        after = page.after()
        if after:
            q = q.where(col(Entry.id) < int(after[0]))
        rows = list((await session.exec(q.order_by(col(Entry.id).desc()).limit(page.limit + 1))).all())
        return make_page(rows, page.limit, lambda e: [e.id])


def _lots_after(expires_at: datetime | None, lot_id: int) -> ColumnElement[bool]:
    """After (expires_at, id) in the spending order, where a lot that never expires comes last."""
    expires, ident = col(Lot.expires_at), col(Lot.id)
    if expires_at is None:
        return and_(expires.is_(None), ident > lot_id)
    return or_(after_key_condition([expires, ident], (expires_at, lot_id)), expires.is_(None))


async def lots_of(session: AsyncSession, community: str, resident_id: str, page: PageParams) -> tuple[list[Lot], str | None]:
    """A resident's live lots in spending order (soonest expiry first, never-expiring last, then id),
    served by the partial index on live lots."""
    query = select_models(Lot).where(col(Lot.community) == community, col(Lot.resident_id) == resident_id, col(Lot.remaining) > 0)
    after = page.after_key(datetime | None, int)
    if after:
        query = query.where(_lots_after(*after))
    query = query.order_by(col(Lot.expires_at).asc().nulls_last(), col(Lot.id)).limit(page.limit + 1)
    async with transaction(session):
        rows = list((await session.exec(query)).all())
    return make_page(rows, page.limit, lambda lot: [lot.expires_at.isoformat() if lot.expires_at else None, lot.id])


async def register_resident(
    session: AsyncSession, community: str, resident_id: str, household_id: str | None, *, owner: bool = False
) -> None:
    """Remember a resident's household (from property), so its members' points add up, and whether
    they own it (owners vote in owners' decisions)."""
    async with transaction(session):
        await session.execute(
            insert(RESIDENTS)
            .values(community=community, resident_id=resident_id, household_id=household_id, owner=owner)
            .on_conflict_do_update(
                index_elements=[RESIDENTS.c.community, RESIDENTS.c.resident_id],
                set_={"household_id": household_id, "owner": owner},
            )
        )


async def household_points(session: AsyncSession, caller: Principal, household_id: str) -> tuple[int, list[tuple[str, int]]]:
    async with transaction(session):
        members = (
            await session.execute(
                select(RESIDENTS.c.resident_id, func.coalesce(ACCOUNTS.c.balance, 0))
                .outerjoin(
                    ACCOUNTS,
                    and_(ACCOUNTS.c.community == RESIDENTS.c.community, ACCOUNTS.c.resident_id == RESIDENTS.c.resident_id),
                )
                .where(RESIDENTS.c.community == caller.community, RESIDENTS.c.household_id == household_id)
                .order_by(RESIDENTS.c.resident_id)
            )
        ).all()
        # A resident sees only their own household; not being a member looks like it does not exist.
        if not members or (not caller.is_staff and caller.subject not in {m[0] for m in members}):
            raise problems.HouseholdNotFound()
        rows = [(str(m[0]), int(m[1])) for m in members]
        return sum(b for _, b in rows), rows
