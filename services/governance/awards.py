"""The community's points budget and the awards (and deductions) a community worker makes.

Each public function is one transaction. An award above the threshold waits for a second worker
(四眼原则); a deduction (负向扣分) burns points and never refills the budget.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.accounts import credit_lot, draw_budget, expiry_after, hold_account, now_utc, take_points_back
from services.governance.events import PointsGranted, publisher
from services.governance.models import Award, Budget
from services.governance.schemas import AwardCreate
from services.governance.settings import Settings
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page


async def fund_budget(session: AsyncSession, worker: Principal, points: int) -> Budget:
    async with transaction(session):
        stmt = insert(Budget).values(community=worker.community, funded=points, remaining=points)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(Budget.community)],
            set_={"funded": col(Budget.funded) + points, "remaining": col(Budget.remaining) + points},
        )
        budget: Budget = (await session.execute(stmt.returning(Budget))).scalars().one()
        return budget


async def get_budget(session: AsyncSession, community: str) -> Budget:
    async with transaction(session):
        found = (await session.exec(select(Budget).where(col(Budget.community) == community))).one_or_none()
        return found or Budget(community=community, funded=0, granted=0, clawed_back=0, remaining=0)


async def _apply_award(session: AsyncSession, settings: Settings, award: Award) -> None:
    now = now_utc()
    if award.points > 0:
        if not await draw_budget(session, award.community, award.points):
            raise problems.BudgetExhausted()
        acct = await hold_account(session, award.community, award.resident_id)
        await credit_lot(
            session,
            acct,
            award.points,
            expiry_after(now, settings.award_lot_validity_days),
            "award",
            ref_type="award",
            ref_id=str(award.id),
            reason=award.reason,
        )
        await publisher.publish(
            session,
            PointsGranted(
                grant_id=str(award.id),
                community=award.community,
                resident_id=award.resident_id,
                points=award.points,
                source="award",
                trigger="award",
                granted_at=now,
            ),
            key=str(award.id),
        )
    else:
        # A deduction burns points; the budget is not refilled by penalties.
        acct = await hold_account(session, award.community, award.resident_id)
        await take_points_back(
            session, acct, -award.points, "deduction", own_lot=None, ref_type="award", ref_id=str(award.id), reason=award.reason
        )
    award.status = "applied"


async def create_award(session: AsyncSession, settings: Settings, worker: Principal, data: AwardCreate) -> Award:
    async with transaction(session):
        award = Award(
            community=worker.community,
            resident_id=data.resident_id,
            points=data.points,
            reason=data.reason,
            status="pending",
            created_by=worker.subject,
        )
        session.add(award)
        await session.flush()
        if not domain.award_needs_approval(data.points, settings.award_approval_threshold):
            await _apply_award(session, settings, award)
            await session.flush()
        return award


async def decide_award(
    session: AsyncSession, settings: Settings, worker: Principal, award_id: uuid.UUID, *, approve: bool
) -> Award:
    async with transaction(session):
        query = select(Award).where(col(Award.id) == award_id, col(Award.community) == worker.community)
        award = (await session.exec(query.with_for_update())).one_or_none()
        if award is None:
            raise problems.AwardNotFound()
        if award.status != "pending":
            raise problems.AwardNotPending()
        if award.created_by == worker.subject:
            raise problems.SelfApproval()
        award.decided_by = worker.subject
        award.decided_at = now_utc()
        if approve:
            await _apply_award(session, settings, award)
        else:
            award.status = "rejected"
        await session.flush()
        return award


async def list_awards(
    session: AsyncSession, community: str, status: str | None, page: PageParams
) -> tuple[list[Award], str | None]:
    async with transaction(session):
        q = select(Award).where(col(Award.community) == community)
        if status:
            q = q.where(col(Award.status) == status)
        after = page.after()
        if after:
            at = datetime.fromisoformat(after[0])
            q = q.where(or_(col(Award.created_at) < at, and_(col(Award.created_at) == at, col(Award.id) < uuid.UUID(after[1]))))
        q = q.order_by(col(Award.created_at).desc(), col(Award.id).desc()).limit(page.limit + 1)
        rows = list((await session.exec(q)).all())
        return make_page(rows, page.limit, lambda a: [a.created_at.isoformat(), str(a.id)])
