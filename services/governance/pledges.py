"""Service pledges (集体选购): a worker posts an offer (provider, price, minimum households, deadline);
households pledge; the pledge that meets the minimum before the deadline turns every pledge into an
order that property opens on its paid-service path, and later pledges until the deadline each get
theirs; at the deadline an offer short of its minimum lapses and nothing is charged.

Pledges to one offer queue on its row lock (FOR UPDATE), so the minimum is met by exactly one pledge,
also when two households take the last place at once, and the orders are published exactly once per
household (the pledge's primary key is (offer, household)). A household may withdraw its pledge while
the offer is open, on the same lock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.accounts import now_utc
from services.governance.events import PledgeOfferSettled, PledgeOrdered, publisher
from services.governance.pledge_models import PLEDGE_OFFERS, PLEDGES, Pledge, PledgeOffer
from services.governance.pledge_schemas import PledgeOfferCreate, PledgeOfferPublic
from services.governance.statements import RESIDENTS
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page

BATCH = 20


async def post_offer(session: AsyncSession, worker: Principal, data: PledgeOfferCreate) -> PledgeOffer:
    async with transaction(session):
        offer = PledgeOffer(
            community=worker.community,
            title=data.title,
            provider=data.provider,
            service_code=data.service_code,
            price_fen=data.price_fen,
            min_households=data.min_households,
            deadline=data.deadline,
            created_by=worker.subject,
        )
        session.add(offer)
        await session.flush()
        await session.refresh(offer)
        return offer


async def _offer_in(session: AsyncSession, community: str, offer_id: uuid.UUID, *, lock: bool = False) -> PledgeOffer:
    query = select(PledgeOffer).where(PLEDGE_OFFERS.c.id == offer_id, PLEDGE_OFFERS.c.community == community)
    offer = await session.scalar(query.with_for_update() if lock else query)
    if offer is None:
        raise problems.PledgeOfferNotFound()
    return offer


async def _households(session: AsyncSession, offer_id: uuid.UUID) -> int:
    return int(await session.scalar(select(func.count()).select_from(PLEDGES).where(PLEDGES.c.offer_id == offer_id)) or 0)


async def _household_of(session: AsyncSession, who: Principal) -> str | None:
    query = select(RESIDENTS.c.household_id).where(RESIDENTS.c.community == who.community, RESIDENTS.c.resident_id == who.subject)
    household: str | None = await session.scalar(query)
    return household


async def read_offer(session: AsyncSession, who: Principal, offer_id: uuid.UUID) -> PledgeOfferPublic:
    """An offer of the caller's community (any other is 404), its pledge count, and whether the
    caller's household pledged."""
    async with transaction(session):
        offer = await _offer_in(session, who.community, offer_id)
        return await _public(session, who, offer)


async def list_offers(session: AsyncSession, who: Principal, page: PageParams) -> tuple[list[PledgeOfferPublic], str | None]:
    """The community's offers, newest first; the id breaks a tie between offers posted in one instant."""
    query = select(PledgeOffer).where(PLEDGE_OFFERS.c.community == who.community)
    after = page.after_key(datetime, uuid.UUID)
    if after:
        query = query.where(after_key_condition([PLEDGE_OFFERS.c.created_at, PLEDGE_OFFERS.c.id], after, descending=True))
    query = query.order_by(PLEDGE_OFFERS.c.created_at.desc(), PLEDGE_OFFERS.c.id.desc()).limit(page.limit + 1)
    async with transaction(session):
        rows, cursor = make_page(list((await session.scalars(query)).all()), page.limit, _offer_cursor)
        return [await _public(session, who, offer) for offer in rows], cursor


def _offer_cursor(offer: PledgeOffer) -> list[str]:
    assert offer.created_at is not None and offer.id is not None
    return [offer.created_at.isoformat(), str(offer.id)]


async def _public(session: AsyncSession, who: Principal, offer: PledgeOffer) -> PledgeOfferPublic:
    assert offer.id is not None
    household = await _household_of(session, who)
    mine = None
    if household is not None:
        query = select(PLEDGES.c.household_id).where(PLEDGES.c.offer_id == offer.id, PLEDGES.c.household_id == household)
        mine = (await session.scalar(query)) is not None
    public = PledgeOfferPublic.model_validate(offer)
    return public.model_copy(update={"households": await _households(session, offer.id), "my_household_pledged": mine})


