"""Scheduled jobs; every replica runs them, and the claims inside make that safe."""

from __future__ import annotations

from typing import Any

from services.kit.app import ScheduledJob
from services.property import photos, sla
from services.property.settings import Settings


async def escalate_sla_breaches(state: Any) -> None:
    async with state.sessionmaker() as session:
        while await sla.escalate_breaches(session) > 0:
            pass


async def forget_abandoned_uploads(state: Any) -> None:
    settings: Settings = state.settings
    # A minute past the URL's expiry: an upload still under way when the URL expired has landed.
    older_than_s = settings.storage_url_expires_s + 60
    async with state.sessionmaker() as session:
        while await photos.forget_abandoned_uploads(session, state.file_store, older_than_s) > 0:
            pass


def jobs(every_s: float, uploads_every_s: float = 600.0) -> list[ScheduledJob]:
    return [
        ScheduledJob(name="property-sla-escalation", every_s=every_s, run=escalate_sla_breaches),
        ScheduledJob(name="property-abandoned-uploads", every_s=uploads_every_s, run=forget_abandoned_uploads),
    ]
