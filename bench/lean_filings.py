"""Two more lean twins for `bench/http_paths.py`, mounted by `bench/lean_routes.py`: a resident
filing a property ticket (a write, with its idempotency key and outbox row in one transaction) and
parking's free-spot search. Each sends the same SQL as the service's route, through an asyncpg pool,
and answers with the same response model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from services.kit.auth import CurrentPrincipal
from services.kit.idempotency import IdempotentRequest
from services.kit.inputs import Timestamp
from services.kit.pagination import Page
from services.kit.problems import NotFound
from services.parking import bookings
from services.parking.domain import fee_fen
from services.parking.schemas import FreeSpot
from services.property import domain
from services.property.domain import Category, Priority
from services.property.placement import PLACEMENT, Placement, policy_of, route_of
from services.property.schemas import TicketCreate, TicketPublic
from services.property.tickets import FILE_TICKET, resident_filing, ticket_args

filings = APIRouter()


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


# The property service's statements for a resident's repair ticket without photos, in its order
# (the key's claim, where the ticket goes: `property/placement.py`'s one read, the count, the
# ticket with its step and its outbox row: `property/tickets.py`'s one write, the key's answer).
CLAIM_KEY = (
    "INSERT INTO kit_idempotency_keys (scope, key, fingerprint, status_code) VALUES ($1, $2, $3, 0) "
    "ON CONFLICT DO NOTHING RETURNING key"
)
COUNT = (
    "INSERT INTO daily_ticket_counts (resident_id, day, count) VALUES ($1, $2, 1) "
    "ON CONFLICT (resident_id, day) DO UPDATE SET count = daily_ticket_counts.count + 1 "
    "WHERE daily_ticket_counts.count < $3 RETURNING count"
)
STORE_KEY = "UPDATE kit_idempotency_keys SET status_code = 201, body = $3::jsonb WHERE scope = $1 AND key = $2"
LIMIT = 10**9  # the bench's daily limit, as the service's settings say


@filings.post("/property/tickets", status_code=201, response_model=TicketPublic)
async def lean_submit_ticket(
    request: Request,
    body: TicketCreate,
    principal: CurrentPrincipal,
    key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)] = None,
) -> TicketPublic | JSONResponse:
    """A resident's repair ticket, routed to the building's steward on duty, its deadlines from the
    community's SLA policy, its submission step, its outbox event and the idempotency key's claim
    and stored response: one transaction, each statement the service sends."""
    if not principal.has("resident") or body.category == Category.service or body.photo_ids:
        raise NotFound(("仅报修", "Only a resident's repair without photos here"))
    scope = f"{principal.subject}:POST:{request.url.path}"
    at = datetime.now(UTC)
    async with pool_of(request).acquire() as conn, conn.transaction():
        if key is not None:
            claimed = await conn.fetchval(CLAIM_KEY, scope, key, IdempotentRequest.fingerprint(body))
            if claimed is None:
                raise NotFound(("键已用", "Replays are not measured"))
        category, priority = Category(body.category), Priority(body.priority)
        args = PLACEMENT.args(
            resident=principal.subject, community=principal.community, category=category.value, priority=priority.value
        )
        place = await conn.fetchrow(PLACEMENT.sql, *args)
        if place is None or place["building_found"] is None:
            raise NotFound(("未登记", "Not registered"))
        row = SimpleNamespace(**{**place, "shifts": json.loads(place["shifts"])})  # json arrives as text here
        route, policy = route_of(row, at), policy_of(row, category, priority)
        if await conn.fetchval(COUNT, place["resident_id"], domain.local_day(at), LIMIT) is None:
            raise NotFound(("超限", "Daily limit"))
        where = Placement(place["resident_id"], place["household_id"], place["building_id"], route, policy)
        filing = resident_filing(principal.community, where, body, (None, False))
        ticket = await conn.fetchrow(FILE_TICKET.sql, *ticket_args(filing, route, policy, at))
        public = TicketPublic.model_validate({**ticket, "photo_ids": []})
        if key is not None:
            await conn.execute(STORE_KEY, scope, key, public.model_dump_json())
    return public


# The service's search, its named parameters as the driver's.
FREE_SPOTS = (
    bookings.SEARCH_SQL.format(filters="")
    .replace(":community", "$1")
    .replace(":start", "$2")
    .replace(":end", "$3")
    .replace(":limit", "$4")
)


@filings.get("/parking/free-spots", response_model=Page[FreeSpot])
async def lean_free_spots(
    request: Request,
    principal: CurrentPrincipal,
    starts_at: Annotated[Timestamp, Query()],
    ends_at: Annotated[Timestamp, Query()],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[FreeSpot]:
    """Verified spots of the community free for the range, with the price and the fee, by spot id."""
    rows = await pool_of(request).fetch(FREE_SPOTS, principal.community, starts_at, ends_at, limit + 1)
    spots = [FreeSpot(**r, fee_fen=fee_fen(starts_at, ends_at, r["price_fen_per_30min"])) for r in rows[:limit]]
    return Page[FreeSpot](items=spots, next_cursor="next" if len(rows) > limit else None)
