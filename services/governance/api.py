"""Routes of earning: rules, check-ins, the budget and awards; and what every route module shares
(settings, role aliases, the leaderboard refresh). Points and rewards have their own modules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from services.governance import awards, earning, leaderboard, problems
from services.governance.models import Award, Budget, CheckinCode, Grant, Rule
from services.governance.schemas import (
    AwardCreate,
    AwardPublic,
    AwardStatusFilter,
    BudgetPublic,
    CheckinCodeCreate,
    CheckinCodePublic,
    FundingCreate,
    GrantPublic,
    QrCheckin,
    RuleCreate,
    RulePublic,
    RuleUpdate,
    StaffCheckin,
)
from services.governance.settings import Settings
from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Text
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


async def refresh_leaderboard(request: Request, community: str) -> None:
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


@router.get("/rules", response_model=Page[RulePublic])
async def list_rules(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[RulePublic]:
    """The community's earning rules

    Every rule of the caller's community, switched off or not, by code, paged by cursor. Anyone of the community may read them.
    """
    items, cursor = await earning.list_rules(session, who.community, page)
    return Page[RulePublic](items=[RulePublic.model_validate(r) for r in items], next_cursor=cursor)


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
    await refresh_leaderboard(request, staff.community)
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
    await refresh_leaderboard(request, resident.community)
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
    await refresh_leaderboard(request, worker.community)
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
    await refresh_leaderboard(request, worker.community)
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
