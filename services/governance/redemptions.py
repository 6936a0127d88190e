"""The redemption saga: points (and stock) reserved for a reward, then captured when it is handed
over or fulfilled by property, or released when it is cancelled, fails or times out. Each public
function is one transaction, except `redeem`, which is two statements (see there)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.accounts import LOTS, expire_lots_of, hold_account, now_utc, record_entry
from services.governance.domain import RewardKind
from services.governance.events import RedemptionCaptured, RedemptionReleased, RedemptionReserved, publisher
from services.governance.models import Account, Allocation, Redemption, Reward
from services.governance.schemas import RedemptionCreate
from services.governance.settings import Settings
from services.kit.auth import Principal
from services.kit.db import fetch_alone, table_of, transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, make_page

ACCOUNTS = table_of(Account)
ALLOCATIONS = table_of(Allocation)
REWARDS = table_of(Reward)


@dataclass(frozen=True, slots=True)
class RewardTerms:
    """What a redemption reads of a reward (`_REWARD_FOR_REDEMPTION_SQL`)."""

    reward_id: uuid.UUID
    name: str
    kind: str
    service_code: str | None
    points: int
    stock: int | None
    per_resident_limit: int | None
    active_from: datetime | None
    active_until: datetime | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `gov_reserve` answers (`_RESERVE_SQL`)."""

    due: int
    available: int
    already: int
    checks_passed: bool
    created_at: datetime | None


T = TypeVar("T", RewardTerms, Reservation)


def _typed(cls: type[T], row: Any) -> T:
    """A row of `fetch_alone` (attribute access) as the dataclass whose fields it holds."""
    return cls(*(getattr(row, f.name) for f in fields(cls)))


_REWARD_FOR_REDEMPTION_SQL = (
    "SELECT id AS reward_id, name, kind, service_code, points, stock, per_resident_limit, active_from, active_until, "
    "enabled FROM gov_rewards WHERE id = $1 AND community = $2"
)

# The reservation (sql/gov_reserve.sql): the account locked, the checks and, only when all pass, the
# writes (lots in spending order, the redemption and its allocations, the balance and its statement
# line, the stock, the event). Lots due to expire are not handled there: `due` > 0 sends the caller
# to expire them first (with their statement lines), as domain.plan_spend skips them. The spending
# order is domain.spending_order's: soonest expiry first, unexpiring last, ties by lot id.
_RESERVE_SQL = (
    "SELECT due, available, already, checks_passed, created_at FROM gov_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10, $11, $12, $13, $14, $15, $16, $17, $18)"
)
_NO_EVENT: dict[str, Any] = dict.fromkeys(
    ("event_id", "event_topic", "event_type", "event_source", "event_data", "traceparent", "tracestate")
)


