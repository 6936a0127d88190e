"""The domain topics notify reads, through the kit's idempotent inbox: the directory first, then the table."""

from __future__ import annotations

from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import ConsumerSpec, Handler
from services.notify import notifications
from services.notify.catalogue import KINDS_BY_TYPE
from services.notify.directory import DIRECTORY
from services.notify.events import GOVERNANCE_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, SECURITY_TOPIC, TIMEBANK_TOPIC
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
            topics=[TIMEBANK_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, GOVERNANCE_TOPIC, SECURITY_TOPIC],
            handlers={event_type: handler for event_type in sorted({*DIRECTORY, *KINDS_BY_TYPE})},
        )
    ]


# The same group with default settings, for `deploy.contracts` (which reads module-level specs).
DECLARED_CONSUMERS: list[ConsumerSpec] = make_consumers(Settings.model_construct())
