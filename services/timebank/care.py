"""Care requests (服务需求): an elder asks, one volunteer accepts, checks in and out; the served
minutes become a pending transfer that the resolution use cases post or void."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.kit.problems import Forbidden
from services.timebank import domain, ledger
from services.timebank.community import community_settings
from services.timebank.domain import CareAction, now_utc
from services.timebank.events import CareRequestAccepted, CareRequestCancelled, ServiceLogged, publisher
from services.timebank.ledger import Leg
from services.timebank.members import DELEGATE_STAFF_ROLES, get_member, is_verified_relative
from services.timebank.models import CARE, RELATIVES
from services.timebank.problems import (
    CannotServeSelf,
    CareRequestNotFound,
    CareRequestTaken,
    NotAMember,
    NotAnElder,
    NotAVolunteer,
)
from services.timebank.schemas import CareRequestIn, CheckIn, CheckOut
from services.timebank.transfer_ids import once


async def _care(session: AsyncSession, community: str, request_id: uuid.UUID, *, lock: bool = False) -> Row[Any]:
    q = select(CARE).where(CARE.c.id == request_id, CARE.c.community == community)
    row = (await session.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise CareRequestNotFound()
    return row


async def post_care_request(session: AsyncSession, principal: Principal, data: CareRequestIn) -> Row[Any]:
    """An elder asks for care; a verified relative or a steward/worker may ask on the elder's behalf."""
    community = principal.community
    elder_id = data.elder_id or principal.subject
    async with transaction(session):
        elder = await get_member(session, community, elder_id)
        if not elder.is_elder:
            raise NotAnElder(member_id=elder_id)
        if (
            elder_id != principal.subject
            and not principal.has(*DELEGATE_STAFF_ROLES)
            and not await is_verified_relative(session, community, principal.subject, elder_id)
        ):
            raise NotAMember(member_id=elder_id)  # 404: not disclosed to strangers
        request_id = uuid.uuid4()
        await session.execute(
            insert(CARE).values(
                id=request_id,
                community=community,
                elder_id=elder_id,
                requested_by=principal.subject,
                service_type=data.service_type,
                place=data.place,
                note=data.note,
                starts_at=data.starts_at,
                minutes_estimated=data.minutes_estimated,
                status="open",
            )
        )
        return await _care(session, community, request_id)


