"""A community's time bank: its settings row and its pool and community accounts, made on first use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import transaction
from services.timebank import ledger
from services.timebank.models import ACCOUNTS, SETTINGS
from services.timebank.schemas import CommunitySettingsChange, CommunitySettingsIn


async def ensure_community(session: AsyncSession, community: str) -> None:
    """Create the community's settings row and its pool and community accounts if missing."""
    await session.execute(insert(SETTINGS).values(community=community).on_conflict_do_nothing())
    await session.execute(
        insert(ACCOUNTS)
        .values(
            [
                {
                    "id": ledger.pool_account_id(community),
                    "community": community,
                    "kind": "pool",
                    "owner_id": None,
                    "debits_must_not_exceed_credits": True,
                },
                {
                    "id": ledger.community_account_id(community),
                    "community": community,
                    "kind": "community",
                    "owner_id": None,
                    "debits_must_not_exceed_credits": False,
                },
            ]
        )
        .on_conflict_do_nothing()
    )


async def community_settings(session: AsyncSession, community: str) -> Row[Any]:
    """The community's settings row, made with the defaults on first use, in the caller's transaction."""
    row = (await session.execute(select(SETTINGS).where(SETTINGS.c.community == community))).first()
    if row is None:
        await ensure_community(session, community)
        row = (await session.execute(select(SETTINGS).where(SETTINGS.c.community == community))).one()
    return row


async def read_settings(session: AsyncSession, community: str) -> Row[Any]:
    async with transaction(session):
        return await community_settings(session, community)


async def update_settings(session: AsyncSession, community: str, data: CommunitySettingsIn | CommunitySettingsChange) -> Row[Any]:
    """Replace every setting (PUT) or only those given (PATCH). One UPDATE of the given columns, so two
    workers changing different settings at once both keep their change."""
    values = data.model_dump(exclude_unset=isinstance(data, CommunitySettingsChange))
    async with transaction(session):
        await ensure_community(session, community)
        await session.execute(update(SETTINGS).where(SETTINGS.c.community == community).values(**values, updated_at=func.now()))
        return (await session.execute(select(SETTINGS).where(SETTINGS.c.community == community))).one()
