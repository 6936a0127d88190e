"""Members: enrolment, the birth date and family links a worker verifies, who may see a member, and
the passbook (存折)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import DriverStatement, driver_statement, fetch_all_alone, fetch_alone, transaction
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.kit.problems import Forbidden
from services.timebank import ledger
from services.timebank.community import ensure_community
from services.timebank.domain import now_utc
from services.timebank.events import RelativeVerified, publisher
from services.timebank.models import ACCOUNTS, MEMBERS, RELATIVES, TRANSFERS
from services.timebank.problems import NotAMember, NotAVerifiedRelative
from services.timebank.schemas import AgeVerification, MemberEnrol, PassbookEntry, RelativeIn

WORKER_ROLES = ("community_worker",)
DELEGATE_STAFF_ROLES = ("steward", "community_worker")


def is_worker(p: Principal) -> bool:
    return p.has(*WORKER_ROLES)


async def get_member(session: AsyncSession, community: str, member_id: str, *, lock: bool = False) -> Row[Any]:
    q = select(MEMBERS).where(MEMBERS.c.community == community, MEMBERS.c.member_id == member_id)
    row = (await session.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise NotAMember(member_id=member_id)
    return row


async def is_verified_relative(session: AsyncSession, community: str, a: str, b: str) -> bool:
    return (
        await session.execute(
            select(RELATIVES.c.relation).where(
                RELATIVES.c.community == community, RELATIVES.c.member_id == a, RELATIVES.c.relative_id == b
            )
        )
    ).first() is not None


_MEMBER_VIEW = driver_statement(
    select(MEMBERS, ACCOUNTS.c.debits_pending, ACCOUNTS.c.debits_posted, ACCOUNTS.c.credits_pending, ACCOUNTS.c.credits_posted)
    .join(ACCOUNTS, ACCOUNTS.c.id == MEMBERS.c.account_id)
    .where(MEMBERS.c.community == bindparam("community"), MEMBERS.c.member_id == bindparam("member_id"))
)


async def member_view(session: AsyncSession, community: str, member_id: str) -> Any:
    """The member with its account's totals: one statement, alone or in the caller's transaction."""
    row = await fetch_alone(session, _MEMBER_VIEW.sql, *_MEMBER_VIEW.args(community=community, member_id=member_id))
    if row is None:
        raise NotAMember(member_id=member_id)
    return row


async def enrol(session: AsyncSession, principal: Principal, data: MemberEnrol) -> tuple[Any, bool]:
    """Enrol the caller (or, for a worker, anyone) as volunteer and/or elder; adds roles if enrolled."""
    member_id = data.member_id or principal.subject
    if member_id != principal.subject and not is_worker(principal):
        raise Forbidden(("只有社工可为他人登记", "Only a community worker may enrol someone else"))
    community = principal.community
    async with transaction(session):
        await ensure_community(session, community)
        account_id = ledger.member_account_id(community, member_id)
        await session.execute(
            insert(ACCOUNTS)
            .values(id=account_id, community=community, kind="member", owner_id=member_id)
            .on_conflict_do_nothing()
        )
        created = (
            await session.execute(
                insert(MEMBERS)
                .values(
                    community=community,
                    member_id=member_id,
                    account_id=account_id,
                    is_volunteer=data.volunteer,
                    is_elder=data.elder,
                )
                .on_conflict_do_nothing()
                .returning(MEMBERS.c.member_id)
            )
        ).first() is not None
        if not created:
            await session.execute(
                update(MEMBERS)
                .where(MEMBERS.c.community == community, MEMBERS.c.member_id == member_id)
                .values(is_volunteer=MEMBERS.c.is_volunteer | data.volunteer, is_elder=MEMBERS.c.is_elder | data.elder)
            )
        return await member_view(session, community, member_id), created


async def verify_age(session: AsyncSession, worker: Principal, member_id: str, data: AgeVerification) -> Any:
    async with transaction(session):
        await get_member(session, worker.community, member_id, lock=True)
        await session.execute(
            update(MEMBERS)
            .where(MEMBERS.c.community == worker.community, MEMBERS.c.member_id == member_id)
            .values(
                birth_date=data.birth_date,
                priority_elder=data.priority_elder,
                age_verified_by=worker.subject,
                age_verified_at=func.now(),
            )
        )
        return await member_view(session, worker.community, member_id)


async def verify_relative(session: AsyncSession, worker: Principal, member_id: str, data: RelativeIn) -> Row[Any]:
    community = worker.community
    if member_id == data.relative_id:
        raise NotAVerifiedRelative(("不能登记自己为亲属", "A member cannot be their own relative"))
    async with transaction(session):
        await get_member(session, community, member_id)
        await get_member(session, community, data.relative_id)
        added = 0
        for a, b in ((member_id, data.relative_id), (data.relative_id, member_id)):
            inserted = await session.execute(
                insert(RELATIVES)
                .values(community=community, member_id=a, relative_id=b, relation=data.relation, verified_by=worker.subject)
                .on_conflict_do_nothing()
                .returning(RELATIVES.c.member_id)
            )
            added += len(inserted.all())
        if added:  # a repeated verification changes nothing and tells no one again
            now = now_utc()
            await publisher.publish(
                session,
                RelativeVerified(community=community, member_id=member_id, relative_id=data.relative_id, verified_at=now),
                key=member_id,
                occurred_at=now,
            )
        return (
            await session.execute(
                select(RELATIVES).where(
                    RELATIVES.c.community == community,
                    RELATIVES.c.member_id == member_id,
                    RELATIVES.c.relative_id == data.relative_id,
                )
            )
        ).one()


async def list_relatives(
    session: AsyncSession, community: str, member_id: str, page: PageParams
) -> tuple[list[Row[Any]], str | None]:
    """A member's relatives by id: the primary key (community, member_id, relative_id) serves the keyset."""
    query = select(RELATIVES).where(RELATIVES.c.community == community, RELATIVES.c.member_id == member_id)
    after = page.after_key(str)
    if after:
        query = query.where(RELATIVES.c.relative_id > after[0])
    async with transaction(session):
        rows = list((await session.execute(query.order_by(RELATIVES.c.relative_id).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda row: [row.relative_id])


async def list_awaiting_verification(
    session: AsyncSession, community: str, elder: bool | None, page: PageParams
) -> tuple[list[Row[Any]], str | None]:
    """Members whose birth date no worker has verified, oldest enrolment first: the partial index
    `ix_tb_members_awaiting_verification` serves the keyset (enrolled_at, member_id)."""
    m = MEMBERS.c
    query = select(m.member_id, m.is_volunteer, m.is_elder, m.enrolled_at).where(
        m.community == community, m.age_verified_at.is_(None)
    )
    if elder is not None:
        query = query.where(m.is_elder.is_(elder))
    after = page.after_key(datetime, str)
    if after:
        query = query.where(after_key_condition([m.enrolled_at, m.member_id], after))
    async with transaction(session):
        rows = list((await session.execute(query.order_by(m.enrolled_at, m.member_id).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda row: [row.enrolled_at.isoformat(), row.member_id])


def may_see_member_by_role(principal: Principal, member_id: str) -> bool:
    """The member themself and delegate staff see a member without a look-up."""
    return member_id == principal.subject or principal.has(*DELEGATE_STAFF_ROLES)


async def may_see_member(session: AsyncSession, principal: Principal, member_id: str) -> bool:
    return may_see_member_by_role(principal, member_id) or await is_verified_relative(
        session, principal.community, principal.subject, member_id
    )


async def read_member(session: AsyncSession, principal: Principal, member_id: str) -> Any:
    if may_see_member_by_role(principal, member_id):
        return await member_view(session, principal.community, member_id)  # one statement: no transaction to open
    async with transaction(session):
        if not await may_see_member(session, principal, member_id):
            raise NotAMember(member_id=member_id)  # 404: another resident's membership is not disclosed
        return await member_view(session, principal.community, member_id)


def _passbook_statement() -> DriverStatement:
    """The member's account and a page of its posted transfers, newest first, in one statement: no
    row when there is no such member, one row without a transfer when it has none."""
    t, account = TRANSFERS.c, MEMBERS.c.account_id
    page = (
        select(TRANSFERS)
        .where(
            t.phase == "posted", or_(t.debit_account_id == account, t.credit_account_id == account), t.seq < bindparam("before")
        )
        .order_by(t.seq.desc())
        .limit(bindparam("limit"))
        .lateral("page")
    )
    return driver_statement(
        select(account.label("member_account_id"), page)
        .select_from(MEMBERS.outerjoin(page, true()))
        .where(MEMBERS.c.community == bindparam("community"), MEMBERS.c.member_id == bindparam("member_id"))
    )


_PASSBOOK = _passbook_statement()
_NO_CURSOR = 2**63 - 1  # above every seq


async def passbook(
    session: AsyncSession, principal: Principal, member_id: str, page: PageParams
) -> tuple[list[PassbookEntry], str | None]:
    """The member's posted transfers, newest first, each with the balance after it (存折)."""
    after = page.after()
    args = _PASSBOOK.args(
        community=principal.community,
        member_id=member_id,
        before=int(after[0]) if after else _NO_CURSOR,
        limit=page.limit + 1,
    )
    if may_see_member_by_role(principal, member_id):
        found = await fetch_all_alone(session, _PASSBOOK.sql, *args)  # one statement: no transaction to open
    else:
        async with transaction(session):
            if not await may_see_member(session, principal, member_id):
                raise NotAMember(member_id=member_id)
            found = await fetch_all_alone(session, _PASSBOOK.sql, *args)
    if not found:
        raise NotAMember(member_id=member_id)
    account = found[0].member_account_id
    rows = [r for r in found if r.id is not None]
    items, cursor = make_page(rows, page.limit, lambda r: [r.seq])
    entries = []
    for r in items:
        credited = r.credit_account_id == account
        entries.append(
            PassbookEntry(
                transfer_id=r.id,
                seq=r.seq,
                kind=r.kind,
                minutes=r.amount_minutes if credited else -r.amount_minutes,
                balance_after=r.credit_balance_after if credited else r.debit_balance_after,
                counterparty_account_id=r.debit_account_id if credited else r.credit_account_id,
                service_type=r.service_type,
                reason=r.reason,
                pending_id=r.pending_id,
                reverses_id=r.reverses_id,
                created_at=r.created_at,
            )
        )
    return entries, cursor
