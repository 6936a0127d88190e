"""Scheduled jobs: the lot-expiry sweep and the redemption saga's timeout."""

from __future__ import annotations

import logging
from typing import Any

from services.governance import accounts, redemptions
from services.governance.settings import Settings
from services.kit.app import ScheduledJob

log = logging.getLogger("governance.jobs")


async def expire_lots(state: Any) -> None:
    """Expire every due lot (the nightly sweep; it runs more often and finds nothing most times)."""
    while True:
        async with state.sessionmaker() as session:
            points = await accounts.expire_due_lots(session)
        if points == 0:
            return
        log.info("expired %d points", points)


async def release_overdue_redemptions(state: Any) -> None:
    while True:
        async with state.sessionmaker() as session:
            released = await redemptions.release_overdue(session)
        if released:
            log.info("released %d overdue redemptions", released)
        if released < 100:
            return


def make_jobs(settings: Settings) -> list[ScheduledJob]:
    return [
        ScheduledJob("expire-lots", settings.expiry_job_every_s, expire_lots),
        ScheduledJob("release-overdue-redemptions", settings.redemption_timeout_job_every_s, release_overdue_redemptions),
    ]
