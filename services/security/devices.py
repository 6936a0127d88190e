"""Devices (门禁、道闸、摄像头、传感器): the registry, heartbeats, and the offline sweep.

An outage is raised once and cleared once: the sweep's UPDATE sets `offline_since` only where it is
still NULL, the heartbeat's clears it only where it is set, and each publishes in the same
statement's transaction only for the rows it changed. Two replicas sweeping at the same moment
change a row once between them (the second UPDATE waits on the first's row lock, then finds the
condition false).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.security import problems
from services.security.events import DeviceCameBack, DeviceWentOffline, publisher
from services.security.models import DEVICES, Device
from services.security.schemas import DeviceCreate, Heartbeat


async def register_device(session: AsyncSession, who: Principal, body: DeviceCreate) -> Device:
    device = Device(
        id=body.id,
        community=who.community,
        building_id=body.building_id,
        household_id=body.household_id,
        kind=body.kind.value,
        name=body.name,
        heartbeat_s=body.heartbeat_s,
        last_seen_at=datetime.now(UTC),
        created_at=datetime.now(UTC),
    )
    async with transaction(session):
        session.add(device)
        try:
            await session.flush()
        except IntegrityError:
            raise problems.DuplicateDevice() from None
    return device


async def list_devices(
    session: AsyncSession, who: Principal, offline: bool | None, page: PageParams
) -> tuple[list[Device], str | None]:
    """The community's devices by building, then id (unique: the machine client's subject)."""
    query = select(Device).where(DEVICES.c.community == who.community)
    if offline is not None:
        query = query.where(DEVICES.c.offline_since.is_not(None) if offline else DEVICES.c.offline_since.is_(None))
    after = page.after_key(str, str)
    if after:
        query = query.where(after_key_condition([DEVICES.c.building_id, DEVICES.c.id], after))
    async with transaction(session):
        rows = list(await session.scalars(query.order_by(DEVICES.c.building_id, DEVICES.c.id).limit(page.limit + 1)))
    return make_page(rows, page.limit, lambda device: [device.building_id, device.id])


async def calling_device(session: AsyncSession, who: Principal) -> Device:
    """The device behind a machine client's token, registered in the token's community."""
    device = await session.scalar(select(Device).where(DEVICES.c.id == who.subject, DEVICES.c.community == who.community))
    if device is None:
        raise problems.UnknownDevice()
    return device


_HEARTBEAT = text("""
    UPDATE devices d SET last_seen_at = :now, offline_since = NULL
      FROM (SELECT id, offline_since FROM devices WHERE id = :id AND community = :community FOR UPDATE) old
     WHERE d.id = old.id
    RETURNING d.id, d.community, d.building_id, d.kind, old.offline_since,
              (SELECT b.steward_id FROM buildings b WHERE b.community = d.community AND b.building_id = d.building_id)""")


async def heartbeat(session: AsyncSession, who: Principal) -> Heartbeat:
    """The device is alive; if it was offline, its outage ends here (once: the row lock orders beats)."""
    now = datetime.now(UTC)
    async with transaction(session):
        row = (await session.execute(_HEARTBEAT, {"now": now, "id": who.subject, "community": who.community})).first()
        if row is None:
            raise problems.UnknownDevice()
        if row.offline_since is not None:
            event = DeviceCameBack(
                device_id=row.id,
                community=row.community,
                building_id=row.building_id,
                kind=row.kind,
                steward_id=row.steward_id,
                offline_since=row.offline_since,
                back_at=now,
            )
            await publisher.publish(session, event, key=row.id)
    return Heartbeat(device_id=row.id, was_offline=row.offline_since is not None, seen_at=now)


# The silent devices, marked in one statement; SKIP LOCKED leaves a device another replica (or a
# heartbeat) holds to that transaction, and `offline_since IS NULL` in both places means a device
# marked by one sweep is not marked again by the next.
_SWEEP = text("""
    UPDATE devices d SET offline_since = :now
      FROM (SELECT id FROM devices
             WHERE offline_since IS NULL
               AND last_seen_at < CAST(:now AS timestamptz) - make_interval(secs => heartbeat_s * :missed)
             ORDER BY last_seen_at LIMIT :batch FOR UPDATE SKIP LOCKED) silent
     WHERE d.id = silent.id AND d.offline_since IS NULL
    RETURNING d.id, d.community, d.building_id, d.kind, d.last_seen_at,
              (SELECT b.steward_id FROM buildings b WHERE b.community = d.community AND b.building_id = d.building_id)""")


async def sweep_offline(session: AsyncSession, missed_beats: int, now: datetime | None = None, batch: int = 500) -> int:
    """Mark devices silent past their allowance offline and publish each outage once."""
    at = now or datetime.now(UTC)
    async with transaction(session):
        rows = (await session.execute(_SWEEP, {"now": at, "missed": missed_beats, "batch": batch})).all()
        for row in rows:
            event = DeviceWentOffline(
                device_id=row.id,
                community=row.community,
                building_id=row.building_id,
                kind=row.kind,
                steward_id=row.steward_id,
                last_seen_at=row.last_seen_at,
                offline_since=at,
            )
            await publisher.publish(session, event, key=row.id)
    return len(rows)
