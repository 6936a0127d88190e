"""The ticket lists' filters, sort keys and search (a dashboard's questions), declared once.

`GET /tickets`, `GET /queue` and the CSV export take the same `TicketFilters` (a query model, so
each field is a declared query parameter in the OpenAPI and an unknown one is a 422) and a `sort`
among `TICKET_SORTS`. Every sort is a keyset over (column, id): the cursor holds the sort's name
and the last row's key, so a page starts strictly after it and a cursor of another sort is refused.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ARRAY, ColumnElement, Text, bindparam, func, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import DriverStatement, driver_statement, fetch_all_alone, transaction
from services.kit.inputs import Text as PrintableText
from services.kit.pagination import InvalidCursor, PageParams, make_page
from services.property.domain import Category, Source, Status
from services.property.models import HOUSEHOLDS, OPEN_SQL, PHOTOS, TICKETS
from services.property.schemas import Id, TicketPublic
from services.property.visibility import is_guard, is_staff, resident_of

TicketSort = Literal["-created_at", "created_at", "due_at", "-due_at"]
# sort key -> (column, descending)
TICKET_SORTS: dict[str, tuple[str, bool]] = {
    "-created_at": ("created_at", True),
    "created_at": ("created_at", False),
    "due_at": ("due_at", False),
    "-due_at": ("due_at", True),
}
SORT_DESCRIPTION = "`created_at` or `due_at` (the SLA deadline the ticket races), `-` for descending"


class TicketFilters(BaseModel):
    """Each filter given narrows the list; together they all hold.

    FastAPI hands a query model every query parameter (the page's too), so the model cannot refuse
    extra ones itself: the kit's app-wide check refuses any name no part of the route declares.
    """

    status: Status | None = None
    building_id: Id | None = None
    category: Category | None = None
    assignee_id: Id | None = Field(None, description="The steward the ticket is assigned to")
    unit: Annotated[
        PrintableText | None,
        Field(max_length=32, description="Search by the household's unit: `3-201`, or its beginning (`3-2`)"),
    ] = None
    breached: bool | None = Field(None, description="Whether an SLA deadline (response or resolution) was breached")

    def present(self) -> frozenset[str]:
        """The names of the filters given: with the sort, they pick one compiled statement."""
        return frozenset(name for name, value in self if value is not None)

    def params(self) -> dict[str, Any]:
        """The bound values of the conditions `conditions` writes."""
        return {
            "f_status": self.status.value if self.status else None,
            "f_building": self.building_id,
            "f_category": self.category.value if self.category else None,
            "f_assignee": self.assignee_id,
            "f_unit": _like_prefix(self.unit) if self.unit else None,
        }


def _like_prefix(text: str) -> str:
    # `!` escapes: a backslash would depend on standard_conforming_strings as the statement is rendered.
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return escaped + "%"


def conditions(present: frozenset[str], breached: bool | None) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the filters given, with bind parameters named as in `params`."""
    t = TICKETS.c
    found: list[ColumnElement[bool]] = []
    if "status" in present:
        found.append(t.status == bindparam("f_status"))
    if "building_id" in present:
        found.append(t.building_id == bindparam("f_building"))
    if "category" in present:
        found.append(t.category == bindparam("f_category"))
    if "assignee_id" in present:
        found.append(t.assignee_id == bindparam("f_assignee"))
    if "unit" in present:
        h = HOUSEHOLDS.alias("unit_search").c  # aliased: a query that joins households (the export) must not correlate
        units = select(h.id).where(h.community == t.community, h.unit.like(bindparam("f_unit"), escape="!"))
        found.append(t.household_id.in_(units))
    if breached is not None:
        either = t.response_breached_at.is_not(None) | t.resolution_breached_at.is_not(None)
        found.append(either if breached else ~either)
    return found


def ordering(sort: str, after: bool) -> tuple[list[Any], ColumnElement[bool] | None]:
    """ORDER BY for the sort, and (when a cursor is given) the keyset condition after `after_at`/`after_id`."""
    column_name, descending = TICKET_SORTS[sort]
    column, ident = TICKETS.c[column_name], TICKETS.c.id
    order = [column.desc(), ident.desc()] if descending else [column, ident]
    if not after:
        return order, None
    key = tuple_(column, ident)
    bound = tuple_(bindparam("after_at", type_=column.type), bindparam("after_id", type_=ident.type))
    return order, (key < bound if descending else key > bound)


def cursor_params(page: PageParams, sort: str) -> dict[str, Any] | None:
    """The keyset values of the page's cursor, which must have been made for the same sort."""
    after = page.after()
    if after is None:
        return None
    if len(after) != 3 or after[0] != sort or not all(isinstance(v, str) for v in after):
        raise InvalidCursor(("游标不属于此排序", "The cursor was made for another sort"))
    try:
        at = datetime.fromisoformat(after[1])
    except ValueError:
        raise InvalidCursor() from None
    return {"after_at": at, "after_id": after[2]}


def cursor_key(sort: str) -> Any:
    """The next page's cursor values for a row, under the sort."""
    column_name = TICKET_SORTS[sort][0]
    return lambda row: [sort, getattr(row, column_name).isoformat(), row.id]


# --- the lists ---------------------------------------------------------------------------------------


ListScope = Literal["community", "household", "security"]


def list_scope(who: Principal) -> ListScope:
    """Staff list the community's tickets, a security guard the security service's, anyone else their household's."""
    if is_staff(who):
        return "community"
    return "security" if is_guard(who) else "household"


@functools.cache
def _list_statement(scope: ListScope, present: frozenset[str], breached: bool | None, sort: str, cursor: bool) -> DriverStatement:
    """A page of tickets with their photo ids, as one statement; compiled once per scope, combination
    of filters and sort."""
    t = TICKETS.c
    photos = (
        select(func.coalesce(func.array_agg(aggregate_order_by(PHOTOS.c.id, PHOTOS.c.created_at)), literal([], ARRAY(Text))))
        .where(PHOTOS.c.ticket_id == t.id)
        .scalar_subquery()
    )
    query = select(TICKETS, photos.label("photo_ids")).where(
        t.community == bindparam("community"), *conditions(present, breached)
    )
    if scope == "household":
        query = query.where(t.household_id == bindparam("household_id"))
    elif scope == "security":
        query = query.where(t.source == Source.security.value)
    order, keyset = ordering(sort, cursor)
    if keyset is not None:
        query = query.where(keyset)
    return driver_statement(query.order_by(*order).limit(bindparam("limit")))


async def list_tickets(
    session: AsyncSession, who: Principal, page: PageParams, filters: TicketFilters, sort: str
) -> tuple[list[TicketPublic], str | None]:
    """A resident sees their household's tickets; staff see the community's; a guard the security ones."""
    after = cursor_params(page, sort)
    scope = list_scope(who)
    statement = _list_statement(scope, filters.present(), filters.breached, sort, after is not None)
    params: dict[str, Any] = {"community": who.community, "limit": page.limit + 1, **filters.params(), **(after or {})}
    if scope != "household":
        rows = await fetch_all_alone(session, statement.sql, *statement.args(**params))  # one statement: no transaction
    else:
        async with transaction(session):
            resident = await resident_of(session, who)
            rows = await fetch_all_alone(session, statement.sql, *statement.args(household_id=resident.household_id, **params))
    items, cursor = make_page(rows, page.limit, cursor_key(sort))
    return [TicketPublic.model_validate(r) for r in items], cursor


@functools.cache
def _queue_statement(scope: str, present: frozenset[str], breached: bool | None, sort: str, cursor: bool) -> DriverStatement:
    t = TICKETS.c
    query = select(TICKETS).where(t.community == bindparam("community"), *conditions(present, breached))
    # Each scope's condition is a partial index's own predicate, so the planner may use that index.
    if scope == "mine":
        query = query.where(t.assignee_id == bindparam("me"), text(OPEN_SQL))
    elif scope == "community":
        query = query.where(t.status == Status.queued.value)
    else:
        query = query.where(text(OPEN_SQL))
    order, keyset = ordering(sort, cursor)
    if keyset is not None:
        query = query.where(keyset)
    return driver_statement(query.order_by(*order).limit(bindparam("limit")))


async def steward_queue(
    session: AsyncSession, who: Principal, page: PageParams, scope: str, filters: TicketFilters, sort: str
) -> tuple[list[TicketPublic], str | None]:
    """Open tickets: mine, the community queue, or (admins) all; by default the earliest deadline first."""
    after = cursor_params(page, sort)
    statement = _queue_statement(scope, filters.present(), filters.breached, sort, after is not None)
    params: dict[str, Any] = {
        "community": who.community,
        "me": who.subject,
        "limit": page.limit + 1,
        **filters.params(),
        **(after or {}),
    }
    rows = await fetch_all_alone(session, statement.sql, *statement.args(**params))  # one statement: no transaction
    items, cursor = make_page(rows, page.limit, cursor_key(sort))
    return [TicketPublic.model_validate(r) for r in items], cursor