async def redeem(session: AsyncSession, settings: Settings, resident: Principal, data: RedemptionCreate) -> Redemption:
    """Reserve points (and stock) for a reward; ask property to fulfil a service reward.

    Two statements, each its own transaction unless the caller has one open (`fetch_alone`): the
    reward read, then `gov_reserve`, which holds the account and stock locks only while it runs.
    """
    now = now_utc()
    community, resident_id = resident.community, resident.subject
    row = await fetch_alone(session, _REWARD_FOR_REDEMPTION_SQL, data.reward_id, community)
    if row is None:
        raise problems.RewardNotFound()
    reward = _typed(RewardTerms, row)
    if not domain.reward_is_active(reward.enabled, reward.active_from, reward.active_until, now):
        raise problems.RewardInactive()
    cost = reward.points * data.quantity
    timeout = settings.redemption_timeout_s if reward.kind == RewardKind.service else settings.item_pickup_timeout_s
    redemption = Redemption(
        id=uuid.uuid4(),
        community=community,
        resident_id=resident_id,
        reward_id=reward.reward_id,
        quantity=data.quantity,
        points=cost,
        status="reserved",
        deadline=now + timedelta(seconds=timeout),
    )
    event = _NO_EVENT
    if reward.kind == RewardKind.service:
        assert reward.service_code is not None
        event = publisher.outbox_params(
            RedemptionReserved(
                redemption_id=str(redemption.id),
                community=community,
                resident_id=resident_id,
                reward_id=str(reward.reward_id),
                service_code=reward.service_code,
                points=cost,
                quantity=data.quantity,
            )
        )
    args = (
        community,
        resident_id,
        reward.reward_id,
        redemption.id,
        now,
        cost,
        data.quantity,
        reward.per_resident_limit,
        reward.stock is not None,
        redemption.deadline,
        reward.name,
        event["event_id"],
        event["event_topic"],
        event["event_type"],
        event["event_source"],
        event["event_data"],
        event["traceparent"],
        event["tracestate"],
    )
    outcome = _typed(Reservation, await fetch_alone(session, _RESERVE_SQL, *args))
    if outcome.due:
        # Rare: lots past their expiry that the sweep has not reached. Expire them (each with its
        # statement line) under the account lock, then reserve from what is left, in one transaction.
        async with transaction(session):
            acct = await hold_account(session, community, resident_id)
            await expire_lots_of(session, acct, now)
            outcome = _typed(Reservation, await fetch_alone(session, _RESERVE_SQL, *args))
    if not domain.within_resident_limit(reward.per_resident_limit, outcome.already, data.quantity):
        raise problems.ResidentLimitExceeded(limit=reward.per_resident_limit, already=outcome.already)
    if outcome.available < cost:
        raise problems.InsufficientPoints(
            (f"需要 {cost} 积分，可用 {outcome.available}", f"Needs {cost} points, {outcome.available} available"),
            needed=cost,
            available=outcome.available,
        )
    if outcome.created_at is None:
        # Every check on the account passed, so what stopped the writes was the stock.
        raise problems.OutOfStock()
    redemption.created_at = outcome.created_at
    if event["event_id"] is not None:
        outbox_written(session)
    return redemption


async def _locked_redemption(
    session: AsyncSession, community: str, redemption_id: uuid.UUID, resident_id: str | None = None
) -> Redemption:
    q = select(Redemption).where(col(Redemption.id) == redemption_id, col(Redemption.community) == community)
    if resident_id is not None:
        q = q.where(col(Redemption.resident_id) == resident_id)
    found = (await session.exec(q.with_for_update())).one_or_none()
    if found is None:
        raise problems.RedemptionNotFound()
    return found


async def _return_points(session: AsyncSession, redemption: Redemption) -> None:
    """A release gives the points back to the lots they came from (an expired lot loses them at the
    next sweep) and the units back to the reward's stock."""
    allocations = (
        await session.execute(
            select(ALLOCATIONS.c.lot_id, ALLOCATIONS.c.points).where(ALLOCATIONS.c.redemption_id == redemption.id)
        )
    ).all()
    for lot_id, points in allocations:
        await session.execute(update(LOTS).where(LOTS.c.id == lot_id).values(remaining=LOTS.c.remaining + points))
    reward = (await session.exec(select(Reward).where(col(Reward.id) == redemption.reward_id))).one()
    if reward.stock is not None:
        await session.execute(
            update(REWARDS).where(REWARDS.c.id == reward.id).values(stock=REWARDS.c.stock + redemption.quantity)
        )


async def _settle(
    session: AsyncSession, redemption: Redemption, action: str, *, ticket_id: str | None = None, reason: str | None = None
) -> None:
    try:
        status = domain.next_redemption_status(domain.RedemptionStatus(redemption.status), action)
    except domain.RedemptionNotOpen:
        raise problems.RedemptionNotOpen(redemption_status=redemption.status) from None
    acct = await hold_account(session, redemption.community, redemption.resident_id)
    await session.execute(
        update(ACCOUNTS)
        .where(ACCOUNTS.c.community == acct.community, ACCOUNTS.c.resident_id == acct.resident_id)
        .values(reserved=ACCOUNTS.c.reserved - redemption.points)
    )
    redemption.status = status.value
    redemption.settled_at = now_utc()
    if status is domain.RedemptionStatus.captured:
        redemption.ticket_id = ticket_id
        await publisher.publish(
            session,
            RedemptionCaptured(
                redemption_id=str(redemption.id),
                community=redemption.community,
                resident_id=redemption.resident_id,
                points=redemption.points,
                ticket_id=ticket_id,
            ),
            key=str(redemption.id),
        )
        return
    await _return_points(session, redemption)
    redemption.release_reason = reason
    await record_entry(
        session, acct, "refund", redemption.points, ref_type="redemption", ref_id=str(redemption.id), reason=reason
    )
    await publisher.publish(
        session,
        RedemptionReleased(
            redemption_id=str(redemption.id),
            community=redemption.community,
            resident_id=redemption.resident_id,
            points=redemption.points,
            reason=reason or "released",
        ),
        key=str(redemption.id),
    )


