"""Scheduled jobs: void pending service transfers whose confirmation time ran out, and move hours
past the validity period to the pool."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.app import ScheduledJob
from services.timebank import service

log = logging.getLogger("timebank.jobs")


def _job(name: str, every_s: float, work: Callable[[AsyncSession], Awaitable[int]], done: str) -> ScheduledJob:
    """A job that runs one use case in a session of its own and logs how many it did, if any."""
    async def run(state: Any) -> None:
        async with state.sessionmaker() as session:
            count = await work(session)
        if count:
            log.info(done, count)

    return ScheduledJob(name=name, every_s=every_s, run=run)


def expiry_job(every_s: float, batch: int) -> ScheduledJob:
    return _job("expire-pending-transfers", every_s, lambda session: service.expire_pending(session, limit=batch),
                "voided %d expired pending transfers")


def hours_expiry_job(every_s: float, batch: int) -> ScheduledJob:
    """One run clears the whole backlog, `batch` accounts at a time: the day a community switches
    expiry on, every member may be due, and an hourly run capped at one batch would take a day."""
    async def expire_all(session: AsyncSession) -> int:
        total = 0
        while True:
            expired = await service.expire_hours(session, limit=batch)
            total += expired
            if expired < batch:  # fewer than a batch were due: nothing is left
                return total
            log.info("expired hours on %d accounts so far; more are due, going on", total)

    return _job("expire-hours", every_s, expire_all, "expired hours past the validity period on %d accounts")
