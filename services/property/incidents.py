"""Security's incidents as urgent tickets (安防工单): an alarm or a device outage opens one ticket,
filed by the system (no resident, no household: residents never see it), routed to the building's
steward like any other with the urgent SLA; an outage's ticket is closed when the device is back,
an alarm's when security clears the alarm.

Exactly once per incident: the ticket's unique `incident_id` holds it, and an advisory lock on the
incident id orders two consumers applying the same incident at once, so the second finds the
first's ticket (committed) and opens nothing, rather than failing on the constraint and retrying.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.property import domain
from services.property.actions import close_for_incident
from services.property.domain import Category, Priority, Role, Source
from services.property.events import AlarmCleared, AlarmRaised, DeviceCameBack, DeviceWentOffline
from services.property.models import BUILDINGS, TICKETS, Ticket
from services.property.tickets import NewTicket, create_ticket

log = logging.getLogger("property.incidents")

SECURITY_ACTOR = "security"


async def _lock_incident(session: AsyncSession, incident_id: str) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(incident_id, 0))))


async def _open(session: AsyncSession, community: str, building_id: str, incident_id: str, description: str) -> None:
    """Open the incident's ticket unless it has one; runs in the consumer's transaction."""
    await _lock_incident(session, incident_id)
    if await session.scalar(select(TICKETS.c.id).where(TICKETS.c.incident_id == incident_id)) is not None:
        return
    known = await session.scalar(select(BUILDINGS.c.id).where(BUILDINGS.c.id == building_id, BUILDINGS.c.community == community))
    if known is None:
        # Security learnt the building from property's own events, so this is a registry edit in
        # between; there is no building to route to, and the log says so (the alarm still notifies).
        log.warning("incident %s: no building %s in %s", incident_id, building_id, community)
        return
    new = NewTicket(
        community=community,
        category=Category.repair,
        description=description,
        priority=Priority.urgent,
        actor=SECURITY_ACTOR,
        role=Role.system,
        source=Source.security,
        building_id=building_id,
        incident_id=incident_id,
    )
    await create_ticket(session, new, datetime.now(UTC))


async def _close(session: AsyncSession, incident_id: str, note: str) -> None:
    await _lock_incident(session, incident_id)
    ticket = await session.scalar(select(Ticket).where(TICKETS.c.incident_id == incident_id).with_for_update())
    if ticket is None:
        return
    await close_for_incident(session, ticket, SECURITY_ACTOR, note, datetime.now(UTC))


async def open_alarm_ticket(session: AsyncSession, data: AlarmRaised) -> None:
    where = f"，设备 {data.device_id}" if data.device_id else ""
    description = f"安防报警：{domain.alarm_label(data.kind)}{where}（报警 {data.alarm_id}）"
    await _open(session, data.community, data.building_id, domain.alarm_incident(data.alarm_id), description)


async def close_alarm_ticket(session: AsyncSession, data: AlarmCleared) -> None:
    await _close(session, domain.alarm_incident(data.alarm_id), "报警已解除")


async def open_outage_ticket(session: AsyncSession, data: DeviceWentOffline) -> None:
    description = f"安防设备离线：{data.kind} {data.device_id}"
    incident = domain.outage_incident(data.device_id, data.offline_since)
    await _open(session, data.community, data.building_id, incident, description)


async def close_outage_ticket(session: AsyncSession, data: DeviceCameBack) -> None:
    await _close(session, domain.outage_incident(data.device_id, data.offline_since), "设备已恢复在线")
