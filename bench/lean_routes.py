"""The lean baseline of `bench/http_paths.py`: what a lean FastAPI service doing the same work as
each measured route would be. FastAPI, an asyncpg pool, the same SQL the service sends, the same
response model, the kit's cached token check and problem responses; nothing else. The ticket filing
and the free-spot search are in `bench/lean_filings.py`.

Served by `uvicorn --factory bench.lean_routes:create_lean_app` with `LEAN_DATABASE_URL` (the
service's database) and `LEAN_JWKS_URL`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from pydantic_core import to_jsonable_python

from bench.lean_filings import filings
from services.governance.schemas import PointsPublic
from services.kit.auth import CurrentPrincipal, TokenVerifier
from services.kit.db import plain_url
from services.kit.pagination import Page
from services.kit.problems import Conflict, NotFound, install_problem_handlers
from services.kit.telemetry import current_traceparent
from services.property.schemas import TicketPublic
from services.timebank import ledger
from services.timebank.domain import now_utc
from services.timebank.events import ServiceConfirmed, publisher
from services.timebank.members import is_worker
from services.timebank.resolution import _CARE_ON_CONFIRM, _CONFIRM_SERVICE
from services.timebank.schemas import Balance, ConfirmIn, MemberOut, PassbookEntry, TransferOut

lean = APIRouter()


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


@lean.get("/timebank/members/me", response_model=MemberOut)
async def lean_members_me(request: Request, principal: CurrentPrincipal) -> MemberOut:
    row = await pool_of(request).fetchrow(
        "SELECT m.*, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted FROM tb_members m "
        "JOIN tb_accounts a ON a.id = m.account_id WHERE m.community = $1 AND m.member_id = $2",
        principal.community,
        principal.subject,
    )
    if row is None:
        raise NotFound(("不是成员", "Not a member"))
    balance = Balance(
        posted_minutes=row["credits_posted"] - row["debits_posted"],
        available_minutes=row["credits_posted"] - row["debits_posted"] - row["debits_pending"],
        pending_in_minutes=row["credits_pending"],
        pending_out_minutes=row["debits_pending"],
    )
    return MemberOut(**{k: row[k] for k in MemberOut.model_fields if k != "balance"}, balance=balance)


@lean.get("/timebank/members/me/passbook", response_model=Page[PassbookEntry])
async def lean_passbook(request: Request, principal: CurrentPrincipal) -> Page[PassbookEntry]:
    async with pool_of(request).acquire() as conn, conn.transaction():
        member = await conn.fetchrow(
            "SELECT account_id FROM tb_members WHERE community = $1 AND member_id = $2", principal.community, principal.subject
        )
        if member is None:
            raise NotFound(("不是成员", "Not a member"))
        account = member["account_id"]
        rows = await conn.fetch(
            "SELECT * FROM tb_transfers WHERE phase = 'posted' AND (debit_account_id = $1 OR credit_account_id = $1) "
            "ORDER BY seq DESC LIMIT 21",
            account,
        )
    items = []
    for r in rows[:20]:
        credited = r["credit_account_id"] == account
        items.append(
            PassbookEntry(
                transfer_id=r["id"],
                seq=r["seq"],
                kind=r["kind"],
                minutes=r["amount_minutes"] if credited else -r["amount_minutes"],
                balance_after=r["credit_balance_after"] if credited else r["debit_balance_after"],
                counterparty_account_id=r["debit_account_id"] if credited else r["credit_account_id"],
                service_type=r["service_type"],
                reason=r["reason"],
                pending_id=r["pending_id"],
                reverses_id=r["reverses_id"],
                created_at=r["created_at"],
            )
        )
    return Page[PassbookEntry](items=items, next_cursor="next" if len(rows) > 20 else None)


@lean.post("/timebank/transfers/{pending_id}/confirm", response_model=TransferOut, status_code=201)
async def lean_confirm(request: Request, pending_id: uuid.UUID, body: ConfirmIn, principal: CurrentPrincipal) -> TransferOut:
    """The same one statement as the time bank's confirmation (`tb_confirm_service`), with the same
    arguments: the fingerprint, the ids it derives, the outbox event's envelope."""
    community = principal.community
    fp = ledger.fingerprint("confirm", principal.subject, {"pending": str(pending_id), **body.model_dump(mode="json")})
    traceparent, tracestate = current_traceparent()
    now = now_utc()
    row = await pool_of(request).fetchrow(
        _CONFIRM_SERVICE,
        body.id,
        pending_id,
        community,
        principal.subject,
        is_worker(principal),
        principal.has("steward"),
        body.minutes,
        fp,
        now,
        ledger.pool_account_id(community),
        ledger.derived_id(body.id, "overflow"),
        _CARE_ON_CONFIRM,
        str(uuid.uuid4()),
        ServiceConfirmed.event_type,
        publisher.source,
        publisher.topic,
        to_jsonable_python(now),
        traceparent,
        tracestate,
    )
    if row is None or row["outcome"] not in ("posted", "replayed"):
        raise Conflict(("未确认", "Not confirmed"))
    return TransferOut.model_validate(dict(row))


