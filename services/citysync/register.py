"""The data-sharing register (数据共享登记): who may pull which feed, their revocations, and every pull made."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync.events import ConsumerRevoked, GrantRevoked, publisher
from services.citysync.models import DataConsumer, Grant, Pull
from services.citysync.problems import ConsumerExists, ConsumerInactive, ConsumerNotFound, GrantExists, GrantNotFound
from services.citysync.schemas import ConsumerCreate
from services.kit.auth import Principal
from services.kit.db import transaction


@dataclass
class ConsumerView:
    consumer: DataConsumer
    grants: list[Grant]


async def _consumer(session: AsyncSession, community: str, consumer_id: str, *, lock: bool = False) -> DataConsumer:
    query = select(DataConsumer).where(col(DataConsumer.community) == community, col(DataConsumer.id) == consumer_id)
    if lock:
        query = query.with_for_update()
    found: DataConsumer | None = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise ConsumerNotFound()
    return found


async def _grants(session: AsyncSession, community: str, consumer_ids: list[str]) -> dict[str, list[Grant]]:
    rows = (
        (
            await session.execute(
                select(Grant)
                .where(col(Grant.community) == community, col(Grant.consumer_id).in_(consumer_ids))
                .order_by(col(Grant.id))
            )
        )
        .scalars()
        .all()
    )
    out: dict[str, list[Grant]] = {cid: [] for cid in consumer_ids}
    for grant in rows:
        out[grant.consumer_id].append(grant)
    return out


async def register_consumer(session: AsyncSession, worker: Principal, data: ConsumerCreate) -> ConsumerView:
    async with transaction(session):
        now = datetime.now(UTC)
        inserted = (
            await session.execute(
                insert(DataConsumer)
                .values(
                    community=worker.community,
                    id=data.id,
                    name=data.name,
                    hash_key=secrets.token_bytes(32),
                    status="active",
                    registered_by=worker.subject,
                    registered_at=now,
                )
                .on_conflict_do_nothing()
                .returning(col(DataConsumer.id))
            )
        ).first()
        if inserted is None:
            raise ConsumerExists()
        return ConsumerView(await _consumer(session, worker.community, data.id), [])


async def get_consumer(session: AsyncSession, community: str, consumer_id: str) -> ConsumerView:
    async with transaction(session):
        consumer = await _consumer(session, community, consumer_id)
        return ConsumerView(consumer, (await _grants(session, community, [consumer_id]))[consumer_id])


async def list_consumers(session: AsyncSession, community: str, *, after: str | None, limit: int) -> list[ConsumerView]:
    async with transaction(session):
        query = select(DataConsumer).where(col(DataConsumer.community) == community)
        if after is not None:
            query = query.where(col(DataConsumer.id) > after)
        consumers = (await session.execute(query.order_by(col(DataConsumer.id)).limit(limit + 1))).scalars().all()
        grants = await _grants(session, community, [c.id for c in consumers])
        return [ConsumerView(c, grants[c.id]) for c in consumers]


async def revoke_consumer(session: AsyncSession, worker: Principal, consumer_id: str) -> ConsumerView:
    """Revoke a consumer: its next pull is refused (403). Revoking twice changes nothing."""
    async with transaction(session):
        consumer = await _consumer(session, worker.community, consumer_id, lock=True)
        if consumer.status != "revoked":
            consumer.status = "revoked"
            consumer.revoked_by = worker.subject
            consumer.revoked_at = datetime.now(UTC)
            await publisher.publish(
                session,
                ConsumerRevoked(consumer_id=consumer.id, community=consumer.community, revoked_at=consumer.revoked_at),
                key=consumer.id,
            )
        return ConsumerView(consumer, (await _grants(session, worker.community, [consumer_id]))[consumer_id])


async def grant_feed(session: AsyncSession, worker: Principal, consumer_id: str, scene: str) -> Grant:
    async with transaction(session):
        consumer = await _consumer(session, worker.community, consumer_id, lock=True)
        if consumer.status != "active":
            raise ConsumerInactive()
        # The partial unique index keeps one live grant per consumer and feed, however requests race.
        row = (
            await session.execute(
                insert(Grant)
                .values(
                    community=worker.community,
                    consumer_id=consumer_id,
                    scene=scene,
                    granted_by=worker.subject,
                    granted_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(
                    index_elements=["community", "consumer_id", "scene"], index_where=text("revoked_at IS NULL")
                )
                .returning(col(Grant.id))
            )
        ).first()
        if row is None:
            raise GrantExists()
        created: Grant = (await session.execute(select(Grant).where(col(Grant.id) == row[0]))).scalar_one()
        return created


async def revoke_grant(session: AsyncSession, worker: Principal, consumer_id: str, scene: str) -> Grant:
    """Revoke a live grant. A pull in flight holds the grant row FOR SHARE, so this waits for it;
    once it returns, no pull of this feed by this consumer can succeed."""
    async with transaction(session):
        await _consumer(session, worker.community, consumer_id)
        grant: Grant | None = (
            await session.execute(
                select(Grant)
                .where(
                    col(Grant.community) == worker.community,
                    col(Grant.consumer_id) == consumer_id,
                    col(Grant.scene) == scene,
                    col(Grant.revoked_at).is_(None),
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if grant is None:
            raise GrantNotFound()
        grant.revoked_at = datetime.now(UTC)
        grant.revoked_by = worker.subject
        await publisher.publish(
            session,
            GrantRevoked(consumer_id=consumer_id, community=worker.community, scene=scene, revoked_at=grant.revoked_at),
            key=consumer_id,
        )
        return grant


async def list_pulls(
    session: AsyncSession, community: str, *, consumer_id: str | None, scene: str | None, before_id: int | None, limit: int
) -> list[Pull]:
    """The pull register, newest first."""
    async with transaction(session):
        query = select(Pull).where(col(Pull.community) == community)
        if consumer_id is not None:
            query = query.where(col(Pull.consumer_id) == consumer_id)
        if scene is not None:
            query = query.where(col(Pull.scene) == scene)
        if before_id is not None:
            query = query.where(col(Pull.id) < before_id)
        return list((await session.execute(query.order_by(col(Pull.id).desc()).limit(limit + 1))).scalars().all())
