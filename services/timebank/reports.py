"""Reads for staff and the community: the pool, the pending confirmations, the month's summary."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, and_, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.timebank import domain, ledger
from services.timebank.community import community_settings
from services.timebank.models import ACCOUNTS, MEMBERS, TRANSFERS
from services.timebank.schemas import CommunitySummary, ServiceTypeSummary


@dataclass(frozen=True)
class PoolView:
    """The pool and the community account, with the minutes still promised to volunteers."""

    pool: Row[Any]
    community_account: Row[Any]
    open_pending_count: int
    open_pending_minutes: int


async def read_account(session: AsyncSession, account_id: uuid.UUID) -> Row[Any]:
    return (await session.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id))).one()


async def pool_view(session: AsyncSession, community: str) -> PoolView:
    async with transaction(session):
        await community_settings(session, community)
        pool = await read_account(session, ledger.pool_account_id(community))
        community_account = await read_account(session, ledger.community_account_id(community))
        count, minutes = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(TRANSFERS.c.amount_minutes), 0)).where(
                    TRANSFERS.c.community == community, TRANSFERS.c.phase == "pending", TRANSFERS.c.resolution.is_(None)
                )
            )
        ).one()
    return PoolView(pool, community_account, int(count), int(minutes))


async def list_pending(
    session: AsyncSession, community: str, resolution: str | None, page: PageParams
) -> tuple[list[Row[Any]], str | None]:
    """Pending service transfers awaiting confirmation (resolution None), disputed ('voided') or
    expired, each with the reason its void was written with (the dispute's; null while awaiting):
    the void points at its pending transfer, and `uq_tb_transfers_pending_id` finds it."""
    void = TRANSFERS.alias("void")
    q = (
        select(TRANSFERS, void.c.reason.label("resolution_reason"))
        .outerjoin(void, and_(void.c.pending_id == TRANSFERS.c.id, void.c.phase == "voided"))
        .where(TRANSFERS.c.community == community, TRANSFERS.c.phase == "pending")
    )
    q = q.where(TRANSFERS.c.resolution.is_(None) if resolution is None else TRANSFERS.c.resolution == resolution)
    after = page.after()
    if after:
        q = q.where(TRANSFERS.c.seq < int(after[0]))
    async with transaction(session):
        rows = list((await session.execute(q.order_by(TRANSFERS.c.seq.desc()).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda r: [r.seq])


async def summary(session: AsyncSession, community: str, month: date) -> CommunitySummary:
    """Hours served in a month (local time), by service type, net of reversed services."""
    start = datetime(month.year, month.month, 1, tzinfo=domain.LOCAL_TZ)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=domain.LOCAL_TZ)
    reversed_ids = select(TRANSFERS.c.reverses_id).where(TRANSFERS.c.reverses_id.is_not(None))
    async with transaction(session):
        rows = (
            await session.execute(
                select(TRANSFERS.c.service_type, func.count(), func.sum(TRANSFERS.c.amount_minutes))
                .where(
                    TRANSFERS.c.community == community,
                    TRANSFERS.c.kind == "service",
                    TRANSFERS.c.phase == "posted",
                    TRANSFERS.c.created_at >= start,
                    TRANSFERS.c.created_at < end,
                    TRANSFERS.c.id.not_in(reversed_ids),
                )
                .group_by(TRANSFERS.c.service_type)
                .order_by(TRANSFERS.c.service_type)
            )
        ).all()
        members, volunteers, elders = (
            await session.execute(
                select(func.count(), func.count().filter(MEMBERS.c.is_volunteer), func.count().filter(MEMBERS.c.is_elder)).where(
                    MEMBERS.c.community == community
                )
            )
        ).one()
    by_type = [ServiceTypeSummary(service_type=r[0] or "other", services=int(r[1]), minutes=int(r[2])) for r in rows]
    return CommunitySummary(
        community=community,
        month=f"{month.year:04d}-{month.month:02d}",
        services=sum(t.services for t in by_type),
        minutes_served=sum(t.minutes for t in by_type),
        by_service_type=by_type,
        members=int(members),
        volunteers=int(volunteers),
        elders=int(elders),
    )