async def pledge(session: AsyncSession, resident: Principal, offer_id: uuid.UUID) -> Pledge:
    """Pledge the caller's household; a second pledge for the household (a retry, another member)
    answers the first. The pledge that meets the minimum publishes every pledge's order and the
    outcome; a pledge after that publishes its own order."""
    async with transaction(session):
        offer = await _offer_in(session, resident.community, offer_id, lock=True)
        now = now_utc()
        if not domain.pledge_takes_part(offer.status, offer.deadline, now):
            raise problems.PledgeOfferClosed()
        household = await _household_of(session, resident)
        if household is None:
            raise problems.NoHousehold()
        row = (
            await session.execute(
                insert(PLEDGES)
                .values(offer_id=offer_id, household_id=household, resident_id=resident.subject)
                .on_conflict_do_nothing()
                .returning(*PLEDGES.c)
            )
        ).first()
        if row is None:
            existing = await session.get(Pledge, (offer_id, household))
            assert existing is not None
            return existing
        pledged = Pledge(**row._mapping)
        if offer.status == "reached":
            await _publish_orders(session, offer, [pledged])
            return pledged
        households = await _households(session, offer_id)
        if domain.pledge_minimum_met(households, offer.min_households):
            offer.status = "reached"
            offer.settled_at = now
            await session.flush()
            every = (
                await session.scalars(select(Pledge).where(PLEDGES.c.offer_id == offer_id).order_by(PLEDGES.c.pledged_at))
            ).all()
            await _publish_orders(session, offer, every)
            await _publish_settled(session, offer, households)
        return pledged


async def withdraw(session: AsyncSession, resident: Principal, offer_id: uuid.UUID) -> None:
    """Withdraw the caller's household's pledge (any member may) while the offer is open and before
    its deadline. It takes the offer's row lock as a pledge does, so it and the pledge that would
    meet the minimum are ordered: if that pledge came first, the offer is `reached`, the orders are
    out and the withdrawal is refused; if the withdrawal came first, the pledge counts without it."""
    async with transaction(session):
        offer = await _offer_in(session, resident.community, offer_id, lock=True)
        if offer.status == "reached":
            raise problems.PledgeOrdered()
        if not domain.pledge_takes_part(offer.status, offer.deadline, now_utc()):
            raise problems.PledgeOfferClosed()
        household = await _household_of(session, resident)
        if household is None:
            raise problems.NoHousehold()
        query = delete(PLEDGES).where(PLEDGES.c.offer_id == offer_id, PLEDGES.c.household_id == household)
        if (await session.execute(query.returning(PLEDGES.c.household_id))).first() is None:
            raise problems.PledgeNotFound()


async def _publish_orders(session: AsyncSession, offer: PledgeOffer, pledges: Sequence[Pledge]) -> None:
    for p in pledges:
        pledge_id = f"{offer.id}:{p.household_id}"
        event = PledgeOrdered(
            pledge_id=pledge_id,
            offer_id=str(offer.id),
            community=offer.community,
            household_id=p.household_id,
            resident_id=p.resident_id,
            service_code=offer.service_code,
            title=offer.title,
            provider=offer.provider,
            price_fen=offer.price_fen,
        )
        await publisher.publish(session, event, key=pledge_id)


async def _publish_settled(session: AsyncSession, offer: PledgeOffer, households: int) -> None:
    assert offer.settled_at is not None
    event = PledgeOfferSettled(
        offer_id=str(offer.id),
        community=offer.community,
        outcome="reached" if offer.status == "reached" else "lapsed",
        service_code=offer.service_code,
        min_households=offer.min_households,
        households=households,
        settled_at=offer.settled_at,
    )
    await publisher.publish(session, event, key=str(offer.id))


async def lapse_due(session: AsyncSession) -> int:
    """Lapse up to `BATCH` open offers past their deadline (short of their minimum, or they would be
    `reached`), once across replicas (SKIP LOCKED); nothing was charged, so nothing is undone."""
    async with transaction(session):
        query = (
            select(PledgeOffer)
            .where(PLEDGE_OFFERS.c.status == "open", PLEDGE_OFFERS.c.deadline <= now_utc())
            .order_by(PLEDGE_OFFERS.c.deadline)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        due = (await session.scalars(query)).all()
        for offer in due:
            assert offer.id is not None
            offer.status = "lapsed"
            offer.settled_at = now_utc()
            await session.flush()
            await _publish_settled(session, offer, await _households(session, offer.id))
        return len(due)
