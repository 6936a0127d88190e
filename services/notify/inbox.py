"""A person's in-app inbox: list, count unread, mark read, delete. Every query is scoped to the caller
(community and subject), so another person's notification is simply not found."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import table_of, transaction
from services.kit.pagination import PageParams, make_page
from services.notify.models import Notification
from services.notify.problems import NotificationNotFound

notifications = table_of(Notification)


def _mine(who: Principal) -> Any:
    return (notifications.c.community == who.community) & (notifications.c.recipient_id == who.subject)


async def list_notifications(
    session: AsyncSession, who: Principal, page: PageParams, unread: bool | None
) -> tuple[list[Any], str | None]:
    query = select(notifications).where(_mine(who))
    after = page.after()
    if after:
        query = query.where(notifications.c.seq < int(after[0]))
    if unread is not None:
        query = query.where(notifications.c.read_at.is_(None) if unread else notifications.c.read_at.isnot(None))
    async with transaction(session):
        rows = (await session.execute(query.order_by(notifications.c.seq.desc()).limit(page.limit + 1))).all()
    return make_page(list(rows), page.limit, lambda row: [row.seq])


async def since(session: AsyncSession, community: str, recipient: str, after_seq: int, limit: int = 500) -> list[Any]:
    """A recipient's notifications numbered after `after_seq`, oldest first (what a stream missed)."""
    query = (
        select(notifications)
        .where(notifications.c.community == community, notifications.c.recipient_id == recipient, notifications.c.seq > after_seq)
        .order_by(notifications.c.seq)
        .limit(limit)
    )
    async with transaction(session):
        return list((await session.execute(query)).all())


async def unread_count(session: AsyncSession, who: Principal) -> int:
    async with transaction(session):
        query = select(func.count()).select_from(notifications).where(_mine(who), notifications.c.read_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def mark_read(session: AsyncSession, who: Principal, notification_id: int) -> Any:
    async with transaction(session):
        row = (
            await session.execute(
                update(notifications)
                .where(_mine(who), notifications.c.id == notification_id)
                .values(read_at=func.coalesce(notifications.c.read_at, datetime.now(UTC)))
                .returning(notifications)
            )
        ).first()
    if row is None:
        raise NotificationNotFound()
    return row


async def mark_all_read(session: AsyncSession, who: Principal) -> int:
    async with transaction(session):
        result = await session.execute(
            update(notifications).where(_mine(who), notifications.c.read_at.is_(None)).values(read_at=datetime.now(UTC))
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_notification(session: AsyncSession, who: Principal, notification_id: int) -> None:
    async with transaction(session):
        result = await session.execute(delete(notifications).where(_mine(who), notifications.c.id == notification_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotificationNotFound()


async def trim(session: AsyncSession, retention_days: int, batch: int = 5000) -> int:
    """Delete up to `batch` notifications older than the retention; one replica at a time.

    The transaction-scoped advisory lock lets one replica trim while the others' runs return at once.
    """
    async with transaction(session):
        locked = (await session.execute(select(func.pg_try_advisory_xact_lock(func.hashtextextended("notify.trim", 0))))).scalar()
        if not locked:
            return 0
        cutoff = func.now() - func.make_interval(0, 0, 0, retention_days)
        oldest = select(notifications.c.id).where(notifications.c.created_at < cutoff).limit(batch).scalar_subquery()
        result = await session.execute(delete(notifications).where(notifications.c.id.in_(oldest)))
    return int(result.rowcount)  # type: ignore[attr-defined]
