"""Turning an event into notifications: the catalogue's rows for its type, each recipient told once.

Runs inside the consumer's transaction (the kit's inbox row commits with it). A recipient's
notification takes the next number of their sequence in the same statement, under that sequence
row's lock, so one recipient's notifications commit in number order; the commit wakes the live
streams of every replica through `pg_notify`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import table_of
from services.kit.envelope import CloudEvent
from services.notify.catalogue import KINDS_BY_TYPE, Kind
from services.notify.directory import recipients_of, relatives_copied
from services.notify.domain import Category, Channel, DeliveryStatus, Language, QuietHours, Template, render, sms_due_at
from services.notify.models import Delivery, Person, Preference
from services.notify.settings import Settings

# The channel `pg_notify` wakes streams on; the payload is "<community> <recipient>".
WAKE_CHANNEL = "notify_inbox"

people = table_of(Person)
preferences = table_of(Preference)
deliveries = table_of(Delivery)

INSERT_NOTIFICATION = text(
    """
    WITH next AS (
        INSERT INTO recipient_sequences AS s (community, recipient_id, last_seq) VALUES (:community, :recipient, 1)
        ON CONFLICT (community, recipient_id) DO UPDATE SET last_seq = s.last_seq + 1
        RETURNING last_seq
    )
    INSERT INTO notifications
        (community, recipient_id, seq, event_source, event_id, event_type, kind, category, urgency, title, body)
    SELECT :community, :recipient, next.last_seq, :source, :event_id, :event_type, :kind, :category, :urgency, :title, :body
    FROM next
    ON CONFLICT (event_source, event_id, community, recipient_id) DO NOTHING
    RETURNING id
    """
)


async def notify_event(session: AsyncSession, settings: Settings, event: CloudEvent) -> int:
    """Tell everyone the catalogue names for this event; returns how many notifications were new.

    Several kinds may share an event type (a booking tells its booker and its owner); a person
    named by more than one is told once, by the first.
    """
    kinds = KINDS_BY_TYPE.get(event.type, ())
    if not kinds:
        return 0
    data = event.parse(kinds[0].event).model_dump()
    community = str(data["community"])
    told: set[str] = set()
    copies: list[tuple[Kind, str]] = []
    created = 0
    for kind in kinds:
        actor = data.get(kind.actor) if kind.actor else None
        for recipient in kind.recipients:
            for person in await recipients_of(session, recipient, community, data):
                if person in told or person == actor:
                    continue
                told.add(person)
                created += await tell(session, settings, kind, event, data, community, person)
                if kind.category is Category.timebank:
                    copies += [(kind, relative) for relative in await relatives_copied(session, community, person)]
    # Copies to the verified relatives of those who asked for them, after everyone told directly
    # (who is told once, as themselves). Time-bank messages only: a verified relative may already
    # see the member's time-bank records, and nothing else of theirs.
    for kind, relative in copies:
        actor = data.get(kind.actor) if kind.actor else None
        if relative in told or relative == actor:
            continue
        told.add(relative)
        created += await tell(session, settings, kind, event, data, community, relative, copy=True)
    return created


# The title of a copy sent to a relative says it is one (the body still speaks to the member).
COPY_TITLE = Template("【家人副本】{title}", "[Family copy] {title}")


async def tell(
    session: AsyncSession,
    settings: Settings,
    kind: Kind,
    event: CloudEvent,
    data: dict[str, Any],
    community: str,
    person: str,
    *,
    copy: bool = False,
) -> int:
    """One notification for one person (none if they had it already), and its SMS when due."""
    profile = (
        await session.execute(
            select(people.c.language, people.c.quiet_start, people.c.quiet_end, people.c.phone).where(
                people.c.community == community, people.c.person_id == person
            )
        )
    ).first()
    language = Language(profile.language) if profile is not None else Language.zh
    tz = ZoneInfo(settings.community_timezone)
    notification_id = (
        await session.execute(
            INSERT_NOTIFICATION,
            {
                "community": community,
                "recipient": person,
                "source": event.source,
                "event_id": event.id,
                "event_type": event.type,
                "kind": kind.name,
                "category": kind.category.value,
                "urgency": kind.urgency.value,
                "title": render(COPY_TITLE, {"title": render(kind.title, data, language, tz)}, language, tz)
                if copy
                else render(kind.title, data, language, tz),
                "body": render(kind.body, data, language, tz),
            },
        )
    ).scalar()
    if notification_id is None:
        return 0
    if Channel.sms in kind.channels and await sms_wanted(session, community, person, kind):
        quiet = QuietHours(timezone=settings.community_timezone)
        if profile is not None and profile.quiet_start is not None and profile.quiet_end is not None:
            quiet = QuietHours(profile.quiet_start, profile.quiet_end, settings.community_timezone)
        has_phone = profile is not None and bool(profile.phone)
        await session.execute(
            insert(deliveries).values(
                notification_id=notification_id,
                channel=Channel.sms.value,
                status=(DeliveryStatus.pending if has_phone else DeliveryStatus.no_address).value,
                next_attempt_at=sms_due_at(kind.urgency, quiet, datetime.now(UTC)),
            )
        )
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": WAKE_CHANNEL, "payload": f"{community} {person}"}
    )
    return 1


async def sms_wanted(session: AsyncSession, community: str, person: str, kind: Kind) -> bool:
    """A person's switch for SMS in the kind's category (on unless they turned it off)."""
    enabled = (
        await session.execute(
            select(preferences.c.enabled).where(
                preferences.c.community == community,
                preferences.c.person_id == person,
                preferences.c.category == kind.category.value,
                preferences.c.channel == Channel.sms.value,
            )
        )
    ).scalar()
    return enabled is not False
