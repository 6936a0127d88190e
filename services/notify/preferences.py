"""A person's own settings: language, quiet hours, and channels switched off per category."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import table_of, transaction
from services.notify.domain import Channel, Language, QuietHours
from services.notify.models import Person, Preference
from services.notify.schemas import PreferencePublic, PreferenceUpdate, SettingsPublic, SettingsUpdate

people = table_of(Person)
preferences = table_of(Preference)


async def settings_of(session: AsyncSession, who: Principal) -> SettingsPublic:
    async with transaction(session):
        person = (
            await session.execute(
                select(people.c.language, people.c.quiet_start, people.c.quiet_end, people.c.copy_to_relatives).where(
                    people.c.community == who.community, people.c.person_id == who.subject
                )
            )
        ).first()
        off = (
            await session.execute(
                select(preferences.c.category, preferences.c.channel)
                .where(
                    preferences.c.community == who.community,
                    preferences.c.person_id == who.subject,
                    preferences.c.enabled.is_(False),
                )
                .order_by(preferences.c.category, preferences.c.channel)
            )
        ).all()
    default = QuietHours()
    return SettingsPublic(
        language=Language(person.language) if person else Language.zh,
        quiet_start=(person.quiet_start if person and person.quiet_start else default.start),
        quiet_end=(person.quiet_end if person and person.quiet_end else default.end),
        switched_off=[PreferencePublic(category=row.category, channel=row.channel) for row in off],
        copy_to_relatives=bool(person.copy_to_relatives) if person else False,
    )


async def update_settings(session: AsyncSession, who: Principal, body: SettingsUpdate) -> SettingsPublic:
    values = body.model_dump(exclude_none=True)
    if values:
        async with transaction(session):
            stmt = insert(people).values(community=who.community, person_id=who.subject, **values)
            await session.execute(stmt.on_conflict_do_update(index_elements=["community", "person_id"], set_=values))
    return await settings_of(session, who)


async def set_preference(session: AsyncSession, who: Principal, body: PreferenceUpdate) -> SettingsPublic:
    if body.channel is Channel.in_app:
        # In-app is the record of what happened; only the interrupting channels can be turned off.
        return await settings_of(session, who)
    async with transaction(session):
        stmt = insert(preferences).values(
            community=who.community,
            person_id=who.subject,
            category=body.category.value,
            channel=body.channel.value,
            enabled=body.enabled,
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["community", "person_id", "category", "channel"], set_={"enabled": body.enabled}
            )
        )
    return await settings_of(session, who)
