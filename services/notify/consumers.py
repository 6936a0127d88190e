"""The domain topics notify reads, through the kit's idempotent inbox: the directory first, then the table."""

from __future__ import annotations

from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent
from services.kit.inbox import BatchHandler, ConsumerSpec, Handler
from services.notify import notifications
from services.notify.catalogue import KINDS_BY_TYPE
from services.notify.directory import DIRECTORY
from services.notify.events import GOVERNANCE_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, SECURITY_TOPIC, TIMEBANK_TOPIC
from services.notify.settings import Settings

GROUP = "notify"


async def on_events(settings: Settings, session: AsyncSession, events: list[CloudEvent]) -> None:
    """A batch in order: runs of notifiable events are told together; a directory fact (a ticket, a
    building, a role) is recorded before the events after it are told, as one at a time would."""
    waiting: list[CloudEvent] = []
    for event in events:
        record = DIRECTORY.get(event.type)
        if record is not None:
            await notifications.notify_events(session, settings, waiting)
            waiting = []
            await record(session, event)
        if event.type in KINDS_BY_TYPE:
            waiting.append(event)
    await notifications.notify_events(session, settings, waiting)


async def on_event(settings: Settings, session: AsyncSession, event: CloudEvent) -> None:
    await on_events(settings, session, [event])


def make_consumers(settings: Settings) -> list[ConsumerSpec]:
    handler: Handler = partial(on_event, settings)
    batch_handler: BatchHandler = partial(on_events, settings)
    return [
        ConsumerSpec(
            group=GROUP,
            topics=[TIMEBANK_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, GOVERNANCE_TOPIC, SECURITY_TOPIC],
            handlers={event_type: handler for event_type in sorted({*DIRECTORY, *KINDS_BY_TYPE})},
            # A backlog (after a deploy, an outage) is applied a fetched batch per transaction, and
            # set-based: one inbox insert, one directory and profile read, one insert of every
            # notification for up to 2,000 events. The rules hold as before: the inbox row and the
            # (event, recipient) key still make each notification once; a batch that fails (a bad
            # event) is applied again event by event by the kit; the frames go out at the commit.
            apply_in_batches=True,
            # As many as the raw baseline reads per fetch: a recipient's sequence row, the statements
            # and the commit are paid once per batch, and a backlog repeats recipients within one.
            max_batch=2000,
            # Up to four partitions' batches at once: one's templates render while another's
            # statements run. Each recipient's numbers still follow commit order (the sequence rows
            # are locked in one order, so concurrent batches wait, never deadlock).
            partitions_at_once=4,
            batch_handler=batch_handler,
        )
    ]


# The same group with default settings, for `deploy.contracts` (which reads module-level specs).
DECLARED_CONSUMERS: list[ConsumerSpec] = make_consumers(Settings.model_construct())
