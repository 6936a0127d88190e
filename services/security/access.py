"""Access events (出入记录): doors and gates report entries, exits and in-home activity in batches.

A batch is one statement (`sql/security_ingest.sql`), so one transaction: the rows (a device's
retry of an event it sent before inserts nothing, by the unique (device, device event id) and ON
CONFLICT DO NOTHING), one published event listing the new rows (no credential id, plate or
household in it), and the activity that moves inactivity watches on and clears their open alarms.
Rows older than the retention are purged by a job that one replica at a time runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import fetch_alone, transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, make_page
from services.kit.telemetry import current_traceparent
from services.security import problems
from services.security.events import publisher
from services.security.models import ACCESS_EVENTS, CREDENTIALS, DEVICES, RESIDENTS, AccessEvent
from services.security.schemas import AccessAccepted, AccessEventPublic, CredentialCreate, IncomingAccessBatch

# The whole batch in one statement, alone in its own transaction (no BEGIN/COMMIT round trips):
# sql/security_ingest.sql checks the device, inserts, publishes and moves the watches.
INGEST = (
    "SELECT security_ingest($1, $2, $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],"
    " $9::timestamptz[], $10, $11, $12, $13, $14) AS stored"
)


async def ingest(session: AsyncSession, who: Principal, batch: IncomingAccessBatch, max_batch: int) -> AccessAccepted:
    events = batch["events"]
    if len(events) > max_batch:
        raise problems.BatchTooLarge((f"每批最多 {max_batch} 条", f"At most {max_batch} events per batch"))
    traceparent, tracestate = current_traceparent()
    row = await fetch_alone(
        session,
        INGEST,
        who.community,
        who.subject,
        [e["event_id"] for e in events],
        [e["direction"] for e in events],  # a StrEnum is its text
        [e["credential_kind"] for e in events],
        optional_column([e.get("credential_id") for e in events]),
        optional_column([e.get("pass_id") for e in events]),
        optional_column([e.get("plate") for e in events]),
        [e["occurred_at"] for e in events],
        datetime.now(UTC),
        publisher.topic,
        publisher.source,
        traceparent,
        tracestate,
    )
    if row is None or row.stored is None:
        raise problems.UnknownDevice()
    if row.stored:
        outbox_written(session)
    return AccessAccepted(received=len(events), stored=row.stored)


def optional_column(values: list[str | None]) -> list[str | None] | None:
    """An optional field's column, or NULL when no event of the batch has it (a door's usual batch
    has no pass and no plate): the driver then encodes nothing (~20 us per column of 100), and the
    statement's multi-array unnest reads a NULL array as all NULLs."""
    return None if values.count(None) == len(values) else values


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
