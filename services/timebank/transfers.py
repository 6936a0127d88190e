"""Moving hours under a client-chosen id: spending on one's own care, gifts to a verified relative,
donations and funding for the pool, and reversals that correct a posted transfer."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from sqlalchemy import Row, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.timebank import domain, ledger
from services.timebank.community import community_settings
from services.timebank.domain import now_utc
from services.timebank.events import HoursGifted, TransferReversed, publisher
from services.timebank.ledger import Leg
from services.timebank.members import DELEGATE_STAFF_ROLES, get_member, is_verified_relative
from services.timebank.models import ACCOUNTS, CARE, MEMBERS, TRANSFERS
from services.timebank.problems import AlreadyReversed, NotAVerifiedRelative, NotReversible, TransferNotFound
from services.timebank.schemas import DonationIn, FundingIn, GiftIn, ReversalIn, SpendIn
from services.timebank.transfer_ids import get_transfer_row, once


async def spend(session: AsyncSession, principal: Principal, data: SpendIn) -> Row[Any]:
    """A member over the withdrawal age pays for their own care from the community with their hours."""
    fp = ledger.fingerprint("spend", principal.subject, data)
    work = partial(_spend_hours, session, principal, data, fp)
    return await once(session, community=principal.community, transfer_id=data.id, fp=fp, work=work)


async def _spend_hours(session: AsyncSession, principal: Principal, data: SpendIn, fp: str) -> Row[Any]:
    community = principal.community
    now = now_utc()
    settings = await community_settings(session, community)
    member = await get_member(session, community, principal.subject)
    domain.check_withdrawal_allowed(member.birth_date, domain.local_today(now), settings.withdrawal_age)
    target = ledger.community_account_id(community)
    accounts = await ledger.lock_accounts(session, community, {member.account_id, target})
    domain.check_first_withdrawal(
        accounts[member.account_id].balances.available,
        member.first_withdrawal_at is not None,
        settings.min_balance_before_first_withdrawal,
    )
    leg = Leg(
        id=data.id,
        kind="spend",
        phase="posted",
        debit=member.account_id,
        credit=target,
        amount=data.minutes,
        fingerprint=fp,
        service_type=data.service_type,
    )
    written = await ledger.post_legs(
        session, community, principal.subject, [leg], cap=settings.storage_cap_minutes, now=now, accounts=accounts
    )
    if member.first_withdrawal_at is None:
        await session.execute(
            update(MEMBERS)
            .where(MEMBERS.c.community == community, MEMBERS.c.member_id == principal.subject)
            .values(first_withdrawal_at=now)
        )
    return written[0]


async def gift(session: AsyncSession, principal: Principal, data: GiftIn) -> Row[Any]:
    """Give hours to a relative verified by a community worker."""
    fp = ledger.fingerprint("gift", principal.subject, data)
    work = partial(_give, session, principal, data, fp)
    return await once(session, community=principal.community, transfer_id=data.id, fp=fp, work=work)


async def _give(session: AsyncSession, principal: Principal, data: GiftIn, fp: str) -> Row[Any]:
    community = principal.community
    giver = await get_member(session, community, principal.subject)
    receiver = await get_member(session, community, data.to_member_id)
    if not await is_verified_relative(session, community, giver.member_id, receiver.member_id):
        raise NotAVerifiedRelative(to_member_id=data.to_member_id)
    settings = await community_settings(session, community)
    leg = Leg(
        id=data.id,
        kind="gift",
        phase="posted",
        debit=giver.account_id,
        credit=receiver.account_id,
        amount=data.minutes,
        fingerprint=fp,
    )
    written = await ledger.post_legs(
        session, community, principal.subject, [leg], cap=settings.storage_cap_minutes, now=now_utc()
    )
    await publisher.publish(
        session,
        HoursGifted(
            transfer_id=str(data.id),
            community=community,
            from_member_id=giver.member_id,
            to_member_id=receiver.member_id,
            minutes=data.minutes,
        ),
        key=str(data.id),
    )
    return written[0]


async def donate(session: AsyncSession, principal: Principal, data: DonationIn) -> Row[Any]:
    """Give hours to the community pool (公益池)."""
    fp = ledger.fingerprint("donate", principal.subject, data)
    work = partial(_donate, session, principal, data, fp)
    return await once(session, community=principal.community, transfer_id=data.id, fp=fp, work=work)


async def _donate(session: AsyncSession, principal: Principal, data: DonationIn, fp: str) -> Row[Any]:
    community = principal.community
    member = await get_member(session, community, principal.subject)
    settings = await community_settings(session, community)
    leg = Leg(
        id=data.id,
        kind="donation",
        phase="posted",
        debit=member.account_id,
        credit=ledger.pool_account_id(community),
        amount=data.minutes,
        fingerprint=fp,
    )
    written = await ledger.post_legs(
        session, community, principal.subject, [leg], cap=settings.storage_cap_minutes, now=now_utc()
    )
    return written[0]


async def fund_pool(session: AsyncSession, worker: Principal, data: FundingIn) -> Row[Any]:
    """Hours entering the pool from outside (donated or subsidised), from the community account."""
    fp = ledger.fingerprint("fund", worker.subject, data)
    work = partial(_fund, session, worker, data, fp)
    return await once(session, community=worker.community, transfer_id=data.id, fp=fp, work=work)


async def _fund(session: AsyncSession, worker: Principal, data: FundingIn, fp: str) -> Row[Any]:
    community = worker.community
    settings = await community_settings(session, community)
    leg = Leg(
        id=data.id,
        kind="funding",
        phase="posted",
        debit=ledger.community_account_id(community),
        credit=ledger.pool_account_id(community),
        amount=data.minutes,
        fingerprint=fp,
        reason=data.reason,
    )
    written = await ledger.post_legs(session, community, worker.subject, [leg], cap=settings.storage_cap_minutes, now=now_utc())
    return written[0]


async def reverse(session: AsyncSession, worker: Principal, original_id: uuid.UUID, data: ReversalIn) -> Row[Any]:
    """Correct a posted transfer by a new one in the other direction that points at it."""
    fp = ledger.fingerprint("reverse", worker.subject, {"original": str(original_id), **data.model_dump(mode="json")})
    work = partial(_reverse_transfer, session, worker, original_id, data, fp)
    return await once(session, community=worker.community, transfer_id=data.id, fp=fp, work=work)


async def _reverse_transfer(
    session: AsyncSession, worker: Principal, original_id: uuid.UUID, data: ReversalIn, fp: str
) -> Row[Any]:
    community = worker.community
    now = now_utc()
    original = (
        await session.execute(
            select(TRANSFERS).where(TRANSFERS.c.id == original_id, TRANSFERS.c.community == community).with_for_update()
        )
    ).first()
    if original is None:
        raise TransferNotFound()
    if original.phase != "posted" or original.kind in domain.NOT_REVERSIBLE_KINDS:
        raise NotReversible(phase=original.phase, kind=original.kind)
    already = (await session.execute(select(TRANSFERS.c.id).where(TRANSFERS.c.reverses_id == original_id))).first()
    if already is not None:
        raise AlreadyReversed(reversed_by=str(already.id))
    settings = await community_settings(session, community)
    leg = Leg(
        id=data.id,
        kind="reversal",
        phase="posted",
        debit=original.credit_account_id,
        credit=original.debit_account_id,
        amount=original.amount_minutes,
        fingerprint=fp,
        reverses_id=original_id,
        service_type=original.service_type,
        reason=data.reason,
    )
    written = await ledger.post_legs(session, community, worker.subject, [leg], cap=settings.storage_cap_minutes, now=now)
    if original.kind == "service":
        volunteer = (
            await session.execute(select(ACCOUNTS.c.owner_id).where(ACCOUNTS.c.id == original.credit_account_id))
        ).scalar_one()
        await publisher.publish(
            session,
            TransferReversed(
                transfer_id=str(data.id),
                reverses_transfer_id=str(original_id),
                community=community,
                volunteer_id=volunteer or "",
                minutes=original.amount_minutes,
                reason=data.reason,
            ),
            key=str(original_id),
        )
    return written[0]


async def read_transfer(session: AsyncSession, principal: Principal, transfer_id: uuid.UUID) -> Row[Any]:
    """A transfer, for its parties, their verified relatives and staff; 404 otherwise."""
    async with transaction(session):
        row = await get_transfer_row(session, principal.community, transfer_id)
        if principal.has(*DELEGATE_STAFF_ROLES):
            return row
        parties = await transfer_parties(session, row)
        if principal.subject in parties:
            return row
        for party in parties:
            if await is_verified_relative(session, principal.community, principal.subject, party):
                return row
        raise TransferNotFound()


async def transfer_parties(session: AsyncSession, row: Row[Any]) -> set[str]:
    """The members a transfer concerns: its accounts' owners and, for care, the elder it served.

    An elder served from the community pool (公益池) owns neither account, yet confirms the transfer
    and may read it and its posting.
    """
    accounts = [row.debit_account_id, row.credit_account_id]
    owners = select(ACCOUNTS.c.owner_id).where(ACCOUNTS.c.id.in_(accounts), ACCOUNTS.c.owner_id.is_not(None))
    parties = set((await session.execute(owners)).scalars())
    if row.care_request_id is not None:
        elder = select(CARE.c.elder_id).where(CARE.c.id == row.care_request_id)
        parties.add((await session.execute(elder)).scalar_one())
    return parties
