"""Security's scheduled jobs. Every replica runs them: the sweeps change each row once (conditional
UPDATEs, unique incident keys) and the purge holds an advisory lock, so running twice is harmless."""

from __future__ import annotations

import logging
from typing import Any

from services.kit.app import ScheduledJob
from services.security import access, alarms, devices
from services.security.settings import Settings

log = logging.getLogger("security.jobs")


async def purge_access_events(state: Any) -> None:
    """Delete access events past the retention, in batches, on one replica at a time."""
    settings: Settings = state.settings
    while True:
        async with state.sessionmaker() as session:
            purged = await access.purge(session, settings.access_retention_days)
        if purged:
            log.info("purged %d access events", purged)
        if purged is None or purged < 5000:
            return


async def sweep_devices(state: Any) -> None:
    settings: Settings = state.settings
    async with state.sessionmaker() as session:
        await devices.sweep_offline(session, settings.offline_after_missed_beats)


async def sweep_watches(state: Any) -> None:
    async with state.sessionmaker() as session:
        await alarms.sweep_inactivity(session)


def jobs(settings: Settings) -> list[ScheduledJob]:
    return [
        ScheduledJob("purge-access-events", settings.purge_every_s, purge_access_events),
        ScheduledJob("sweep-devices", settings.sweep_every_s, sweep_devices),
        ScheduledJob("sweep-watches", settings.sweep_every_s, sweep_watches),
    ]