async def capture_redemption(
    session: AsyncSession, community: str, redemption_id: uuid.UUID, ticket_id: str | None = None
) -> Redemption:
    async with transaction(session):
        redemption = await _locked_redemption(session, community, redemption_id)
        await _settle(session, redemption, "capture", ticket_id=ticket_id)
        return redemption


async def release_redemption(
    session: AsyncSession, community: str, redemption_id: uuid.UUID, reason: str, *, resident_id: str | None = None
) -> Redemption:
    async with transaction(session):
        redemption = await _locked_redemption(session, community, redemption_id, resident_id)
        await _settle(session, redemption, "release", reason=reason)
        return redemption


async def settle_from_property(
    session: AsyncSession,
    community: str,
    redemption_id: str,
    *,
    fulfilled: bool,
    ticket_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Property's answer. A late answer for a redemption already settled (e.g. timed out) is ignored."""
    try:
        rid = uuid.UUID(redemption_id)
    except ValueError:
        return
    async with transaction(session):
        query = select(Redemption).where(col(Redemption.id) == rid, col(Redemption.community) == community)
        found = (await session.exec(query.with_for_update())).one_or_none()
        if found is None or found.status != "reserved":
            return
        if fulfilled:
            await _settle(session, found, "capture", ticket_id=ticket_id)
        else:
            await _settle(session, found, "release", reason=f"property: {reason or 'failed'}")


async def release_overdue(session: AsyncSession, *, limit: int = 100) -> int:
    """The saga's timeout: release reserved redemptions past their deadline."""
    async with transaction(session):
        query = (
            select(Redemption)
            .where(col(Redemption.status) == "reserved", col(Redemption.deadline) <= now_utc())
            .order_by(col(Redemption.deadline))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        due = (await session.exec(query)).all()
        for redemption in due:
            await _settle(session, redemption, "release", reason="timeout")
        return len(due)


async def get_redemption(session: AsyncSession, caller: Principal, redemption_id: uuid.UUID) -> Redemption:
    async with transaction(session):
        q = select(Redemption).where(col(Redemption.id) == redemption_id, col(Redemption.community) == caller.community)
        if not caller.is_staff:
            q = q.where(col(Redemption.resident_id) == caller.subject)
        found = (await session.exec(q)).one_or_none()
        if found is None:
            raise problems.RedemptionNotFound()
        return found


async def list_redemptions(
    session: AsyncSession, community: str, page: PageParams, *, resident_id: str | None, status: str | None
) -> tuple[list[Redemption], str | None]:
    async with transaction(session):
        q = select(Redemption).where(col(Redemption.community) == community)
        if resident_id is not None:
            q = q.where(col(Redemption.resident_id) == resident_id)
        if status is not None:
            q = q.where(col(Redemption.status) == status)
        after = page.after()
        if after:
            at = datetime.fromisoformat(after[0])
            q = q.where(
                or_(
                    col(Redemption.created_at) < at,
                    and_(col(Redemption.created_at) == at, col(Redemption.id) < uuid.UUID(after[1])),
                )
            )
        q = q.order_by(col(Redemption.created_at).desc(), col(Redemption.id).desc()).limit(page.limit + 1)
        rows = list((await session.exec(q)).all())
        return make_page(rows, page.limit, lambda r: [r.created_at.isoformat(), str(r.id)])
