"""Routes: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request

from services.governance import domain, leaderboard, problems, service
from services.governance.schemas import (
    AwardCreate,
    AwardPublic,
    AwardStatusFilter,
    BudgetPublic,
    CheckinCodeCreate,
    CheckinCodePublic,
    EntryPublic,
    FundingCreate,
    GrantPublic,
    HouseholdPoints,
    Leaderboard,
    LeaderboardRow,
    LotPublic,
    MemberPoints,
    PointsPublic,
    QrCheckin,
    RedemptionCreate,
    RedemptionPublic,
    RedemptionSettle,
    RedemptionStatusFilter,
    RewardCreate,
    RewardPublic,
    RewardUpdate,
    RuleCreate,
    RulePublic,
    RuleUpdate,
    StaffCheckin,
)
from services.governance.settings import Settings
from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Month, Text
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses

router = APIRouter(tags=["governance"])


async def get_settings(request: Request) -> Settings:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hand-off on every request.
    return cast(Settings, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
Worker = Annotated[Principal, require_roles("community_worker")]
Scanner = Annotated[Principal, require_roles("steward", "community_worker")]
Staff = Annotated[Principal, require_roles("steward", "property_admin", "community_worker")]
PersonPath = Annotated[Text, Path(min_length=1, max_length=64)]


async def _refresh_leaderboard(request: Request, community: str) -> None:
    await leaderboard.invalidate(request.app.state.redis, await get_settings(request), community, datetime.now(UTC))


# --- earning rules -------------------------------------------------------------------------------


@router.post(
    "/rules",
    status_code=201,
    response_model=RulePublic,
    summary="Create an earning rule",
    responses=problem_responses(problems.CodeTaken),
)
async def create_rule(body: RuleCreate, worker: Worker, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.create_rule(session, worker, body), RulePublic)


@router.get("/rules", response_model=list[RulePublic], summary="The community's earning rules")
async def list_rules(who: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.list_rules(session, who.community)


@router.patch(
    "/rules/{rule_id}",
    response_model=RulePublic,
    summary="Change or switch off a rule",
    responses=problem_responses(problems.RuleNotFound),
)
async def update_rule(rule_id: uuid.UUID, body: RuleUpdate, worker: Worker, session: SessionDep) -> Any:
    return await service.update_rule(session, worker, rule_id, body)


# --- check-ins -----------------------------------------------------------------------------------

CHECKIN_PROBLEMS = (
    problems.RuleNotFound,
    problems.NotACheckinRule,
    problems.RuleInactive,
    problems.CapReached,
    problems.BudgetExhausted,
)


@router.post(
    "/checkin-codes",
    status_code=201,
    response_model=CheckinCodePublic,
    summary="A QR code for a check-in rule, valid on one day",
    responses=problem_responses(problems.RuleNotFound, problems.NotACheckinRule),
)
async def create_checkin_code(
    body: CheckinCodeCreate, staff: Scanner, session: SessionDep, settings: SettingsDep, idem: IdempotencyDep
) -> Any:
    return await idem.run(session, body, lambda: service.create_checkin_code(session, settings, staff, body), CheckinCodePublic)


@router.post(
    "/checkins",
    status_code=201,
    response_model=GrantPublic,
    summary="A steward scans a resident (garbage sorting, meeting attendance...)",
    responses=problem_responses(*CHECKIN_PROBLEMS),
)
async def checkin_by_staff(
    body: StaffCheckin, staff: Scanner, session: SessionDep, settings: SettingsDep, request: Request, idem: IdempotencyDep
) -> Any:
    result = await idem.run(
        session, body, lambda: service.checkin_by_staff(session, settings, staff, body.rule_id, body.resident_id), GrantPublic
    )
    await _refresh_leaderboard(request, staff.community)
    return result


@router.post(
    "/checkins/qr",
    status_code=201,
    response_model=GrantPublic,
    summary="A resident checks in with the day's QR code",
    responses=problem_responses(problems.CheckinCodeInvalid, *CHECKIN_PROBLEMS),
)
async def checkin_by_code(
    body: QrCheckin, resident: CurrentPrincipal, session: SessionDep, settings: SettingsDep, request: Request
) -> Any:
    grant = await service.checkin_by_code(session, settings, resident, body.code)
    await _refresh_leaderboard(request, resident.community)
    return grant


# --- budget and awards ---------------------------------------------------------------------------


@router.post("/budget/fundings", response_model=BudgetPublic, summary="Fund the community's points budget")
async def fund_budget(body: FundingCreate, worker: Worker, session: SessionDep) -> Any:
    return await service.fund_budget(session, worker, body.points)


@router.get("/budget", response_model=BudgetPublic, summary="The community's points budget")
async def get_budget(staff: Staff, session: SessionDep) -> Any:
    return await service.get_budget(session, staff.community)


@router.post(
    "/awards",
    status_code=201,
    response_model=AwardPublic,
    summary="Award or deduct points with a reason; large ones wait for a second worker",
    responses=problem_responses(problems.BudgetExhausted),
)
async def create_award(
    body: AwardCreate, worker: Worker, session: SessionDep, settings: SettingsDep, request: Request, idem: IdempotencyDep
) -> Any:
    result = await idem.run(session, body, lambda: service.create_award(session, settings, worker, body), AwardPublic)
    await _refresh_leaderboard(request, worker.community)
    return result


@router.get("/awards", response_model=Page[AwardPublic], summary="Awards, e.g. those pending approval")
async def list_awards(worker: Worker, session: SessionDep, page: PageDep, status: AwardStatusFilter | None = None) -> Any:
    items, cursor = await service.list_awards(session, worker.community, status, page)
    return Page[AwardPublic](items=[AwardPublic.model_validate(a) for a in items], next_cursor=cursor)


@router.post(
    "/awards/{award_id}/approve",
    response_model=AwardPublic,
    summary="A second worker approves",
    responses=problem_responses(
        problems.AwardNotFound, problems.AwardNotPending, problems.SelfApproval, problems.BudgetExhausted
    ),
)
async def approve_award(award_id: uuid.UUID, worker: Worker, session: SessionDep, settings: SettingsDep, request: Request) -> Any:
    award = await service.decide_award(session, settings, worker, award_id, approve=True)
    await _refresh_leaderboard(request, worker.community)
    return award


@router.post(
    "/awards/{award_id}/reject",
    response_model=AwardPublic,
    summary="A second worker rejects",
    responses=problem_responses(problems.AwardNotFound, problems.AwardNotPending, problems.SelfApproval),
)
async def reject_award(award_id: uuid.UUID, worker: Worker, session: SessionDep, settings: SettingsDep) -> Any:
    return await service.decide_award(session, settings, worker, award_id, approve=False)


# --- points, statements, households, leaderboard -------------------------------------------------


def _points(view: service.PointsView) -> PointsPublic:
    return PointsPublic(
        resident_id=view.resident_id,
        balance=view.balance,
        reserved=view.reserved,
        debt=view.debt,
        expiring_within_30_days=view.expiring_within_30_days,
    )


@router.get("/me/points", response_model=PointsPublic, summary="My points")
async def my_points(me: CurrentPrincipal, session: SessionDep) -> Any:
    return _points(await service.points_of(session, me.community, me.subject))


@router.get("/me/statement", response_model=Page[EntryPublic], summary="My statement (积分明细), newest first")
async def my_statement(me: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    items, cursor = await service.statement(session, me.community, me.subject, page)
    return Page[EntryPublic](items=[EntryPublic.model_validate(e) for e in items], next_cursor=cursor)


@router.get("/me/lots", response_model=list[LotPublic], summary="My live lots, soonest expiry first")
async def my_lots(me: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.lots_of(session, me.community, me.subject)


@router.get("/residents/{resident_id}/points", response_model=PointsPublic, summary="A resident's points (staff)")
async def resident_points(resident_id: PersonPath, staff: Staff, session: SessionDep) -> Any:
    return _points(await service.points_of(session, staff.community, resident_id))


@router.get("/residents/{resident_id}/statement", response_model=Page[EntryPublic], summary="A resident's statement (staff)")
async def resident_statement(resident_id: PersonPath, staff: Staff, session: SessionDep, page: PageDep) -> Any:
    items, cursor = await service.statement(session, staff.community, resident_id, page)
    return Page[EntryPublic](items=[EntryPublic.model_validate(e) for e in items], next_cursor=cursor)


@router.get(
    "/households/{household_id}/points",
    response_model=HouseholdPoints,
    summary="A household's points: the sum of its members'",
    responses=problem_responses(problems.HouseholdNotFound),
)
async def household_points(household_id: PersonPath, who: CurrentPrincipal, session: SessionDep) -> Any:
    total, members = await service.household_points(session, who, household_id)
    return HouseholdPoints(
        household_id=household_id, balance=total, members=[MemberPoints(resident_id=r, balance=b) for r, b in members]
    )


@router.get("/leaderboard", response_model=Leaderboard, summary="The community's monthly leaderboard")
async def get_leaderboard(
    who: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    month: Annotated[Month | None, Query(description="YYYY-MM, local")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    month = month or domain.month_of(datetime.now(UTC), ZoneInfo(settings.community_timezone))
    rows, cached = await leaderboard.top(request.app.state.redis, session, settings, who.community, month, limit)
    return Leaderboard(
        month=month, from_cache=cached, rows=[LeaderboardRow(rank=i, resident_id=r, points=p) for i, (r, p) in enumerate(rows, 1)]
    )


# --- rewards and redemptions ---------------------------------------------------------------------


@router.post(
    "/rewards",
    status_code=201,
    response_model=RewardPublic,
    summary="Add a reward to the catalogue",
    responses=problem_responses(problems.CodeTaken),
)
async def create_reward(body: RewardCreate, worker: Worker, session: SessionDep, idem: IdempotencyDep) -> Any:
    return await idem.run(session, body, lambda: service.create_reward(session, worker, body), RewardPublic)


@router.get("/rewards", response_model=list[RewardPublic], summary="The reward catalogue")
async def list_rewards(
    who: CurrentPrincipal, session: SessionDep, include_inactive: Annotated[bool, Query(description="Staff only")] = False
) -> Any:
    return await service.list_rewards(session, who.community, active_only=not (include_inactive and who.is_staff))


@router.patch(
    "/rewards/{reward_id}",
    response_model=RewardPublic,
    summary="Change a reward or add stock",
    responses=problem_responses(problems.RewardNotFound, problems.OutOfStock),
)
async def update_reward(reward_id: uuid.UUID, body: RewardUpdate, worker: Worker, session: SessionDep) -> Any:
    return await service.update_reward(session, worker, reward_id, body)


@router.post(
    "/redemptions",
    status_code=201,
    response_model=RedemptionPublic,
    summary="Redeem points for a reward: the points are reserved until it is fulfilled",
    responses=problem_responses(
        problems.RewardNotFound,
        problems.RewardInactive,
        problems.InsufficientPoints,
        problems.OutOfStock,
        problems.ResidentLimitExceeded,
    ),
)
async def redeem(
    body: RedemptionCreate, resident: CurrentPrincipal, session: SessionDep, settings: SettingsDep, idem: IdempotencyDep
) -> Any:
    return await idem.run(session, body, lambda: service.redeem(session, settings, resident, body), RedemptionPublic)


@router.get("/me/redemptions", response_model=Page[RedemptionPublic], summary="My redemptions")
async def my_redemptions(
    me: CurrentPrincipal, session: SessionDep, page: PageDep, status: RedemptionStatusFilter | None = None
) -> Any:
    items, cursor = await service.list_redemptions(session, me.community, page, resident_id=me.subject, status=status)
    return Page[RedemptionPublic](items=[RedemptionPublic.model_validate(r) for r in items], next_cursor=cursor)


@router.get("/redemptions", response_model=Page[RedemptionPublic], summary="The community's redemptions (staff)")
async def list_redemptions(staff: Staff, session: SessionDep, page: PageDep, status: RedemptionStatusFilter | None = None) -> Any:
    items, cursor = await service.list_redemptions(session, staff.community, page, resident_id=None, status=status)
    return Page[RedemptionPublic](items=[RedemptionPublic.model_validate(r) for r in items], next_cursor=cursor)


@router.get(
    "/redemptions/{redemption_id}",
    response_model=RedemptionPublic,
    summary="One redemption",
    responses=problem_responses(problems.RedemptionNotFound),
)
async def get_redemption(redemption_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep) -> Any:
    return await service.get_redemption(session, who, redemption_id)


@router.post(
    "/redemptions/{redemption_id}/cancel",
    response_model=RedemptionPublic,
    summary="Cancel a reserved redemption: the points come back",
    responses=problem_responses(problems.RedemptionNotFound, problems.RedemptionNotOpen),
)
async def cancel_redemption(
    redemption_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep, body: RedemptionSettle | None = None
) -> Any:
    reason = (body.reason if body and body.reason else None) or "cancelled"
    return await service.release_redemption(
        session, who.community, redemption_id, reason, resident_id=None if who.is_staff else who.subject
    )


@router.post(
    "/redemptions/{redemption_id}/fulfil",
    response_model=RedemptionPublic,
    summary="A worker hands over an item: the reservation is captured",
    responses=problem_responses(problems.RedemptionNotFound, problems.RedemptionNotOpen),
)
async def fulfil_redemption(redemption_id: uuid.UUID, worker: Worker, session: SessionDep) -> Any:
    return await service.capture_redemption(session, worker.community, redemption_id)
