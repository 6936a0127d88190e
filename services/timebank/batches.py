"""Linked batches (TigerBeetle's linked transfers): up to 1,000 transfers a worker enters at once,
from a paper service log (纸质台账) or a round of pool funding, posted all together or not at all."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from sqlalchemy import ARRAY, Row, Text, any_, bindparam, literal, select, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.problems import Problem
from services.timebank import domain, ledger
from services.timebank.community import community_settings
from services.timebank.domain import now_utc
from services.timebank.events import ServiceConfirmed, publisher
from services.timebank.ledger import Leg
from services.timebank.models import FAILED, MEMBERS, TRANSFERS
from services.timebank.problems import PROBLEMS_BY_SLUG, LinkedTransferFailed, NotAnElder, TransferIdConflict, WrongAccountKind
from services.timebank.schemas import BatchIn
from services.timebank.transfer_ids import Refused, retrying

Fingerprints = dict[uuid.UUID, str]


async def post_batch(session: AsyncSession, worker: Principal, data: BatchIn) -> list[Row[Any]]:
    """Up to 1,000 linked transfers in one transaction: all are posted, or none.

    Ids already used with the same body replay as a whole; a refused batch records every id as failed.
    """
    fps = {item.id: ledger.fingerprint("batch", worker.subject, item) for item in data.transfers}
    try:
        return await retrying(partial(_post_once, session, worker, data, fps))
    except Refused as refused:
        problem = refused.problem
    if type(problem) in PROBLEMS_BY_SLUG.values():
        await retrying(partial(_record_refusal, session, worker.community, fps))
    raise LinkedTransferFailed(cause=problem.slug, **problem.extensions)


async def _post_once(session: AsyncSession, worker: Principal, data: BatchIn, fps: Fingerprints) -> list[Row[Any]]:
    """The batch's transaction: replay a batch whose ids all posted with the same bodies, refuse
    ids used otherwise, or post it."""
    community = worker.community
    ids = list(fps)
    async with transaction(session):
        existing = (
            await session.execute(
                union_all(
                    select(
                        TRANSFERS.c.id, TRANSFERS.c.community, TRANSFERS.c.fingerprint, literal(None).label("problem_slug")
                    ).where(TRANSFERS.c.id == any_(ledger.uuid_array(ids))),
                    select(FAILED.c.id, FAILED.c.community, FAILED.c.fingerprint, FAILED.c.problem_slug).where(
                        FAILED.c.id == any_(ledger.uuid_array(ids))
                    ),
                )
            )
        ).all()
        if existing:
            for row in existing:
                if row.community != community or row.fingerprint != fps[row.id]:
                    raise TransferIdConflict(transfer_id=str(row.id))
            if len(existing) == len(ids) and all(r.problem_slug is None for r in existing):
                return await _rows_by_id(session, ids)
            raise LinkedTransferFailed(("批量中的编号已被使用或已失败", "Ids in the batch were used or failed before"))
        try:
            written = await _post_legs(session, worker, data, fps)
        except Problem as problem:
            raise Refused(problem) from None
        wanted = set(ids)  # the batch's own transfers, without the overflow legs the ledger added
        return [r for r in written if r.id in wanted]


async def _record_refusal(session: AsyncSession, community: str, fps: Fingerprints) -> None:
    """Every id of a refused batch stays refused."""
    async with transaction(session):
        await session.execute(
            insert(FAILED)
            .values(
                [
                    {
                        "id": i,
                        "community": community,
                        "fingerprint": fp,
                        "problem_slug": LinkedTransferFailed.slug,
                        "detail_zh": None,
                        "detail_en": None,
                    }
                    for i, fp in fps.items()
                ]
            )
            .on_conflict_do_nothing()
        )


async def _rows_by_id(session: AsyncSession, ids: list[uuid.UUID]) -> list[Row[Any]]:
    rows = {
        r.id: r for r in (await session.execute(select(TRANSFERS).where(TRANSFERS.c.id == any_(ledger.uuid_array(ids))))).all()
    }
    return [rows[i] for i in ids]


async def _post_legs(session: AsyncSession, worker: Principal, data: BatchIn, fps: Fingerprints) -> list[Row[Any]]:
    community = worker.community
    now = now_utc()
    settings = await community_settings(session, community)
    account_ids = {t.debit_account_id for t in data.transfers} | {t.credit_account_id for t in data.transfers}
    accounts = await ledger.lock_accounts(session, community, account_ids)
    owners = {a.owner_id for a in accounts.values() if a.owner_id} | {t.elder_id for t in data.transfers if t.elder_id}
    members = {
        r.member_id: r
        for r in (
            await session.execute(
                select(MEMBERS).where(
                    MEMBERS.c.community == community,
                    MEMBERS.c.member_id == any_(bindparam("owners", sorted(owners), type_=ARRAY(Text()))),
                )
            )
        ).all()
    }
    today = domain.local_today(now)
    confirmed_at = now.isoformat()
    legs: list[Leg] = []
    events: list[dict[str, Any]] = []  # ServiceConfirmed data as dicts: a model per leg costs more than its write
    for index, item in enumerate(data.transfers):
        debit, credit = accounts[item.debit_account_id], accounts[item.credit_account_id]
        kinds = (debit.kind, credit.kind)
        allowed = {
            "service": kinds in (("pool", "member"), ("member", "member")),
            "donation": kinds == ("member", "pool"),
            "funding": kinds == ("community", "pool"),
        }[item.kind]
        if not allowed:
            raise WrongAccountKind(
                (f"{item.kind} 不能从 {kinds[0]} 转入 {kinds[1]}", f"{item.kind} cannot move {kinds[0]} -> {kinds[1]}"),
                index=index,
            )
        if item.kind == "service":
            elder = members.get(item.elder_id or "")
            if elder is None or not elder.is_elder:
                raise NotAnElder(index=index, member_id=item.elder_id)
            if debit.kind == "member":
                if debit.owner_id != item.elder_id:
                    raise NotAnElder(("服务应由受助老人本人账户支付", "The elder's own account must pay"), index=index)
                domain.check_withdrawal_allowed(elder.birth_date, today, settings.withdrawal_age)
            events.append(
                {
                    "transfer_id": str(item.id),  # also the event's key
                    "community": community,
                    "volunteer_id": credit.owner_id or "",
                    "elder_id": item.elder_id or "",
                    "minutes": item.minutes,
                    "service_type": item.service_type or "other",
                    "confirmed_at": confirmed_at,
                }
            )
        legs.append(
            Leg(
                id=item.id,
                kind=item.kind,
                phase="posted",
                debit=debit.id,
                credit=credit.id,
                amount=item.minutes,
                fingerprint=fps[item.id],
                service_type=item.service_type,
            )
        )
    written = await ledger.post_legs(
        session, community, worker.subject, legs, cap=settings.storage_cap_minutes, now=now, accounts=accounts
    )
    await publisher.publish_many(session, ServiceConfirmed.event_type, events, [e["transfer_id"] for e in events])
    return written
