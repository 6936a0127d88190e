"""Where a resident's new ticket goes, read in one statement.

Filing a ticket needs the resident, their household's building, the building's steward and backup
with their duty rosters, and the community's SLA row for the category and priority. Read one by
one through the session that was five statements, each a round trip and the ORM's work on its
rows (docs/architecture.md, issue 15's third pass); here it is one, compiled once, in the filing's
transaction. System-filed, pledged and redeemed tickets read these through the session in
`tickets.create_ticket`; every ticket is written by `tickets.write_ticket`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import driver_statement, fetch_alone
from services.property import domain
from services.property.domain import Category, Priority
from services.property.problems import ResidentNotRegistered, UnknownBuilding


@dataclass(frozen=True)
class Placement:
    """The filer, the household and building the ticket is for, who it goes to and its SLA."""

    resident_id: str
    household_id: str
    building_id: str
    route: domain.Route
    policy: domain.SlaPolicy


# The building must be the community's (as `registry.building_in` checks); the shifts are both
# stewards' rows as [staff, weekday, start, end]; no SLA row means the default policy.
PLACEMENT = driver_statement(
    text("""
SELECT r.id AS resident_id, r.household_id, h.building_id, b.id AS building_found,
       b.steward_id, b.backup_steward_id,
       (SELECT coalesce(json_agg(json_build_array(s.staff_id, s.weekday, s.start_minute, s.end_minute)), '[]'::json)
          FROM roster_shifts s
         WHERE s.staff_id = b.steward_id OR s.staff_id = b.backup_steward_id) AS shifts,
       p.response_minutes, p.resolution_minutes
  FROM residents r
  JOIN households h ON h.id = r.household_id
  LEFT JOIN buildings b ON b.id = h.building_id AND b.community = :community
  LEFT JOIN sla_policies p ON p.community = :community AND p.category = :category AND p.priority = :priority
 WHERE r.id = :resident AND r.community = :community""")
)


async def placement(session: AsyncSession, who: Principal, category: Category, priority: Priority, at: datetime) -> Placement:
    """Where the caller's ticket filed now goes; `ResidentNotRegistered` if they are no resident here."""
    args = PLACEMENT.args(resident=who.subject, community=who.community, category=category.value, priority=priority.value)
    row = await fetch_alone(session, PLACEMENT.sql, *args)
    if row is None:
        raise ResidentNotRegistered()
    if row.building_found is None:
        raise UnknownBuilding(("楼栋不存在", f"No building {row.building_id} in this community"))
    return Placement(row.resident_id, row.household_id, row.building_id, route_of(row, at), policy_of(row, category, priority))


def route_of(row: Any, at: datetime) -> domain.Route:
    """The building's steward on duty, else the backup on duty, else the community queue."""
    steward, backup = row.steward_id, row.backup_steward_id
    shifts: dict[str, list[domain.Shift]] = {}
    for staff, weekday, start, end in row.shifts:
        shifts.setdefault(staff, []).append(domain.Shift(weekday, start, end))
    return domain.route_ticket(
        steward, domain.on_duty(shifts.get(steward or "", []), at), backup, domain.on_duty(shifts.get(backup or "", []), at)
    )


def policy_of(row: Any, category: Category, priority: Priority) -> domain.SlaPolicy:
    """The community's SLA row, else the default for the category and priority."""
    if row.response_minutes is None:
        return domain.DEFAULT_SLA[category, priority]
    return domain.SlaPolicy(row.response_minutes, row.resolution_minutes)
