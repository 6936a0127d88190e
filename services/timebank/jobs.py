"""Scheduled jobs: void pending service transfers whose confirmation time ran out, and move hours
past the validity period to the pool."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.app import ScheduledJob
from services.timebank import hours_expiry, resolution

log = logging.getLogger("timebank.jobs")


def _draining_job(
    name: str, every_s: float, batch: int, work: Callable[[AsyncSession, int], Awaitable[int]], done: str
) -> ScheduledJob:
    """A job whose run repeats its use case `batch` at a time until a step finds less than a
    batch left, in a session of its own, and logs how many it did, if any. After an outage, or the
    day a community switches hours expiry on, the backlog clears in one run instead of waiting
    for one batch per interval."""

    async def run(state: Any) -> None:
        total = 0
        async with state.sessionmaker() as session:
            while True:
                count = await work(session, batch)
                total += count
                if count < batch:
                    break
                log.info("%s: %d so far; more are due, going on", name, total)
        if total:
            log.info(done, total)

    return ScheduledJob(name=name, every_s=every_s, run=run)


def expiry_job(every_s: float, batch: int) -> ScheduledJob:
    return _draining_job(
        "expire-pending-transfers",
        every_s,
        batch,
        lambda session, n: resolution.expire_pending(session, limit=n),
        "voided %d expired pending transfers",
    )


def hours_expiry_job(every_s: float, batch: int) -> ScheduledJob:
    return _draining_job(
        "expire-hours",
        every_s,
        batch,
        lambda session, n: hours_expiry.expire_hours(session, limit=n),
        "expired hours past the validity period on %d accounts",
    )
