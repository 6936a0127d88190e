"""Parking's scheduled jobs: expire unpaid holds, keep weekly windows expanded to the horizon, remind
bookers of a start and tell them of an overstay."""

from __future__ import annotations

import logging
from typing import Any

from services.kit.app import ScheduledJob
from services.parking import bookings, reminders, windows
from services.parking.settings import Settings

log = logging.getLogger("parking.jobs")


async def expire_holds(state: Any) -> None:
    async with state.sessionmaker() as session:
        expired = await bookings.expire_holds(session)
    if expired:
        log.info("expired %d unpaid holds", expired)


async def extend_weekly_windows(state: Any) -> None:
    settings: Settings = state.settings
    async with state.sessionmaker() as session:
        added = await windows.extend_weekly_windows(session, settings.weekly_horizon_days)
    if added:
        log.info("added %d weekly window occurrences", added)


async def remind_bookings(state: Any) -> None:
    async with state.sessionmaker() as session:
        starting = await reminders.remind_starting(session)
        overstaying = await reminders.remind_overstays(session)
    if starting or overstaying:
        log.info("reminded %d bookings of their start and %d of an overstay", starting, overstaying)


def jobs(settings: Settings) -> list[ScheduledJob]:
    return [
        ScheduledJob("expire-holds", settings.expire_holds_every_s, expire_holds),
        ScheduledJob("extend-weekly-windows", settings.extend_windows_every_s, extend_weekly_windows),
        ScheduledJob("remind-bookings", settings.remind_bookings_every_s, remind_bookings),
    ]
