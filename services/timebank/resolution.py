"""Resolving a pending service transfer: the elder (or a delegate, or a worker) confirms it, which
posts it, or disputes it, which voids it; the scheduled job voids those whose time ran out.

Confirmation is one database call, `tb_confirm_service` (`sql/tb_confirm_service.sql`); a refusal
comes back as its problem's slug and fields, which `confirm_refusal` maps to the problem. Who may
resolve is `tb_may_resolve` (`sql/tb_may_resolve.sql`) on both paths.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from types import SimpleNamespace
from typing import Any

import orjson
from pydantic_core import to_jsonable_python
from sqlalchemy import Boolean, ColumnElement, Row, func, literal, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import fetch_alone, transaction
from services.kit.outbox import outbox_written
from services.kit.problems import Problem
from services.kit.telemetry import current_traceparent
from services.timebank import domain, ledger
from services.timebank.domain import CareAction, now_utc
from services.timebank.events import ServiceConfirmed, ServiceDisputed, publisher
from services.timebank.ledger import Leg
from services.timebank.members import is_worker
from services.timebank.models import CARE, SETTINGS, TRANSFERS
from services.timebank.problems import (
    PROBLEMS_BY_SLUG,
    AccountNotFound,
    AlreadyResolved,
    InsufficientBalance,
    MinutesExceedPending,
    NotAllowedToResolve,
    NotPending,
    TransferNotFound,
    WrongCareRequestState,
)
from services.timebank.schemas import ConfirmIn, DisputeIn
from services.timebank.transfer_ids import json_detail, once, record_refusal, retrying, reuse_problem

EXPIRY_ACTOR = "system:expiry"


async def _pending_for_resolution(
    session: AsyncSession, principal: Principal | None, community: str, pending_id: uuid.UUID
) -> Row[Any]:
    """Lock the pending transfer and its care request (one round trip), and check who may resolve it
    (anyone, for the expiry job: `principal` None).

    The row also carries the community's storage cap, so voiding needs no settings query.
    """
    may_resolve: ColumnElement[bool]
    if principal is None:
        may_resolve = literal(True, Boolean)
    else:
        may_resolve = func.tb_may_resolve(
            community,
            principal.subject,
            func.coalesce(CARE.c.elder_id, ""),
            func.coalesce(CARE.c.volunteer_id, ""),
            is_worker(principal),
            principal.has("steward"),
            type_=Boolean,
        )
    pending = (
        await session.execute(
            select(
                TRANSFERS,
                CARE.c.elder_id,
                CARE.c.volunteer_id,
                CARE.c.status.label("care_status"),
                SETTINGS.c.storage_cap_minutes,
                may_resolve.label("may_resolve"),
            )
            .join(SETTINGS, SETTINGS.c.community == TRANSFERS.c.community)
            .join(CARE, CARE.c.id == TRANSFERS.c.care_request_id)
            .where(TRANSFERS.c.id == pending_id, TRANSFERS.c.community == community)
            .with_for_update(of=[TRANSFERS, CARE])
        )
    ).first()
    if pending is None:
        raise TransferNotFound()
    if not pending.may_resolve:
        assert principal is not None
        if principal.subject == (pending.volunteer_id or ""):
            raise NotAllowedToResolve.volunteer()
        raise TransferNotFound()  # 404 for anyone unrelated
    if pending.phase != "pending":
        raise NotPending()
    if pending.resolution is not None:
        raise AlreadyResolved(resolution=pending.resolution)
    return pending


# Marks the pending row resolved and moves its care request on: one statement, as these always go together.
_RESOLVE = text("""
    WITH resolved AS (
        UPDATE tb_transfers SET resolution = CAST(:resolution AS text), resolved_at = CAST(:now AS timestamptz)
         WHERE id = :pending_id AND resolution IS NULL RETURNING care_request_id)
    UPDATE tb_care_requests SET status = CAST(:care_status AS text)
     WHERE CAST(:care_status AS text) IS NOT NULL AND id = (SELECT care_request_id FROM resolved)""")


async def _resolve(session: AsyncSession, pending: Row[Any], resolution: str, care_action: CareAction, now: datetime) -> None:
    care_status = domain.next_care_status(pending.care_status, care_action).value if pending.care_status else None
    await session.execute(_RESOLVE, {"resolution": resolution, "now": now, "pending_id": pending.id, "care_status": care_status})


# In the driver's form ($n), for `fetch_alone`.
_CONFIRM_SERVICE = (
    "SELECT r.outcome, r.detail, (r.posting).* FROM tb_confirm_service($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
    "$12, $13, $14, $15, $16, $17, $18, $19) AS r"
)
# The care request's moves on confirmation, from the one transition table (the function looks its state up here).
_CARE_ON_CONFIRM = orjson.dumps(
    {src.value: dst.value for (src, action), dst in domain.CARE_TRANSITIONS.items() if action is CareAction.CONFIRM}
).decode()


def confirm_refusal(detail: dict[str, Any]) -> Problem:
    """The problem `tb_confirm_service` refused with: its slug and the fields the problem carries."""
    slug = detail["slug"]
    if slug == MinutesExceedPending.slug:
        return MinutesExceedPending.of(detail["pending_minutes"])
    if slug == WrongCareRequestState.slug:
        return WrongCareRequestState.of(detail["care_status"], CareAction.CONFIRM.value)
    if slug == InsufficientBalance.slug:
        return InsufficientBalance.of(detail["available_minutes"], detail["needed_minutes"])
    if slug == NotAllowedToResolve.slug:
        return NotAllowedToResolve.volunteer()
    if slug == AlreadyResolved.slug:
        return AlreadyResolved(resolution=detail["resolution"])
    if slug == AccountNotFound.slug:
        return AccountNotFound.of(detail["account_ids"])
    return PROBLEMS_BY_SLUG[slug]()  # TransferNotFound, NotPending, SameAccount: no detail


async def _confirm_alone(session: AsyncSession, args: tuple[object, ...]) -> SimpleNamespace:
    row: SimpleNamespace = await fetch_alone(session, _CONFIRM_SERVICE, *args)
    if row.outcome == "posted":
        outbox_written(session)
    return row


async def confirm(
    session: AsyncSession, principal: Principal, pending_id: uuid.UUID, data: ConfirmIn
) -> SimpleNamespace | Row[Any]:
    """Post (part of) a pending service transfer; publishes `timebank.service.confirmed.v1`.

    One statement: `tb_confirm_service` takes the id lock, replays or refuses a reused id, locks
    the pending transfer, its care request and the accounts, applies the rules and writes the
    posting, the resolution and the outbox row. The statement is its own transaction
    (`fetch_alone`: no BEGIN/COMMIT round trips, no lock held across one), or joins the caller's
    when one is open. What it refuses is raised here and recorded like any refused transfer id.
    """
    fp, args = confirmation_args(principal, pending_id, data)
    row = await retrying(partial(_confirm_alone, session, args))
    if row.outcome in ("posted", "replayed"):
        return row
    if row.outcome in ("conflict", "stored"):
        raise reuse_problem(data.id, row.outcome, row.detail)
    problem = confirm_refusal(json_detail(row.detail))
    problem.extensions.setdefault("transfer_id", str(data.id))
    return await record_refusal(session, community=principal.community, transfer_id=data.id, fp=fp, problem=problem)


def confirmation_args(principal: Principal, pending_id: uuid.UUID, data: ConfirmIn) -> tuple[str, tuple[object, ...]]:
    """The fingerprint of the request and `tb_confirm_service`'s arguments, in its order (the
    benchmark's raw asyncpg loop sends the same)."""
    community = principal.community
    fp = ledger.fingerprint("confirm", principal.subject, {"pending": str(pending_id), **data.model_dump(mode="json")})
    traceparent, tracestate = current_traceparent()
    now = now_utc()
    args = (
        data.id,
        pending_id,
        community,
        principal.subject,
        is_worker(principal),
        principal.has("steward"),
        data.minutes,
        fp,
        now,
        ledger.pool_account_id(community),
        ledger.derived_id(data.id, "overflow"),
        _CARE_ON_CONFIRM,
        str(uuid.uuid4()),
        ServiceConfirmed.event_type,
        publisher.source,
        publisher.topic,
        to_jsonable_python(now),
        traceparent,
        tracestate,
    )
    return fp, args


