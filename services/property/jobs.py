"""Scheduled jobs; every replica runs them, and the claims inside make that safe."""

from __future__ import annotations

from typing import Any

from services.kit.app import ScheduledJob
from services.property import sla


async def escalate_sla_breaches(state: Any) -> None:
    async with state.sessionmaker() as session:
        while await sla.escalate_breaches(session) > 0:
            pass


def jobs(every_s: float) -> list[ScheduledJob]:
    return [ScheduledJob(name="property-sla-escalation", every_s=every_s, run=escalate_sla_breaches)]
