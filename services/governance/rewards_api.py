"""Routes of the reward catalogue and the redemption saga."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.governance import problems, redemptions, rewards
from services.governance.api import SettingsDep, Staff, Worker
from services.governance.models import Redemption, Reward
from services.governance.schemas import (
    RedemptionCreate,
    RedemptionPublic,
    RedemptionSettle,
    RedemptionStatusFilter,
    RewardCreate,
    RewardPublic,
    RewardUpdate,
)
from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses

router = APIRouter(tags=["governance"])


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


@router.get("/rewards", response_model=Page[RewardPublic])
async def list_rewards(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    include_inactive: Annotated[bool, Query(description="Staff only")] = False,
) -> Page[RewardPublic]:
    """The reward catalogue

    The community's rewards by code, paged by cursor; residents see the active ones, staff may ask for inactive ones too.
    """
    active_only = not (include_inactive and who.is_staff)
    items, cursor = await rewards.list_rewards(session, who.community, page, active_only=active_only)
    return Page[RewardPublic](items=[RewardPublic.model_validate(r) for r in items], next_cursor=cursor)


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
