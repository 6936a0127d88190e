"""Decisions (表决事项): a worker drafts one and opens it, which freezes its roll; voters list theirs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, func, insert, select
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import problems
from services.governance.accounts import now_utc
from services.governance.decision_models import (
    BALLOTS,
    DECISION_OWNERS,
    DECISION_UNITS,
    DECISION_VOTERS,
    DECISIONS,
    PROXIES,
    ROLL_UNITS,
    Decision,
    ProxyAuthorisation,
)
from services.governance.decision_schemas import DecisionCreate, DecisionPublic, ProxyCreate
from services.governance.statements import RESIDENTS
from services.governance.tally import Kind, owner_key
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page


async def draft(session: AsyncSession, worker: Principal, data: DecisionCreate) -> Decision:
    async with transaction(session):
        decision = Decision(
            community=worker.community,
            kind=data.kind.value,
            question=data.question,
            options=list(data.options),
            opens_at=data.opens_at,
            closes_at=data.closes_at,
            ballots_by_name=data.ballots_by_name,
            created_by=worker.subject,
        )
        session.add(decision)
        await session.flush()
        await session.refresh(decision)
        return decision


async def decision_in(session: AsyncSession, community: str, decision_id: uuid.UUID, *, lock: bool = False) -> Decision:
    """The community's decision, or `DecisionNotFound`; `lock` takes it FOR UPDATE."""
    query = select(Decision).where(DECISIONS.c.id == decision_id, DECISIONS.c.community == community)
    if lock:
        query = query.with_for_update()
    decision = await session.scalar(query)
    if decision is None:
        raise problems.DecisionNotFound()
    return decision


async def open_decision(session: AsyncSession, worker: Principal, decision_id: uuid.UUID) -> Decision:
    """Open a draft and freeze its roll: the units (area, owner key) and who may vote, copied now."""
    async with transaction(session):
        decision = await decision_in(session, worker.community, decision_id, lock=True)
        if decision.status != "draft":
            raise problems.DecisionAlreadyOpened()
        if decision.closes_at <= now_utc():
            raise problems.DecisionNotOpen(("截止时间已过", "The closing time has passed"))
        await _freeze_roll(session, decision)
        decision.status = "open"
        decision.opened_at = now_utc()
        await session.flush()
        return decision


async def _freeze_roll(session: AsyncSession, decision: Decision) -> None:
    kind = Kind(decision.kind)
    units = (await session.execute(select(ROLL_UNITS).where(ROLL_UNITS.c.community == decision.community))).all()
    if units:
        rows = [
            {
                "decision_id": decision.id,
                "household_id": u.household_id,
                "area": u.area,
                # A poll gives each household one vote; owners count by 法释〔2009〕7号 第九条.
                "owner_key": owner_key(u.household_id, sold=u.sold, buyer_key=u.buyer_key) if kind.by_owners else u.household_id,
            }
            for u in units
        ]
        await session.execute(insert(DECISION_UNITS), rows)
        owners = (
            select(DECISION_UNITS.c.decision_id, DECISION_UNITS.c.owner_key, func.sum(DECISION_UNITS.c.area))
            .where(DECISION_UNITS.c.decision_id == decision.id)
            .group_by(DECISION_UNITS.c.decision_id, DECISION_UNITS.c.owner_key)
        )
        await session.execute(insert(DECISION_OWNERS).from_select(["decision_id", "owner_key", "area"], owners))
    voters = (
        select(DECISION_UNITS.c.decision_id, RESIDENTS.c.resident_id, RESIDENTS.c.household_id, DECISION_UNITS.c.owner_key)
        .join(
            RESIDENTS,
            and_(RESIDENTS.c.community == decision.community, RESIDENTS.c.household_id == DECISION_UNITS.c.household_id),
        )
        .where(DECISION_UNITS.c.decision_id == decision.id)
    )
    if kind.by_owners:
        voters = voters.where(RESIDENTS.c.owner)
    columns = ["decision_id", "resident_id", "household_id", "owner_key"]
    await session.execute(insert(DECISION_VOTERS).from_select(columns, voters))


