"""Scheduled work: publishing the daily statistics of days that have closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.citysync import service
from services.citysync.service import Keys
from services.citysync.settings import Settings
from services.kit.app import ScheduledJob


def jobs(settings: Settings, keys: Keys) -> list[ScheduledJob]:
    grace = timedelta(minutes=settings.stats_grace_minutes)

    async def publish_statistics(state: Any) -> None:
        async with state.sessionmaker() as session:
            # Several rounds when many days are due; each is its own transaction.
            while await service.publish_daily_statistics(session, now=datetime.now(UTC), grace=grace):
                pass

    async def publish_city_topics(state: Any) -> None:
        async with state.sessionmaker() as session:
            while await service.publish_city_topics(session, keys):
                pass

    return [
        ScheduledJob(name="daily-statistics", every_s=settings.stats_every_s, run=publish_statistics),
        ScheduledJob(name="city-topics", every_s=settings.topic_every_s, run=publish_city_topics),
    ]
