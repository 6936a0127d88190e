"""Scheduled jobs: void pending service transfers whose confirmation time ran out, and move hours
past the validity period to the pool."""

from __future__ import annotations

import logging
from typing import Any

from services.kit.app import ScheduledJob
from services.timebank import service

log = logging.getLogger("timebank.jobs")


def expiry_job(every_s: float, batch: int) -> ScheduledJob:
    async def run(state: Any) -> None:
        async with state.sessionmaker() as session:
            voided = await service.expire_pending(session, limit=batch)
        if voided:
            log.info("voided %d expired pending transfers", voided)

    return ScheduledJob(name="expire-pending-transfers", every_s=every_s, run=run)


def hours_expiry_job(every_s: float, batch: int) -> ScheduledJob:
    async def run(state: Any) -> None:
        async with state.sessionmaker() as session:
            expired = await service.expire_hours(session, limit=batch)
        if expired:
            log.info("expired hours past the validity period on %d accounts", expired)

    return ScheduledJob(name="expire-hours", every_s=every_s, run=run)
