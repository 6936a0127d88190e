"""The domain topics notify reads, through the kit's idempotent inbox: the directory first, then the table."""

from __future__ import annotations

from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec, Handler
from services.notify import notifications
from services.notify.catalogue import KINDS_BY_TYPE
from services.notify.directory import DIRECTORY
from services.notify.events import GOVERNANCE_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, TIMEBANK_TOPIC
from services.notify.settings import Settings

GROUP = "notify"


async def on_event(settings: Settings, session: AsyncSession, event: CloudEvent) -> None:
    record = DIRECTORY.get(event.type)
    if record is not None:
        await record(session, event)
    await notifications.notify_event(session, settings, event)


def make_consumers(settings: Settings) -> list[ConsumerSpec]:
    handler: Handler = partial(on_event, settings)
    return [
        ConsumerSpec(
            group=GROUP,
            topics=[TIMEBANK_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, GOVERNANCE_TOPIC],
            handlers={event_type: handler for event_type in sorted({*DIRECTORY, *KINDS_BY_TYPE})},
            # A backlog (after a deploy, an outage) is applied a fetched batch per transaction: one
            # commit for up to 500 events instead of one each. The rules hold as before: the inbox
            # row and the (event, recipient) key still make each notification once; a batch that
            # fails (a deadlock on a shared recipient's sequence, a bad event) is applied again event
            # by event by the kit; the wake-ups go out at the batch's commit.
            apply_in_batches=True,
        )
    ]


# The same group with default settings, for `deploy.contracts` (which reads module-level specs).
DECLARED_CONSUMERS: list[ConsumerSpec] = make_consumers(Settings.model_construct())
