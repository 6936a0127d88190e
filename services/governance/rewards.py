"""The reward catalogue (积分兑换目录): property services and items with stock. Each function is one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.accounts import now_utc
from services.governance.models import Reward
from services.governance.schemas import RewardCreate, RewardUpdate
from services.kit.auth import Principal
from services.kit.db import transaction


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


async def list_rewards(session: AsyncSession, community: str, *, active_only: bool) -> Sequence[Reward]:
    async with transaction(session):
        query = select(Reward).where(col(Reward.community) == community).order_by(col(Reward.code))
        rewards = (await session.exec(query)).all()
        if not active_only:
            return rewards
        now = now_utc()
        return [r for r in rewards if domain.reward_is_active(r.enabled, r.active_from, r.active_until, now)]


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
