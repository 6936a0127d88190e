"""The feed builder: one consumer group over the four domain topics; each known event type becomes a
feed record in the same transaction as its inbox row (the kit's idempotent consumer)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import service
from services.citysync.domain import RECORD_KINDS
from services.citysync.service import Keys
from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec, Handler

DOMAIN_TOPICS = ["timebank.events", "parking.events", "property.events", "governance.events"]
GROUP = "citysync-feeds"


def feed_consumer(keys: Keys) -> ConsumerSpec:
    async def build_record(session: AsyncSession, event: CloudEvent) -> None:
        # Queued in the batch's transaction; the batch's records are written in one statement at commit.
        await service.ingest_later(session, keys, event)

    # Types not listed (saga internals, staff registrations...) are recorded in the inbox and skipped.
    handlers: dict[str, Handler] = {event_type: build_record for event_type in RECORD_KINDS}
    # Building a record is cheap: commits would dominate, so a fetched batch is one transaction.
    # Sync jobs pull every few minutes, so half a second more before a record appears costs them
    # nothing; the local profile's 10 ms long-poll kept this group fetching ~100 times a second while
    # idle, CPU taken from the pulls on the same cores.
    return ConsumerSpec(group=GROUP, topics=DOMAIN_TOPICS, handlers=handlers, apply_in_batches=True, fetch_max_wait_ms=500)
