"""Access events (出入记录): doors and gates report entries, exits and in-home activity in batches.

A batch is one transaction: the rows (a device's retry of an event it sent before inserts nothing,
by the unique (device, device event id) and ON CONFLICT DO NOTHING), one published event per new
row (no credential id, plate or household in it), and the activity that moves inactivity watches
on and clears their open alarms. Rows older than the retention are purged by a job that one
replica at a time runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.security import alarms, problems
from services.security.devices import calling_device
from services.security.domain import CredentialKind, Direction
from services.security.events import AccessRecorded, publisher
from services.security.models import ACCESS_EVENTS, CREDENTIALS, DEVICES, RESIDENTS, AccessEvent
from services.security.schemas import AccessAccepted, AccessBatch, AccessEventPublic, CredentialCreate

# Which household an event belongs to: a card's or face's enrolment, the inviting household for a
# pass, the device's own household for an in-home sensor.
_INGEST = text("""
    INSERT INTO access_events (community, device_id, device_event_id, building_id, direction, credential_kind,
                               credential_id, pass_id, plate, household_id, occurred_at)
    SELECT :community, :device_id, b.event_id, :building_id, b.direction, b.credential_kind, b.credential_id,
           b.pass_id, b.plate, COALESCE(c.household_id, p.household_id, CAST(:device_household AS text)), b.occurred_at
      FROM unnest(CAST(:event_ids AS text[]), CAST(:directions AS text[]), CAST(:kinds AS text[]),
                  CAST(:credentials AS text[]), CAST(:pass_ids AS text[]), CAST(:plates AS text[]),
                  CAST(:ats AS timestamptz[])) WITH ORDINALITY
           AS b(event_id, direction, credential_kind, credential_id, pass_id, plate, occurred_at, n)
      LEFT JOIN credentials c ON c.community = :community AND c.credential_id = b.credential_id
      LEFT JOIN passes p ON p.community = :community AND p.id = b.pass_id
     ORDER BY b.n
    ON CONFLICT (device_id, device_event_id) DO NOTHING
    RETURNING direction, credential_kind, household_id, occurred_at""")

# What counts as a sign of life for a household's watch: its own card or face, or its in-home sensor.
_LIFE_SIGNS = frozenset({CredentialKind.card.value, CredentialKind.face.value})


async def ingest(session: AsyncSession, who: Principal, batch: AccessBatch, max_batch: int) -> AccessAccepted:
    if len(batch.events) > max_batch:
        raise problems.BatchTooLarge((f"每批最多 {max_batch} 条", f"At most {max_batch} events per batch"))
    events = batch.events
    async with transaction(session):
        device = await calling_device(session, who)
        params: dict[str, Any] = {
            "community": device.community,
            "device_id": device.id,
            "building_id": device.building_id,
            "device_household": device.household_id,
            "event_ids": [e.event_id for e in events],
            "directions": [e.direction.value for e in events],
            "kinds": [e.credential_kind.value for e in events],
            "credentials": [e.credential_id for e in events],
            "pass_ids": [e.pass_id for e in events],
            "plates": [e.plate for e in events],
            "ats": [e.occurred_at for e in events],
        }
        rows = (await session.execute(_INGEST, params)).all()
        if rows:
            data = [
                {
                    "community": device.community,
                    "device_id": device.id,
                    "building_id": device.building_id,
                    "direction": r.direction,
                    "credential_kind": r.credential_kind,
                    "occurred_at": r.occurred_at.isoformat(),
                }
                for r in rows
            ]
            await publisher.publish_many(session, AccessRecorded.event_type, data, [device.id] * len(rows))
        latest: dict[str, datetime] = {}
        for r in rows:
            if r.household_id and (r.credential_kind in _LIFE_SIGNS or r.direction == Direction.activity.value):
                latest[r.household_id] = max(r.occurred_at, latest.get(r.household_id, r.occurred_at))
        if latest:
            await alarms.record_activity(session, device.community, latest)
    return AccessAccepted(received=len(events), stored=len(rows))


async def enrol_credential(session: AsyncSession, who: Principal, body: CredentialCreate) -> None:
    values = {"household_id": body.household_id}
    stmt = insert(CREDENTIALS).values(community=who.community, credential_id=body.credential_id, **values)
    async with transaction(session):
        await session.execute(stmt.on_conflict_do_update(index_elements=["community", "credential_id"], set_=values))


def _cursor(event: AccessEvent) -> list[Any]:
    return [event.occurred_at.isoformat(), event.id]


async def _page(session: AsyncSession, query: Any, page: PageParams) -> tuple[list[AccessEventPublic], str | None]:
    after = page.after()
    if after:
        at, last_id = datetime.fromisoformat(str(after[0])), int(after[1])
        query = query.where(
            (ACCESS_EVENTS.c.occurred_at < at) | ((ACCESS_EVENTS.c.occurred_at == at) & (ACCESS_EVENTS.c.id < last_id))
        )
    query = query.order_by(ACCESS_EVENTS.c.occurred_at.desc(), ACCESS_EVENTS.c.id.desc()).limit(page.limit + 1)
    rows = list(await session.scalars(query))
    items, cursor = make_page(rows, page.limit, _cursor)
    return [AccessEventPublic.model_validate(r) for r in items], cursor


async def household_events(session: AsyncSession, who: Principal, page: PageParams) -> tuple[list[AccessEventPublic], str | None]:
    """A resident's own household's entries and exits (its cards, faces, sensors and its visitors' passes)."""
    async with transaction(session):
        household = await session.scalar(
            select(RESIDENTS.c.household_id).where(RESIDENTS.c.community == who.community, RESIDENTS.c.resident_id == who.subject)
        )
        if household is None:
            raise problems.NotAResident()
        query = select(AccessEvent).where(ACCESS_EVENTS.c.community == who.community, ACCESS_EVENTS.c.household_id == household)
        return await _page(session, query, page)


async def search_events(
    session: AsyncSession, who: Principal, device_id: str, since: datetime, until: datetime, page: PageParams
) -> tuple[list[AccessEventPublic], str | None]:
    """Staff: one door's events in a time range, newest first. Another community's door is 404."""
    async with transaction(session):
        known = await session.scalar(select(DEVICES.c.id).where(DEVICES.c.id == device_id, DEVICES.c.community == who.community))
        if known is None:
            raise problems.DeviceNotFound()
        query = select(AccessEvent).where(
            ACCESS_EVENTS.c.community == who.community,
            ACCESS_EVENTS.c.device_id == device_id,
            ACCESS_EVENTS.c.occurred_at >= since,
            ACCESS_EVENTS.c.occurred_at < until,
        )
        return await _page(session, query, page)


_PURGE = text("""
    DELETE FROM access_events WHERE id IN (
        SELECT id FROM access_events WHERE occurred_at < :cutoff ORDER BY occurred_at LIMIT :batch)""")


async def purge(session: AsyncSession, retention_days: int, batch: int = 5000, now: datetime | None = None) -> int | None:
    """Delete up to `batch` events older than the retention. One replica at a time: the
    transaction-scoped advisory lock lets one purge while the others return None at once."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    async with transaction(session):
        locked = (
            await session.execute(select(func.pg_try_advisory_xact_lock(func.hashtextextended("security.purge", 0))))
        ).scalar()
        if not locked:
            return None
        result = await session.execute(_PURGE, {"cutoff": cutoff, "batch": batch})
        return int(getattr(result, "rowcount", 0) or 0)