async def visible_decision(session: AsyncSession, who: Principal, decision_id: uuid.UUID) -> DecisionPublic:
    """Staff see every decision of their community; a resident only those whose roll they are on
    (or hold a recorded proxy for someone on); anything else is `DecisionNotFound`. A closed
    decision's result lists every receipt under its option, read from the ballots."""
    async with transaction(session):
        decision = await decision_in(session, who.community, decision_id)
        if not (who.is_staff or await _may_see(session, who, decision_id)):
            raise problems.DecisionNotFound()
        public = DecisionPublic.model_validate(decision)
        if decision.result is None:
            return public
        receipts: dict[str, list[str]] = {}
        query = (
            select(BALLOTS.c.option, BALLOTS.c.receipt)
            .where(BALLOTS.c.decision_id == decision_id)
            .order_by(BALLOTS.c.option, BALLOTS.c.receipt)
        )
        for option, receipt in (await session.execute(query)).all():
            receipts.setdefault(option, []).append(receipt)
        result = dict(decision.result)
        result["options"] = [{**o, "receipts": receipts.get(o["option"], [])} for o in result["options"]]
        return public.model_copy(update={"result": result})


async def _may_see(session: AsyncSession, who: Principal, decision_id: uuid.UUID) -> bool:
    proxied = select(PROXIES.c.owner_id).where(PROXIES.c.community == who.community, PROXIES.c.proxy_id == who.subject)
    query = select(DECISION_VOTERS.c.resident_id).where(
        DECISION_VOTERS.c.decision_id == decision_id,
        (DECISION_VOTERS.c.resident_id == who.subject) | DECISION_VOTERS.c.resident_id.in_(proxied),
    )
    return (await session.scalar(query.limit(1))) is not None


def _my_decision_cursor(row: tuple[Decision, str | None]) -> list[str]:
    return [row[0].closes_at.isoformat(), str(row[0].id)]


async def my_open_decisions(
    session: AsyncSession, me: Principal, page: PageParams
) -> tuple[list[tuple[Decision, str | None]], str | None]:
    """The open decisions I may vote on, soonest closing first, each with the receipt of the ballot
    cast for my voter key. The voters' (resident_id, decision_id) index finds mine."""
    after = page.after_key(datetime, uuid.UUID)
    async with transaction(session):
        mine = (
            select(DECISION_VOTERS.c.decision_id, DECISION_VOTERS.c.household_id)
            .where(DECISION_VOTERS.c.resident_id == me.subject)
            .subquery()
        )
        query = (
            select(Decision, mine.c.household_id)
            .join(mine, mine.c.decision_id == DECISIONS.c.id)
            .where(DECISIONS.c.community == me.community, DECISIONS.c.status == "open")
        )
        if after:
            query = query.where(after_key_condition([DECISIONS.c.closes_at, DECISIONS.c.id], after))
        query = query.order_by(DECISIONS.c.closes_at, DECISIONS.c.id).limit(page.limit + 1)
        out: list[tuple[Decision, str | None]] = []
        for decision, household_id in (await session.execute(query)).all():
            key = select(DECISION_UNITS.c.owner_key).where(
                DECISION_UNITS.c.decision_id == decision.id, DECISION_UNITS.c.household_id == household_id
            )
            receipt = await session.scalar(
                select(BALLOTS.c.receipt).where(
                    BALLOTS.c.decision_id == decision.id, BALLOTS.c.voter_key == key.scalar_subquery()
                )
            )
            out.append((decision, receipt))
    return make_page(out, page.limit, _my_decision_cursor)


def _decision_cursor(decision: Decision) -> list[str]:
    assert decision.created_at is not None and decision.id is not None
    return [decision.created_at.isoformat(), str(decision.id)]


async def list_decisions(session: AsyncSession, staff: Principal, page: PageParams) -> tuple[list[Decision], str | None]:
    """The community's decisions, newest first; the id breaks a tie between decisions drafted in one instant."""
    query = select(Decision).where(DECISIONS.c.community == staff.community)
    after = page.after_key(datetime, uuid.UUID)
    if after:
        query = query.where(after_key_condition([DECISIONS.c.created_at, DECISIONS.c.id], after, descending=True))
    query = query.order_by(DECISIONS.c.created_at.desc(), DECISIONS.c.id.desc()).limit(page.limit + 1)
    async with transaction(session):
        rows = list((await session.scalars(query)).all())
    return make_page(rows, page.limit, _decision_cursor)


async def record_proxy(session: AsyncSession, worker: Principal, data: ProxyCreate) -> ProxyAuthorisation:
    """Record a proxy the worker has verified (a written authorisation, or a registered relative of an
    elder); recording it twice keeps the first."""
    async with transaction(session):
        key = {"community": worker.community, "owner_id": data.owner_id, "proxy_id": data.proxy_id}
        values = {"basis": data.basis.value, "relation": data.relation, "recorded_by": worker.subject}
        await session.execute(upsert(PROXIES).values(**key, **values).on_conflict_do_nothing())
        proxy = await session.get(ProxyAuthorisation, tuple(key.values()))
        assert proxy is not None
        return proxy