async def list_care_requests(
    session: AsyncSession, principal: Principal, statuses: list[str], page: PageParams
) -> tuple[list[Row[Any]], str | None]:
    community = principal.community
    q = select(CARE).where(CARE.c.community == community, CARE.c.status.in_(statuses))
    if statuses != ["open"] and not principal.has(*DELEGATE_STAFF_ROLES):
        # Past the open stage a request is the business of its elder, volunteer and requester, and
        # of the elder's verified relatives (as for one request: `read_care_request`).
        me = principal.subject
        my_elders = select(RELATIVES.c.relative_id).where(RELATIVES.c.community == community, RELATIVES.c.member_id == me)
        q = q.where(
            or_(
                CARE.c.status == "open",
                CARE.c.elder_id == me,
                CARE.c.volunteer_id == me,
                CARE.c.requested_by == me,
                CARE.c.elder_id.in_(my_elders),
            )
        )
    after = page.after()
    if after:
        starts, rid = datetime.fromisoformat(after[0]), uuid.UUID(after[1])
        q = q.where(or_(CARE.c.starts_at > starts, and_(CARE.c.starts_at == starts, CARE.c.id > rid)))
    async with transaction(session):
        rows = list((await session.execute(q.order_by(CARE.c.starts_at, CARE.c.id).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda r: [r.starts_at.isoformat(), str(r.id)])


async def read_care_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row[Any]:
    async with transaction(session):
        row = await _care(session, principal.community, request_id)
        me = principal.subject
        visible = (
            row.status == "open"
            or me in (row.elder_id, row.volunteer_id, row.requested_by)
            or principal.has(*DELEGATE_STAFF_ROLES)
            or await is_verified_relative(session, principal.community, me, row.elder_id)
        )
        if not visible:
            raise CareRequestNotFound()
        return row


async def accept_care_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row[Any]:
    """Exactly one volunteer gets a request: the conditional UPDATE decides, under the row lock."""
    community, me = principal.community, principal.subject
    async with transaction(session):
        volunteer = await get_member(session, community, me)
        if not volunteer.is_volunteer:
            raise NotAVolunteer()
        won = (
            await session.execute(
                update(CARE)
                .where(CARE.c.id == request_id, CARE.c.community == community, CARE.c.status == "open", CARE.c.elder_id != me)
                .values(status=domain.next_care_status("open", CareAction.ACCEPT).value, volunteer_id=me, accepted_at=func.now())
                .returning(CARE.c.id)
            )
        ).first()
        row = await _care(session, community, request_id)
        if won is None:
            if row.elder_id == me:
                raise CannotServeSelf()
            if row.volunteer_id == me:
                return row  # a retry of this volunteer's own accept (the phone lost the answer): it stands
            raise CareRequestTaken(care_status=row.status)
        # Only the winning accept publishes: a retry or a lost race above tells no one again.
        await publisher.publish(
            session,
            CareRequestAccepted(
                request_id=str(request_id),
                community=community,
                elder_id=row.elder_id,
                requested_by=row.requested_by,
                volunteer_id=me,
                service_type=row.service_type,
                starts_at=row.starts_at,
                accepted_at=row.accepted_at,
            ),
            key=str(request_id),
            occurred_at=row.accepted_at,
        )
        return row


async def cancel_care_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row[Any]:
    """The elder or someone acting for them withdraws a request before the service starts."""
    community, me = principal.community, principal.subject
    async with transaction(session):
        row = await _care(session, community, request_id, lock=True)
        allowed = (
            me in (row.elder_id, row.requested_by)
            or principal.has(*DELEGATE_STAFF_ROLES)
            or await is_verified_relative(session, community, me, row.elder_id)
        )
        if not allowed:
            if me == row.volunteer_id or row.status == "open":
                raise Forbidden(("只有老人或其代理人可以取消", "Only the elder or their delegate may cancel"))
            raise CareRequestNotFound()
        if row.status == domain.CareStatus.CANCELLED.value:
            return row  # a retried cancel: done already, and told once
        status = domain.next_care_status(row.status, CareAction.CANCEL)
        now = now_utc()
        await session.execute(update(CARE).where(CARE.c.id == request_id).values(status=status.value))
        await publisher.publish(
            session,
            CareRequestCancelled(
                request_id=str(request_id),
                community=community,
                elder_id=row.elder_id,
                volunteer_id=row.volunteer_id,
                service_type=row.service_type,
                starts_at=row.starts_at,
                cancelled_by=me,
                cancelled_at=now,
            ),
            key=str(request_id),
            occurred_at=now,
        )
        return await _care(session, community, request_id)


async def _my_assignment(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row[Any]:
    row = await _care(session, principal.community, request_id, lock=True)
    if row.volunteer_id != principal.subject:
        if row.status == "open" or principal.subject in (row.elder_id, row.requested_by):
            raise Forbidden(("只有接单的志愿者可以签到签退", "Only the volunteer who accepted may check in or out"))
        raise CareRequestNotFound()
    return row


async def check_in(session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: CheckIn) -> Row[Any]:
    async with transaction(session):
        row = await _my_assignment(session, principal, request_id)
        if row.status == domain.CareStatus.IN_PROGRESS.value:
            return row  # a retried check-in: the first one's time stands
        status = domain.next_care_status(row.status, CareAction.CHECK_IN)
        at = domain.check_in_time(data.at, row.accepted_at, now_utc())
        await session.execute(update(CARE).where(CARE.c.id == request_id).values(status=status.value, checked_in_at=at))
        return await _care(session, principal.community, request_id)


async def check_out(session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: CheckOut) -> Row[Any]:
    """The served minutes become a pending transfer from the payer to the volunteer."""
    fp = ledger.fingerprint("check-out", principal.subject, {"request": str(request_id), **data.model_dump(mode="json")})
    work = partial(_log_service, session, principal, request_id, data, fp)
    return await once(session, community=principal.community, transfer_id=data.transfer_id, fp=fp, work=work)


async def _log_service(session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: CheckOut, fp: str) -> Row[Any]:
    community = principal.community
    now = now_utc()
    row = await _my_assignment(session, principal, request_id)
    domain.next_care_status(row.status, CareAction.CHECK_OUT)
    out_at = domain.check_out_time(data.at, row.checked_in_at, now)
    minutes = domain.served_minutes(row.checked_in_at, out_at)
    settings = await community_settings(session, community)
    elder = await get_member(session, community, row.elder_id)
    volunteer = await get_member(session, community, principal.subject)
    pool = ledger.pool_account_id(community)
    payer = pool if elder.priority_elder else elder.account_id
    accounts = await ledger.lock_accounts(session, community, {payer, volunteer.account_id})
    if payer != pool:
        # The elder draws on their own hours: the withdrawal age and first-withdrawal minimum apply.
        domain.check_withdrawal_allowed(elder.birth_date, domain.local_today(now), settings.withdrawal_age)
        domain.check_first_withdrawal(
            accounts[payer].balances.available,
            elder.first_withdrawal_at is not None,
            settings.min_balance_before_first_withdrawal,
        )
    confirm_by = now + timedelta(minutes=settings.confirmation_timeout_minutes)
    leg = Leg(
        id=data.transfer_id,
        kind="service",
        phase="pending",
        debit=payer,
        credit=volunteer.account_id,
        amount=minutes,
        fingerprint=fp,
        care_request_id=request_id,
        service_type=row.service_type,
        timeout_at=confirm_by,
    )
    written = await ledger.post_legs(
        session, community, principal.subject, [leg], cap=settings.storage_cap_minutes, now=now, accounts=accounts
    )
    await session.execute(
        update(CARE)
        .where(CARE.c.id == request_id)
        .values(status=domain.CareStatus.LOGGED.value, checked_out_at=out_at, transfer_id=data.transfer_id)
    )
    # In the check-out's transaction, under its transfer id: a replayed check-out publishes nothing.
    await publisher.publish(
        session,
        ServiceLogged(
            transfer_id=str(data.transfer_id),
            request_id=str(request_id),
            community=community,
            elder_id=row.elder_id,
            requested_by=row.requested_by,
            volunteer_id=principal.subject,
            minutes=minutes,
            service_type=row.service_type,
            confirm_by=confirm_by,
        ),
        key=str(request_id),
        occurred_at=now,
    )
    return written[0]
