"""The daily statistics: each closed day's figures, published as a record of the `stats` feed
whenever they changed since last published."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import domain
from services.citysync.domain import STAT_COUNTERS
from services.citysync.feeds import append_record
from services.citysync.models import DailyStats
from services.kit.db import transaction

_RESPONSES = text("SELECT seconds FROM daily_alarm_responses WHERE community = :community AND day = :day")


async def publish_daily_statistics(session: AsyncSession, *, now: datetime, grace: timedelta, batch: int = 200) -> int:
    """Publish a statistics record for every closed day whose figures changed since last published.

    A late event for a day already published raises its revision, and the day is published again:
    consumers keep the highest revision of each (community, day).
    """
    last_closed = domain.local_day(now - grace) - timedelta(days=1)
    async with transaction(session):
        days = (
            (
                await session.execute(
                    select(DailyStats)
                    .where(col(DailyStats.revision) > col(DailyStats.published_revision), col(DailyStats.day) <= last_closed)
                    .order_by(col(DailyStats.community), col(DailyStats.day))
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        for stats in days:
            counters = {name: int(getattr(stats, name)) for name in STAT_COUNTERS}
            responses = (await session.execute(_RESPONSES, {"community": stats.community, "day": stats.day})).scalars().all()
            payload = domain.daily_statistics(
                stats.community, stats.day, stats.revision, counters, stats.minutes_by_type, stats.spots_used, list(responses)
            )
            day_end = datetime.combine(stats.day + timedelta(days=1), time.min, tzinfo=domain.LOCAL_TZ)
            await append_record(
                session,
                community=stats.community,
                scene="stats",
                record_type=domain.DAILY_STATISTICS,
                schema_version=domain.STATS_SCHEMA_VERSION,
                at=day_end.astimezone(UTC),
                subject_id=f"{stats.community}/{stats.day.isoformat()}",
                source_event_id=f"stats:{stats.community}:{stats.day.isoformat()}:r{stats.revision}",
                payload=payload,
            )
            stats.published_revision = stats.revision
        return len(days)
