"""The reward catalogue (积分兑换目录): property services and items with stock. Each function is one transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import problems
from services.governance.accounts import now_utc
from services.governance.models import Reward
from services.governance.schemas import RewardCreate, RewardUpdate
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page


async def create_reward(session: AsyncSession, worker: Principal, data: RewardCreate) -> Reward:
    async with transaction(session):
        reward = Reward(community=worker.community, **data.model_dump())
        reward.kind = data.kind.value
        session.add(reward)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise problems.CodeTaken() from None
        return reward


def reward_active_at(at: datetime) -> ColumnElement[bool]:
    """`domain.reward_is_active` as SQL, so a page of active rewards is filtered before it is cut;
    tests/governance/test_reward_activity.py feeds both the same cases."""
    starts, ends = col(Reward.active_from), col(Reward.active_until)
    return and_(col(Reward.enabled), or_(starts.is_(None), starts <= at), or_(ends.is_(None), ends > at))


async def list_rewards(
    session: AsyncSession, community: str, page: PageParams, *, active_only: bool
) -> tuple[list[Reward], str | None]:
    """The community's rewards by code (unique in the community; its unique index serves the keyset)."""
    query = select(Reward).where(col(Reward.community) == community)
    if active_only:
        query = query.where(reward_active_at(now_utc()))
    after = page.after_key(str)
    if after:
        query = query.where(col(Reward.code) > after[0])
    async with transaction(session):
        rows = list((await session.exec(query.order_by(col(Reward.code)).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda reward: [reward.code])


async def update_reward(session: AsyncSession, worker: Principal, reward_id: uuid.UUID, data: RewardUpdate) -> Reward:
    async with transaction(session):
        query = select(Reward).where(col(Reward.id) == reward_id, col(Reward.community) == worker.community)
        reward = (await session.exec(query.with_for_update())).one_or_none()
        if reward is None:
            raise problems.RewardNotFound()
        values = data.model_dump(exclude_unset=True)
        add_stock = values.pop("add_stock", None)
        for key, value in values.items():
            setattr(reward, key, value)
        if add_stock:
            if reward.stock is None:
                raise problems.OutOfStock(("服务类项目没有库存", "A service reward has no stock"))
            reward.stock += add_stock
        await session.flush()
        return reward