@lean.get("/property/tickets", response_model=Page[TicketPublic])
async def lean_tickets(request: Request, principal: CurrentPrincipal) -> Page[TicketPublic]:
    """A steward's view of the community's tickets, newest first, with each one's photo ids."""
    if not principal.is_staff:
        raise NotFound(("仅限员工", "Staff only"))
    async with pool_of(request).acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT * FROM tickets WHERE community = $1 ORDER BY created_at DESC, id DESC LIMIT 21", principal.community
        )
        ids = [r["id"] for r in rows[:20]]
        photos: dict[str, list[str]] = {i: [] for i in ids}
        for p in await conn.fetch("SELECT ticket_id, id FROM photos WHERE ticket_id = ANY($1) ORDER BY created_at", ids):
            photos[p["ticket_id"]].append(p["id"])
    items = [TicketPublic.model_validate({**r, "photo_ids": photos[r["id"]]}) for r in rows[:20]]
    return Page[TicketPublic](items=items, next_cursor="next" if len(rows) > 20 else None)


@lean.get("/governance/me/points", response_model=PointsPublic)
async def lean_points(request: Request, principal: CurrentPrincipal) -> PointsPublic:
    async with pool_of(request).acquire() as conn, conn.transaction():
        account = await conn.fetchrow(
            "SELECT balance, reserved, debt FROM gov_accounts WHERE community = $1 AND resident_id = $2",
            principal.community,
            principal.subject,
        )
        expiring = await conn.fetchval(
            "SELECT coalesce(sum(remaining), 0) FROM gov_lots WHERE community = $1 AND resident_id = $2 AND remaining > 0 "
            "AND expires_at IS NOT NULL AND expires_at <= now() + interval '30 days'",
            principal.community,
            principal.subject,
        )
    if account is None:
        return PointsPublic(resident_id=principal.subject, balance=0, reserved=0, debt=0, expiring_within_30_days=0)
    return PointsPublic(resident_id=principal.subject, **account, expiring_within_30_days=expiring)


@asynccontextmanager
async def lean_lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.token_verifier = TokenVerifier(
        os.environ["LEAN_JWKS_URL"], issuer="community-gateway", audience="community-platform"
    )
    async with asyncpg.create_pool(plain_url(os.environ["LEAN_DATABASE_URL"]), min_size=4, max_size=10) as pool:
        app.state.pool = pool
        yield


def create_lean_app() -> FastAPI:
    """The baseline: what a lean FastAPI service doing the same work would be."""
    app = FastAPI(lifespan=lean_lifespan, openapi_url=None)
    install_problem_handlers(app)
    app.include_router(lean)
    app.include_router(filings)
    return app
