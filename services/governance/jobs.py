"""Scheduled jobs: the lot-expiry sweep, the redemption saga's timeout and the closing of decisions."""

from __future__ import annotations

import logging
from typing import Any

from services.governance import accounts, closing, pledges, redemptions
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


async def close_decisions(state: Any) -> None:
    """Close every decision past its closing time; each replica runs this, each decision closes once."""
    while True:
        async with state.sessionmaker() as session:
            closed = await closing.close_due(session)
        if closed:
            log.info("closed %d decisions", closed)
        if closed < closing.BATCH:
            return


async def lapse_pledge_offers(state: Any) -> None:
    """Lapse every open offer past its deadline; each replica runs this, each offer lapses once."""
    while True:
        async with state.sessionmaker() as session:
            lapsed = await pledges.lapse_due(session)
        if lapsed:
            log.info("lapsed %d pledge offers", lapsed)
        if lapsed < pledges.BATCH:
            return


def make_jobs(settings: Settings) -> list[ScheduledJob]:
    return [
        ScheduledJob("expire-lots", settings.expiry_job_every_s, expire_lots),
        ScheduledJob("release-overdue-redemptions", settings.redemption_timeout_job_every_s, release_overdue_redemptions),
        ScheduledJob("close-decisions", settings.decision_close_job_every_s, close_decisions),
        ScheduledJob("lapse-pledge-offers", settings.pledge_lapse_job_every_s, lapse_pledge_offers),
    ]
