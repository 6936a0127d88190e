"""Scheduled jobs: void pending service transfers whose confirmation time ran out, move hours past
the validity period to the pool, and warn members of hours about to expire."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.app import ScheduledJob
from services.timebank import hours_expiry, resolution

log = logging.getLogger("timebank.jobs")

Step = Callable[[AsyncSession, int], Awaitable[int]]


async def _drain(name: str, batch: int, step: Step, done: str, state: Any) -> None:
    """Repeat `step`, `batch` at a time, until a step finds less than a batch left, in a session of
    its own, and log how many it did, if any. After an outage, or the day a community switches
    hours expiry on, the backlog clears in one run instead of waiting for one batch per interval."""
    total = 0
    async with state.sessionmaker() as session:
        while True:
            count = await step(session, batch)
            total += count
            if count < batch:
                break
            log.info("%s: %d so far; more are due, going on", name, total)
    if total:
        log.info(done, total)


def _draining_job(name: str, every_s: float, batch: int, step: Step, done: str) -> ScheduledJob:
    return ScheduledJob(name=name, every_s=every_s, run=partial(_drain, name, batch, step, done))


async def _void_timed_out(session: AsyncSession, batch: int) -> int:
    return await resolution.expire_pending(session, limit=batch)


async def _expire_old_hours(session: AsyncSession, batch: int) -> int:
    return await hours_expiry.expire_hours(session, limit=batch)


async def _warn_expiring(state: Any) -> None:
    async with state.sessionmaker() as session:
        warned = await hours_expiry.warn_expiring_hours(session)
    if warned:
        log.info("warned members of %d lots of hours about to expire", warned)


def expiry_job(every_s: float, batch: int) -> ScheduledJob:
    return _draining_job("expire-pending-transfers", every_s, batch, _void_timed_out, "voided %d expired pending transfers")


def hours_expiry_job(every_s: float, batch: int) -> ScheduledJob:
    return _draining_job(
        "expire-hours", every_s, batch, _expire_old_hours, "expired hours past the validity period on %d accounts"
    )


def expiry_warning_job(every_s: float) -> ScheduledJob:
    return ScheduledJob(name="warn-expiring-hours", every_s=every_s, run=_warn_expiring)
