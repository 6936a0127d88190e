"""Notify's scheduled jobs; every replica runs them, and the locks and claims inside make that safe."""

from __future__ import annotations

import logging
from typing import Any

from services.kit.app import ScheduledJob
from services.notify import deliveries, inbox
from services.notify.settings import Settings

log = logging.getLogger("notify.jobs")


async def trim_inbox(state: Any) -> None:
    """Delete notifications past the retention, in batches, on one replica at a time."""
    settings: Settings = state.settings
    while True:
        async with state.sessionmaker() as session:
            trimmed = await inbox.trim(session, settings.retention_days)
        if trimmed:
            log.info("trimmed %d notifications", trimmed)
        if trimmed < 5000:
            return


async def deliver_sms(state: Any) -> None:
    """Send every SMS that is due, in rounds, until a round finds less than a full batch."""
    while await deliveries.deliver_round(state) >= deliveries.ROUND_SIZE:
        pass


def jobs(settings: Settings) -> list[ScheduledJob]:
    return [
        ScheduledJob("trim-inbox", settings.trim_every_s, trim_inbox),
        ScheduledJob("deliver-sms", settings.deliver_every_s, deliver_sms),
    ]
