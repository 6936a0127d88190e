"""Scheduled work: publishing the daily statistics of days that have closed, and the city topics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from services.citysync import statistics, topics
from services.citysync.feeds import Keys
from services.citysync.settings import Settings
from services.kit.app import ScheduledJob


async def publish_statistics(grace: timedelta, state: Any) -> None:
    async with state.sessionmaker() as session:
        # Several rounds when many days are due; each is its own transaction.
        while await statistics.publish_daily_statistics(session, now=datetime.now(UTC), grace=grace):
            pass


async def publish_city_topics(keys: Keys, state: Any) -> None:
    async with state.sessionmaker() as session:
        while await topics.publish_city_topics(session, keys):
            pass


def jobs(settings: Settings, keys: Keys) -> list[ScheduledJob]:
    grace = timedelta(minutes=settings.stats_grace_minutes)
    return [
        ScheduledJob(name="daily-statistics", every_s=settings.stats_every_s, run=partial(publish_statistics, grace)),
        ScheduledJob(name="city-topics", every_s=settings.topic_every_s, run=partial(publish_city_topics, keys)),
    ]