async def _void(
    session: AsyncSession,
    community: str,
    actor: str,
    pending: Row[Any],
    void_id: uuid.UUID,
    fp: str,
    reason: str,
    resolution: str,
    now: datetime,
) -> Row[Any]:
    leg = Leg(
        id=void_id,
        kind=pending.kind,
        phase="voided",
        debit=pending.debit_account_id,
        credit=pending.credit_account_id,
        amount=pending.amount_minutes,
        fingerprint=fp,
        pending_id=pending.id,
        pending_amount=pending.amount_minutes,
        care_request_id=pending.care_request_id,
        service_type=pending.service_type,
        reason=reason,
    )
    written = await ledger.post_legs(session, community, actor, [leg], cap=pending.storage_cap_minutes, now=now)
    await _resolve(session, pending, resolution, CareAction.DISPUTE if resolution == "voided" else CareAction.EXPIRE, now)
    return written[0]


async def dispute(session: AsyncSession, principal: Principal, pending_id: uuid.UUID, data: DisputeIn) -> Row[Any]:
    """Void a pending service transfer: nothing is paid, the payer's minutes are released."""
    fp = ledger.fingerprint("dispute", principal.subject, {"pending": str(pending_id), **data.model_dump(mode="json")})
    work = partial(_void_disputed, session, principal, pending_id, data, fp)
    return await once(session, community=principal.community, transfer_id=data.id, fp=fp, work=work)


