"""Routes of points: balances, statements, lots, households and the monthly leaderboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from services.governance import domain, leaderboard, problems, statements
from services.governance.api import PersonPath, SettingsDep, Staff
from services.governance.schemas import (
    EntryPublic,
    HouseholdPoints,
    Leaderboard,
    LeaderboardRow,
    LotPublic,
    MemberPoints,
    PointsPublic,
)
from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.inputs import Month
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses

router = APIRouter(tags=["governance"])


# --- points, statements, households, leaderboard -------------------------------------------------


def _points(view: statements.PointsView) -> PointsPublic:
    return PointsPublic(
        resident_id=view.resident_id,
        balance=view.balance,
        reserved=view.reserved,
        debt=view.debt,
        expiring_within_30_days=view.expiring_within_30_days,
    )


@router.get("/me/points", response_model=PointsPublic)
async def my_points(me: CurrentPrincipal, session: SessionDep) -> PointsPublic:
    """My points

    The caller's balance, points reserved by open redemptions, debt left by clawbacks, and points expiring within 30 days. Any
    member of the community.
    """
    return _points(await statements.points_of(session, me.community, me.subject))


@router.get("/me/statement", response_model=Page[EntryPublic])
async def my_statement(me: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[EntryPublic]:
    """My statement (积分明细), newest first

    Every change to the caller's points with the balance after it, paged by cursor. Any member of the community.
    """
    items, cursor = await statements.statement(session, me.community, me.subject, page)
    return Page[EntryPublic](items=[EntryPublic.model_validate(e) for e in items], next_cursor=cursor)


@router.get("/me/lots", response_model=Page[LotPublic])
async def my_lots(me: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[LotPublic]:
    """My live lots, soonest expiry first

    The caller's lots with points left, in the order they are spent, paged by cursor. Any member of the community.
    """
    items, cursor = await statements.lots_of(session, me.community, me.subject, page)
    return Page[LotPublic](items=[LotPublic.model_validate(lot) for lot in items], next_cursor=cursor)


@router.get("/residents/{resident_id}/points", response_model=PointsPublic)
async def resident_points(resident_id: PersonPath, staff: Staff, session: SessionDep) -> PointsPublic:
    """A resident's points (staff)

    As `GET /me/points`, for any resident of the caller's community. Stewards, property admins and community workers.
    """
    return _points(await statements.points_of(session, staff.community, resident_id))


@router.get("/residents/{resident_id}/statement", response_model=Page[EntryPublic])
async def resident_statement(resident_id: PersonPath, staff: Staff, session: SessionDep, page: PageDep) -> Page[EntryPublic]:
    """A resident's statement (staff)

    As `GET /me/statement`, for any resident of the caller's community. Stewards, property admins and community workers.
    """
    items, cursor = await statements.statement(session, staff.community, resident_id, page)
    return Page[EntryPublic](items=[EntryPublic.model_validate(e) for e in items], next_cursor=cursor)


@router.get(
    "/households/{household_id}/points",
    response_model=HouseholdPoints,
    responses=problem_responses(problems.HouseholdNotFound),
)
async def household_points(household_id: PersonPath, who: CurrentPrincipal, session: SessionDep) -> HouseholdPoints:
    """A household's points: the sum of its members'

    Each member's balance and their total. A resident may see only their own household (another looks like it does not exist);
    staff may see any.
    """
    total, members = await statements.household_points(session, who, household_id)
    return HouseholdPoints(
        household_id=household_id, balance=total, members=[MemberPoints(resident_id=r, balance=b) for r, b in members]
    )


@router.get("/leaderboard", response_model=Leaderboard)
async def get_leaderboard(
    who: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    month: Annotated[Month | None, Query(description="YYYY-MM, local")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    """The community's monthly leaderboard

    Residents ranked by points earned in a local month (grants and awards net of deductions and clawbacks), and `total`,
    what every resident earned together, served from a short-lived cache. Any member of the community.
    """
    month = month or domain.month_of(datetime.now(UTC), ZoneInfo(settings.community_timezone))
    rows, total, cached = await leaderboard.top(request.app.state.redis, session, settings, who.community, month, limit)
    ranked = [LeaderboardRow(rank=i, resident_id=r, points=p) for i, (r, p) in enumerate(rows, 1)]
    return Leaderboard(month=month, total=total, from_cache=cached, rows=ranked)
