"""The feed builder: one consumer group over the four domain topics; each known event type becomes a
feed record in the same transaction as its inbox row (the kit's idempotent consumer)."""

from __future__ import annotations

from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import feeds
from services.citysync.domain import RECORD_KINDS
from services.citysync.feeds import Keys
from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec, Handler

DOMAIN_TOPICS = ["timebank.events", "parking.events", "property.events", "governance.events", "security.events"]
GROUP = "citysync-feeds"


async def build_record(keys: Keys, session: AsyncSession, event: CloudEvent) -> None:
    # Queued in the batch's transaction; the batch's records are written in one statement at commit.
    await feeds.ingest_later(session, keys, event)


def feed_consumer(keys: Keys) -> ConsumerSpec:
    # Types not listed (saga internals, staff registrations...) are recorded in the inbox and skipped.
    handler: Handler = partial(build_record, keys)
    handlers: dict[str, Handler] = dict.fromkeys(RECORD_KINDS, handler)
    # Building a record is cheap: commits would dominate, so a fetched batch is one transaction.
    # Sync jobs pull every few minutes, so half a second more before a record appears costs them
    # nothing, while a short long-poll keeps an idle group fetching many times a second, CPU taken
    # from the pulls on the same cores.
    return ConsumerSpec(group=GROUP, topics=DOMAIN_TOPICS, handlers=handlers, apply_in_batches=True, fetch_max_wait_ms=500)