async def _void_disputed(
    session: AsyncSession, principal: Principal, pending_id: uuid.UUID, data: DisputeIn, fp: str
) -> Row[Any]:
    pending = await _pending_for_resolution(session, principal, principal.community, pending_id)
    now = now_utc()
    written = await _void(session, principal.community, principal.subject, pending, data.id, fp, data.reason, "voided", now)
    # The volunteer learns the minutes will not be paid; in this transaction, so a replayed id tells no one again.
    await publisher.publish(
        session,
        ServiceDisputed(
            transfer_id=str(data.id),
            pending_transfer_id=str(pending.id),
            request_id=str(pending.care_request_id),
            community=principal.community,
            elder_id=pending.elder_id,
            volunteer_id=pending.volunteer_id or "",
            minutes=pending.amount_minutes,
            service_type=pending.service_type or "",
            disputed_by=principal.subject,
            reason=data.reason,
        ),
        key=str(pending.care_request_id),
        occurred_at=now,
    )
    return written


async def expire_pending(session: AsyncSession, *, limit: int = 200, now: datetime | None = None) -> int:
    """Void pending transfers whose confirmation time ran out (the scheduled job calls this)."""
    now = now or now_utc()
    done = 0
    while done < limit and await retrying(partial(_expire_one, session, now)):
        done += 1
    return done


async def _expire_one(session: AsyncSession, now: datetime) -> bool:
    """Void the pending transfer that timed out first, if any, skipping those another replica holds."""
    async with transaction(session):
        found = (
            await session.execute(
                select(TRANSFERS.c.id, TRANSFERS.c.community)
                .where(TRANSFERS.c.phase == "pending", TRANSFERS.c.resolution.is_(None), TRANSFERS.c.timeout_at < now)
                .order_by(TRANSFERS.c.timeout_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if found is None:
            return False
        pending = await _pending_for_resolution(session, None, found.community, found.id)
        await _void(
            session,
            found.community,
            EXPIRY_ACTOR,
            pending,
            ledger.derived_id(found.id, "expiry"),
            "expiry",
            "confirmation timed out",
            "expired",
            now,
        )
        return True
