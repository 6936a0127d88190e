"""Routes: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.governance import awards, domain, earning, leaderboard, problems, redemptions, rewards, statements
from services.governance.models import Award, Budget, CheckinCode, Grant, Lot, Redemption, Reward, Rule
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
PersonPath = Annotated[str, Path(min_length=1, max_length=64)]


async def _refresh_leaderboard(request: Request, community: str) -> None:
    await leaderboard.invalidate(request.app.state.redis, await get_settings(request), community, datetime.now(UTC))


# --- earning rules -------------------------------------------------------------------------------


@router.post(
    "/rules",
    status_code=201,
    response_model=RulePublic,
    responses=problem_responses(problems.CodeTaken),
)
async def create_rule(body: RuleCreate, worker: Worker, session: SessionDep, idem: IdempotencyDep) -> Rule | JSONResponse:
    """Create an earning rule

    A rule grants points for one trigger (another service's event or a check-in), flat or per hour, with an optional cap per
    day, week or month, a lot validity and validity dates. Community workers only; the code is unique within the community.
    """
    return await idem.run(session, body, lambda: earning.create_rule(session, worker, body), RulePublic)


@router.get("/rules", response_model=list[RulePublic])
async def list_rules(who: CurrentPrincipal, session: SessionDep) -> Sequence[Rule]:
    """The community's earning rules

    Every rule of the caller's community, switched off or not, by code. Anyone of the community may read them.
    """
    return await earning.list_rules(session, who.community)


@router.patch(
    "/rules/{rule_id}",
    response_model=RulePublic,
    responses=problem_responses(problems.RuleNotFound),
)
async def update_rule(rule_id: uuid.UUID, body: RuleUpdate, worker: Worker, session: SessionDep) -> Rule:
    """Change or switch off a rule

    Changes only the fields sent; grants already made stay as they are. Community workers only.
    """
    return await earning.update_rule(session, worker, rule_id, body)


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
    responses=problem_responses(problems.RuleNotFound, problems.NotACheckinRule),
)
async def create_checkin_code(
    body: CheckinCodeCreate, staff: Scanner, session: SessionDep, settings: SettingsDep, idem: IdempotencyDep
) -> CheckinCode | JSONResponse:
    """A QR code for a check-in rule, valid on one day

    The code grants the rule's points to each resident who scans it, once per resident, on its local day (today by default).
    Stewards and community workers.
    """
    return await idem.run(session, body, lambda: earning.create_checkin_code(session, settings, staff, body), CheckinCodePublic)


@router.post(
    "/checkins",
    status_code=201,
    response_model=GrantPublic,
    responses=problem_responses(*CHECKIN_PROBLEMS),
)
async def checkin_by_staff(
    body: StaffCheckin, staff: Scanner, session: SessionDep, settings: SettingsDep, request: Request, idem: IdempotencyDep
) -> Grant | JSONResponse:
    """A steward scans a resident (garbage sorting, meeting attendance...)

    Grants a check-in rule's points to the resident now, within the rule's cap and the community's budget; refused (not
    recorded) when the rule is off, capped or the budget is spent. Stewards and community workers.
    """
    result = await idem.run(
        session, body, lambda: earning.checkin_by_staff(session, settings, staff, body.rule_id, body.resident_id), GrantPublic
    )
    await _refresh_leaderboard(request, staff.community)
    return result


@router.post(
    "/checkins/qr",
    status_code=201,
    response_model=GrantPublic,
    responses=problem_responses(problems.CheckinCodeInvalid, *CHECKIN_PROBLEMS),
)
async def checkin_by_code(
    body: QrCheckin, resident: CurrentPrincipal, session: SessionDep, settings: SettingsDep, request: Request
) -> Grant:
    """A resident checks in with the day's QR code

    Grants the code's rule to the calling resident once per code; the code must be of today (local time). Any resident of the
    community.
    """
    grant = await earning.checkin_by_code(session, settings, resident, body.code)
    await _refresh_leaderboard(request, resident.community)
    return grant


# --- budget and awards ---------------------------------------------------------------------------


@router.post("/budget/fundings", response_model=BudgetPublic)
async def fund_budget(body: FundingCreate, worker: Worker, session: SessionDep) -> Budget:
    """Fund the community's points budget

    Adds points to the budget every grant and award draws from; grants stop (skipped or refused) when it is spent. Community
    workers only.
    """
    return await awards.fund_budget(session, worker, body.points)


@router.get("/budget", response_model=BudgetPublic)
async def get_budget(staff: Staff, session: SessionDep) -> Budget:
    """The community's points budget

    Funded, granted, clawed back and remaining points of the caller's community. Stewards, property admins and community
    workers.
    """
    return await awards.get_budget(session, staff.community)


@router.post(
    "/awards",
    status_code=201,
    response_model=AwardPublic,
    responses=problem_responses(problems.BudgetExhausted),
)
async def create_award(
    body: AwardCreate, worker: Worker, session: SessionDep, settings: SettingsDep, request: Request, idem: IdempotencyDep
) -> Award | JSONResponse:
    """Award or deduct points with a reason; large ones wait for a second worker

    A positive award draws on the budget and credits a lot; a negative one (负向扣分) takes points back and may leave a debt.
    Above the approval threshold (either sign) the award stays pending until another worker decides. Community workers only.
    """
    result = await idem.run(session, body, lambda: awards.create_award(session, settings, worker, body), AwardPublic)
    await _refresh_leaderboard(request, worker.community)
    return result


@router.get("/awards", response_model=Page[AwardPublic])
async def list_awards(
    worker: Worker, session: SessionDep, page: PageDep, status: AwardStatusFilter | None = None
) -> Page[AwardPublic]:
    """Awards, e.g. those pending approval

    The community's awards and deductions, newest first, optionally by status, paged by cursor. Community workers only.
    """
    items, cursor = await awards.list_awards(session, worker.community, status, page)
    return Page[AwardPublic](items=[AwardPublic.model_validate(a) for a in items], next_cursor=cursor)


@router.post(
    "/awards/{award_id}/approve",
    response_model=AwardPublic,
    responses=problem_responses(
        problems.AwardNotFound, problems.AwardNotPending, problems.SelfApproval, problems.BudgetExhausted
    ),
)
async def approve_award(
    award_id: uuid.UUID, worker: Worker, session: SessionDep, settings: SettingsDep, request: Request
) -> Award:
    """A second worker approves

    Applies a pending award: points are credited (or deducted) now. The worker who created it may not approve it. Community
    workers only.
    """
    award = await awards.decide_award(session, settings, worker, award_id, approve=True)
    await _refresh_leaderboard(request, worker.community)
    return award


@router.post(
    "/awards/{award_id}/reject",
    response_model=AwardPublic,
    responses=problem_responses(problems.AwardNotFound, problems.AwardNotPending, problems.SelfApproval),
)
async def reject_award(award_id: uuid.UUID, worker: Worker, session: SessionDep, settings: SettingsDep) -> Award:
    """A second worker rejects

    Closes a pending award without moving points. The worker who created it may not reject it. Community workers only.
    """
    return await awards.decide_award(session, settings, worker, award_id, approve=False)


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


@router.get("/me/lots", response_model=list[LotPublic])
async def my_lots(me: CurrentPrincipal, session: SessionDep) -> Sequence[Lot]:
    """My live lots, soonest expiry first

    The caller's lots with points left, in the order they are spent. Any member of the community.
    """
    return await statements.lots_of(session, me.community, me.subject)


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
    month: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM, local")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Leaderboard:
    """The community's monthly leaderboard

    Residents ranked by points earned in a local month (grants and awards net of deductions and clawbacks), served from a
    short-lived cache. Any member of the community.
    """
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
    responses=problem_responses(problems.CodeTaken),
)
async def create_reward(body: RewardCreate, worker: Worker, session: SessionDep, idem: IdempotencyDep) -> Reward | JSONResponse:
    """Add a reward to the catalogue

    A property service (fulfilled by property, by service code) or an item with stock, its price in points, an optional per-
    resident limit and active dates. Community workers only; the code is unique within the community.
    """
    return await idem.run(session, body, lambda: rewards.create_reward(session, worker, body), RewardPublic)


@router.get("/rewards", response_model=list[RewardPublic])
async def list_rewards(
    who: CurrentPrincipal, session: SessionDep, include_inactive: Annotated[bool, Query(description="Staff only")] = False
) -> Sequence[Reward]:
    """The reward catalogue

    The community's rewards by code; residents see the active ones, staff may ask for inactive ones too.
    """
    return await rewards.list_rewards(session, who.community, active_only=not (include_inactive and who.is_staff))


@router.patch(
    "/rewards/{reward_id}",
    response_model=RewardPublic,
    responses=problem_responses(problems.RewardNotFound, problems.OutOfStock),
)
async def update_reward(reward_id: uuid.UUID, body: RewardUpdate, worker: Worker, session: SessionDep) -> Reward:
    """Change a reward or add stock

    Changes only the fields sent; `add_stock` adds to an item's stock (a service has none). Community workers only.
    """
    return await rewards.update_reward(session, worker, reward_id, body)


@router.post(
    "/redemptions",
    status_code=201,
    response_model=RedemptionPublic,
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
) -> Redemption | JSONResponse:
    """Redeem points for a reward: the points are reserved until it is fulfilled

    Reserves the price (soonest-expiring lots first) and the stock at once, or refuses with the reason; a service reward asks
    property to fulfil it, an item waits for a worker to hand it over. Unanswered reservations are released at their deadline.
    Any resident of the community, for themselves.
    """
    return await idem.run(session, body, lambda: redemptions.redeem(session, settings, resident, body), RedemptionPublic)


@router.get("/me/redemptions", response_model=Page[RedemptionPublic])
async def my_redemptions(
    me: CurrentPrincipal, session: SessionDep, page: PageDep, status: RedemptionStatusFilter | None = None
) -> Page[RedemptionPublic]:
    """My redemptions

    The caller's redemptions, newest first, optionally by status, paged by cursor. Any member of the community.
    """
    items, cursor = await redemptions.list_redemptions(session, me.community, page, resident_id=me.subject, status=status)
    return Page[RedemptionPublic](items=[RedemptionPublic.model_validate(r) for r in items], next_cursor=cursor)


@router.get("/redemptions", response_model=Page[RedemptionPublic])
async def list_redemptions(
    staff: Staff, session: SessionDep, page: PageDep, status: RedemptionStatusFilter | None = None
) -> Page[RedemptionPublic]:
    """The community's redemptions (staff)

    Every redemption of the community, newest first, optionally by status, paged by cursor. Stewards, property admins and
    community workers.
    """
    items, cursor = await redemptions.list_redemptions(session, staff.community, page, resident_id=None, status=status)
    return Page[RedemptionPublic](items=[RedemptionPublic.model_validate(r) for r in items], next_cursor=cursor)


@router.get(
    "/redemptions/{redemption_id}",
    response_model=RedemptionPublic,
    responses=problem_responses(problems.RedemptionNotFound),
)
async def get_redemption(redemption_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep) -> Redemption:
    """One redemption

    A resident sees only their own redemptions (another looks like it does not exist); staff see any of the community.
    """
    return await redemptions.get_redemption(session, who, redemption_id)


@router.post(
    "/redemptions/{redemption_id}/cancel",
    response_model=RedemptionPublic,
    responses=problem_responses(problems.RedemptionNotFound, problems.RedemptionNotOpen),
)
async def cancel_redemption(
    redemption_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep, body: RedemptionSettle | None = None
) -> Redemption:
    """Cancel a reserved redemption: the points come back

    Releases a reservation: the points return to the lots they came from and the stock is restored. The resident who redeemed,
    or staff of the community; only a reserved redemption can be cancelled.
    """
    reason = (body.reason if body and body.reason else None) or "cancelled"
    return await redemptions.release_redemption(
        session, who.community, redemption_id, reason, resident_id=None if who.is_staff else who.subject
    )


@router.post(
    "/redemptions/{redemption_id}/fulfil",
    response_model=RedemptionPublic,
    responses=problem_responses(problems.RedemptionNotFound, problems.RedemptionNotOpen),
)
async def fulfil_redemption(redemption_id: uuid.UUID, worker: Worker, session: SessionDep) -> Redemption:
    """A worker hands over an item: the reservation is captured

    Captures a reserved redemption: the points are spent for good. Community workers only; service rewards are captured when
    property reports them done.
    """
    return await redemptions.capture_redemption(session, worker.community, redemption_id)
