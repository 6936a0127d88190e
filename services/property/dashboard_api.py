"""Routes a dashboard needs beyond the lists: the transition table as data, SLA statistics over a
period, and CSV exports (tickets, and the SLA figures by steward, building or category).

Thin as the other routes: parse, authorize, call one use case, shape the response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from services.kit.auth import CurrentPrincipal
from services.kit.csv_export import CSV_RESPONSE_DOC, csv_response
from services.kit.db import SessionDep
from services.kit.inputs import Day
from services.kit.problems import ValidationFailed, problem_responses
from services.property import reports
from services.property.api import Filters, StaffOnly
from services.property.domain import LOCAL_TZ, OPEN_STATUSES, TRANSITIONS
from services.property.reports import GroupBy
from services.property.schemas import SlaStats, TransitionTable

dashboard_routes = APIRouter(tags=["reports"])

Since = Annotated[Day, Query(description="First local day (Asia/Shanghai) of the period")]
Until = Annotated[Day, Query(description="Last local day of the period, included; at most 366 days after `since`")]
By = Annotated[GroupBy, Query(description="Group by `building`, `steward` or `category`")]
SLA_COLUMNS = (
    "key",
    "label",
    "tickets",
    "completed",
    "on_time",
    "on_time_rate",
    "response_breached",
    "resolution_breached",
    "open",
    "average_rating",
)


def transition_table() -> TransitionTable:
    actions: dict[str, dict[str, list[str]]] = {}
    for (status, action, role), _target in TRANSITIONS.items():
        actions.setdefault(role.value, {}).setdefault(status.value, []).append(action.value)
    for by_status in actions.values():
        for held in by_status.values():
            held.sort()
    return TransitionTable(open_statuses=sorted(s.value for s in OPEN_STATUSES), actions=actions)


@dashboard_routes.get("/transitions", response_model=TransitionTable)
async def transitions(who: CurrentPrincipal) -> TransitionTable:
    """Read the ticket transition table.

    For each role, the actions it may take in each status (the service's one table, so a client
    shows exactly the buttons the API will accept), and which statuses count as open. Anyone
    logged in may read it: it is a rule, not data.
    """
    return transition_table()


@dashboard_routes.get("/reports/sla", response_model=SlaStats, responses=problem_responses(ValidationFailed))
async def sla_statistics(who: StaffOnly, session: SessionDep, since: Since, until: Until, by: By = "steward") -> Any:
    """Read SLA statistics over a period.

    Tickets submitted in the period, grouped by building, steward or category: how many, completed,
    completed by the resolution deadline, the on-time rate, response and resolution breaches, still
    open, and the average rating. Staff only.
    """
    return await reports.sla_stats(session, who, since, until, by)


@dashboard_routes.get(
    "/reports/sla.csv", response_class=Response, responses={**CSV_RESPONSE_DOC, **problem_responses(ValidationFailed)}
)
async def sla_statistics_csv(who: StaffOnly, session: SessionDep, since: Since, until: Until, by: By = "steward") -> Response:
    """Export SLA statistics as CSV.

    The same figures as `GET /reports/sla` (a steward's monthly summary is `by=steward` over the
    month's days), as UTF-8 CSV with a byte-order mark so Excel shows Chinese names. Staff only.
    """
    stats = await reports.sla_stats(session, who, since, until, by)
    rows = [[getattr(group, column) for column in SLA_COLUMNS] for group in stats.groups]
    return csv_response(f"sla-{by}-{since}-{until}.csv", SLA_COLUMNS, rows)


@dashboard_routes.get(
    "/reports/tickets.csv", response_class=Response, responses={**CSV_RESPONSE_DOC, **problem_responses(ValidationFailed)}
)
async def tickets_csv(who: StaffOnly, session: SessionDep, since: Since, until: Until, filters: Filters) -> Response:
    """Export tickets as CSV.

    The community's tickets submitted in the period, oldest first, with the same filters as
    `GET /tickets`; times in local time (Asia/Shanghai). UTF-8 with a byte-order mark; at most
    50,000 rows (more is a 422 asking to narrow the period). Staff only.
    """
    rows = await reports.ticket_rows(session, who, since, until, filters)
    local = [[v.astimezone(LOCAL_TZ) if isinstance(v, datetime) else v for v in row] for row in rows]
    return csv_response(f"tickets-{since}-{until}.csv", reports.TICKET_COLUMNS, local)
