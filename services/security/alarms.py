"""Alarms (报警) and the inactivity watch (独居老人关怀).

Every alarm is an INSERT ... ON CONFLICT (community, incident_key) DO NOTHING: the replica (or the
retry) whose insert lands publishes `alarm.raised`, in the same transaction; any other finds the
row and publishes nothing. So an incident becomes one alarm, one urgent ticket and one round of
notifications, however many replicas see it at the same moment.

A watch exists only for an elder who opted in (the elder creates it) and counts only once the
named relative has consented (the relative confirms with their own login).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.security import domain, problems
from services.security.devices import calling_device
from services.security.domain import AlarmKind
from services.security.events import AlarmAcknowledged, AlarmRaised, publisher
from services.security.models import ALARMS, RESIDENTS, WATCHES, Alarm, Watch
from services.security.schemas import AlarmReport, WatchCreate

_RAISE = text("""
    INSERT INTO alarms (id, community, incident_key, kind, building_id, household_id, device_id, watch_id, raised_at)
    VALUES (:id, :community, :incident_key, :kind, :building_id, :household_id, :device_id, :watch_id, :raised_at)
    ON CONFLICT (community, incident_key) DO NOTHING
    RETURNING id""")

_STEWARD = text("SELECT steward_id FROM buildings WHERE community = :community AND building_id = :building_id")


async def _raise(session: AsyncSession, values: dict[str, Any], relative_id: str | None) -> bool:
    """Insert the alarm and publish it, or do nothing if its incident is already an alarm."""
    inserted = (await session.execute(_RAISE, values)).first()
    if inserted is None:
        return False
    steward = await session.scalar(_STEWARD, {"community": values["community"], "building_id": values["building_id"]})
    event = AlarmRaised(
        alarm_id=values["id"],
        community=values["community"],
        kind=values["kind"],
        building_id=values["building_id"],
        device_id=values["device_id"],
        steward_id=steward,
        relative_id=relative_id,
        raised_at=values["raised_at"],
    )
    await publisher.publish(session, event, key=values["id"])
    return True


async def device_alarm(session: AsyncSession, who: Principal, body: AlarmReport) -> Alarm:
    """A device reports an incident; its retries (and a second replica's copy) are the same alarm."""
    if body.kind == AlarmKind.inactivity:
        raise problems.InvalidAlarm()
    async with transaction(session):
        device = await calling_device(session, who)
        key = domain.device_incident_key(device.id, body.incident_id)
        values = {
            "id": f"al-{uuid.uuid4().hex[:16]}",
            "community": device.community,
            "incident_key": key,
            "kind": body.kind.value,
            "building_id": device.building_id,
            "household_id": device.household_id,
            "device_id": device.id,
            "watch_id": None,
            "raised_at": body.at or datetime.now(UTC),
        }
        await _raise(session, values, None)
        alarm = await session.scalar(select(Alarm).where(ALARMS.c.community == device.community, ALARMS.c.incident_key == key))
        assert alarm is not None  # inserted above, or by whoever won the race (and committed before our insert returned)
        return alarm


async def list_alarms(session: AsyncSession, who: Principal, open_only: bool, page: PageParams) -> tuple[list[Alarm], str | None]:
    """The community's alarms, newest first; the id breaks a tie between alarms raised in one instant."""
    query = select(Alarm).where(ALARMS.c.community == who.community)
    if open_only:
        query = query.where(ALARMS.c.cleared_at.is_(None))
    after = page.after_key(datetime, str)
    if after:
        query = query.where(after_key_condition([ALARMS.c.raised_at, ALARMS.c.id], after, descending=True))
    query = query.order_by(ALARMS.c.raised_at.desc(), ALARMS.c.id.desc()).limit(page.limit + 1)
    async with transaction(session):
        rows = list(await session.scalars(query))
    return make_page(rows, page.limit, lambda alarm: [alarm.raised_at.isoformat(), alarm.id])


# The first answer wins: the conditional UPDATE sets it once, however many staff press at once.
_ACKNOWLEDGE = text("""
    UPDATE alarms SET acknowledged_at = :now, acknowledged_by = :who
     WHERE id = :id AND community = :community AND acknowledged_at IS NULL
    RETURNING id""")


async def acknowledge(session: AsyncSession, who: Principal, alarm_id: str) -> Alarm:
    """Staff answer an alarm: the first answer is recorded and published once (its response time);
    a later one changes nothing and returns the alarm as answered."""
    now = datetime.now(UTC)
    async with transaction(session):
        params = {"now": now, "who": who.subject, "id": alarm_id, "community": who.community}
        answered = (await session.execute(_ACKNOWLEDGE, params)).first() is not None
        alarm = await session.scalar(select(Alarm).where(ALARMS.c.id == alarm_id, ALARMS.c.community == who.community))
        if alarm is None:
            raise problems.AlarmNotFound()
        if answered:
            event = AlarmAcknowledged(
                alarm_id=alarm.id,
                community=alarm.community,
                kind=alarm.kind,
                building_id=alarm.building_id,
                raised_at=alarm.raised_at,
                acknowledged_at=now,
                acknowledged_by=who.subject,
                response_s=domain.response_seconds(alarm.raised_at, now),
            )
            await publisher.publish(session, event, key=alarm.id)
        return alarm


# --- the inactivity watch -----------------------------------------------------------------------


async def create_watch(session: AsyncSession, who: Principal, body: WatchCreate) -> Watch:
    """An elder opts in, naming the relative who will be told; it watches nothing until they consent."""
    async with transaction(session):
        resident = (
            await session.execute(
                select(RESIDENTS).where(RESIDENTS.c.community == who.community, RESIDENTS.c.resident_id == who.subject)
            )
        ).first()
        if resident is None:
            raise problems.NotAResident()
        watch = Watch(
            id=f"w-{uuid.uuid4().hex[:16]}",
            community=who.community,
            elder_id=who.subject,
            household_id=resident.household_id,
            building_id=resident.building_id,
            relative_id=body.relative_id,
            hours=body.hours,
            last_activity_at=datetime.now(UTC),
            created_at=datetime.now(UTC),
        )
        session.add(watch)
        try:
            await session.flush()
        except IntegrityError:
            raise problems.WatchExists() from None
        return watch


async def _visible_watch(session: AsyncSession, who: Principal, watch_id: str) -> Watch:
    watch = await session.scalar(select(Watch).where(WATCHES.c.id == watch_id, WATCHES.c.community == who.community))
    if watch is None or who.subject not in (watch.elder_id, watch.relative_id):
        raise problems.WatchNotFound()
    return watch


async def consent(session: AsyncSession, who: Principal, watch_id: str) -> Watch:
    """The named relative consents (only they can: anyone else is 404); the silence counts from now."""
    async with transaction(session):
        watch = await _visible_watch(session, who, watch_id)
        if who.subject != watch.relative_id:
            raise problems.WatchNotFound()
        if watch.consented_at is None:
            watch.consented_at = datetime.now(UTC)
            watch.last_activity_at = watch.consented_at
            await session.flush()
        return watch


async def end_watch(session: AsyncSession, who: Principal, watch_id: str) -> None:
    """The elder or the relative ends the watch (opting out is always possible)."""
    async with transaction(session):
        watch = await _visible_watch(session, who, watch_id)
        await session.delete(watch)


async def my_watches(session: AsyncSession, who: Principal, page: PageParams) -> tuple[list[Watch], str | None]:
    """The watches I am the elder (one at most) or the relative of, by id; the relative's index finds those."""
    query = select(Watch).where(
        WATCHES.c.community == who.community, (WATCHES.c.elder_id == who.subject) | (WATCHES.c.relative_id == who.subject)
    )
    after = page.after_key(str)
    if after:
        query = query.where(WATCHES.c.id > after[0])
    async with transaction(session):
        rows = list(await session.scalars(query.order_by(WATCHES.c.id).limit(page.limit + 1)))
    return make_page(rows, page.limit, lambda watch: [watch.id])


_SILENT = text("""
    SELECT id, community, household_id, building_id, relative_id, last_activity_at FROM watches
     WHERE consented_at IS NOT NULL AND last_activity_at <= CAST(:now AS timestamptz) - make_interval(hours => hours)
       AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.watch_id = watches.id AND a.cleared_at IS NULL)
     ORDER BY last_activity_at LIMIT :batch""")


async def sweep_inactivity(session: AsyncSession, now: datetime | None = None, batch: int = 500) -> int:
    """Raise an alarm for each consented watch silent past its hours; once per silence (its key)."""
    at = now or datetime.now(UTC)
    raised = 0
    async with transaction(session):
        for w in (await session.execute(_SILENT, {"now": at, "batch": batch})).all():
            values = {
                "id": f"al-{uuid.uuid4().hex[:16]}",
                "community": w.community,
                "incident_key": domain.inactivity_incident_key(w.id, w.last_activity_at),
                "kind": AlarmKind.inactivity.value,
                "building_id": w.building_id,
                "household_id": w.household_id,
                "device_id": None,
                "watch_id": w.id,
                "raised_at": at,
            }
            raised += await _raise(session, values, w.relative_id)
    return raised
