"""Use cases of the time bank. Each runs in one transaction and writes its events to the outbox.

Moving minutes goes through `ledger.post_legs` (locks, domain checks, then writes). A transfer's
client-chosen id makes it idempotent: `_once` serializes requests with the same id, replays the
first result, refuses the same id with a different body, and records refusals so that an id that
failed stays failed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any, TypeVar

import orjson
from pydantic_core import to_jsonable_python
from sqlalchemy import ARRAY, Text, and_, any_, bindparam, func, literal, or_, select, text, union_all, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import fetch_alone, transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, make_page
from services.kit.problems import Forbidden, Problem
from services.kit.telemetry import current_traceparent
from services.timebank import domain, ledger
from services.timebank.domain import CareAction
from services.timebank.events import CareRequestCancelled, HoursExpired, ServiceConfirmed, TransferReversed, publisher
from services.timebank.ledger import ACCOUNTS, TRANSFERS, Leg
from services.timebank.models import CareRequest, CommunitySettings, FailedTransfer, Member, Relative
from services.timebank.problems import (
    PROBLEMS_BY_SLUG,
    AccountNotFound,
    AlreadyResolved,
    AlreadyReversed,
    CannotServeSelf,
    CareRequestNotFound,
    CareRequestTaken,
    InsufficientBalance,
    LinkedTransferFailed,
    MinutesExceedPending,
    NotAllowedToResolve,
    NotAMember,
    NotAnElder,
    NotAVerifiedRelative,
    NotAVolunteer,
    NotPending,
    NotReversible,
    TimeInFuture,
    TransferIdConflict,
    TransferNotFound,
    WrongAccountKind,
    WrongCareRequestState,
)
from services.timebank.schemas import (
    AgeVerification,
    BatchIn,
    CareRequestIn,
    CheckIn,
    CheckOut,
    CommunitySettingsChange,
    CommunitySettingsIn,
    ConfirmIn,
    DisputeIn,
    DonationIn,
    FundingIn,
    GiftIn,
    MemberEnrol,
    RelativeIn,
    ReversalIn,
    SpendIn,
)

MEMBERS = Member.__table__  # type: ignore[attr-defined]
CARE = CareRequest.__table__  # type: ignore[attr-defined]
RELATIVES = Relative.__table__  # type: ignore[attr-defined]
SETTINGS = CommunitySettings.__table__  # type: ignore[attr-defined]
FAILED = FailedTransfer.__table__  # type: ignore[attr-defined]

WORKER_ROLES = ("community_worker",)
DELEGATE_STAFF_ROLES = ("steward", "community_worker")
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
CLOCK_SKEW = timedelta(minutes=2)

Row = Any
T = TypeVar("T")


def now_utc() -> datetime:
    return datetime.now(UTC)


def is_worker(p: Principal) -> bool:
    return p.has(*WORKER_ROLES)


# --- retries, idempotent transfers ---------------------------------------------------------------


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES or "deadlock" in str(exc.orig).lower()


async def retrying(work: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run a whole transaction again after a deadlock (the database already rolled it back)."""
    for attempt in range(attempts):
        try:
            return await work()
        except DBAPIError as exc:
            if not _retryable(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


def _stored_problem(row: Row) -> Problem:
    cls = PROBLEMS_BY_SLUG.get(row.problem_slug, Problem)
    detail = (row.detail_zh, row.detail_en) if row.detail_zh and row.detail_en else None
    return cls(detail, transfer_id=str(row.id), replayed=True)


async def _lookup_id(session: AsyncSession, transfer_id: uuid.UUID) -> Row | None:
    """The transfer, or the recorded refusal, for a client id (one round trip for both)."""
    q = union_all(
        select(
            TRANSFERS.c.id,
            TRANSFERS.c.community,
            TRANSFERS.c.fingerprint,
            literal(None).label("problem_slug"),
            literal(None).label("detail_zh"),
            literal(None).label("detail_en"),
        ).where(TRANSFERS.c.id == transfer_id),
        select(
            FAILED.c.id, FAILED.c.community, FAILED.c.fingerprint, FAILED.c.problem_slug, FAILED.c.detail_zh, FAILED.c.detail_en
        ).where(FAILED.c.id == transfer_id),
    )
    return (await session.execute(q)).first()


class _Replay(Exception):
    def __init__(self, row: Row):
        self.row = row


def _check_existing(row: Row, community: str, fp: str) -> None:
    if row.community != community or row.fingerprint != fp:
        raise TransferIdConflict(transfer_id=str(row.id))
    if row.problem_slug is not None:
        raise _stored_problem(row)
    raise _Replay(row)


async def get_transfer_row(session: AsyncSession, community: str, transfer_id: uuid.UUID) -> Row:
    row = (
        await session.execute(select(TRANSFERS).where(TRANSFERS.c.id == transfer_id, TRANSFERS.c.community == community))
    ).first()
    if row is None:
        raise TransferNotFound()
    return row


async def _once(
    session: AsyncSession, *, community: str, transfer_id: uuid.UUID, fp: str, work: Callable[[], Awaitable[Row]]
) -> Row:
    """Apply `work` once for `transfer_id`: replay, refuse a different body, remember refusals."""

    async def attempt() -> Row:
        async with transaction(session):
            await ledger.lock_transfer_id(session, transfer_id)
            existing = await _lookup_id(session, transfer_id)
            if existing is not None:
                try:
                    _check_existing(existing, community, fp)
                except _Replay:
                    return await get_transfer_row(session, community, transfer_id)
            try:
                return await work()
            except Problem as problem:
                problem.extensions.setdefault("transfer_id", str(transfer_id))
                raise _Refused(problem) from None

    try:
        return await retrying(attempt)
    except _Refused as refused:
        return await _record_refusal(session, community=community, transfer_id=transfer_id, fp=fp, problem=refused.problem)


async def _record_refusal(session: AsyncSession, *, community: str, transfer_id: uuid.UUID, fp: str, problem: Problem) -> Row:
    """Remember that `transfer_id` was refused (so it stays refused), then raise the problem.

    Returns instead the transfer if the same request succeeded meanwhile (a retry raced us).
    """
    if type(problem) not in PROBLEMS_BY_SLUG.values():
        raise problem

    async def record() -> Row | None:
        async with transaction(session):
            await ledger.lock_transfer_id(session, transfer_id)
            existing = await _lookup_id(session, transfer_id)
            if existing is None:
                zh = problem.detail_text("zh-CN") if problem.detail else None
                en = problem.detail_text("en") if problem.detail else None
                await session.execute(
                    insert(FAILED).values(
                        id=transfer_id, community=community, fingerprint=fp, problem_slug=problem.slug, detail_zh=zh, detail_en=en
                    )
                )
                return None
            if existing.problem_slug is None and existing.fingerprint == fp and existing.community == community:
                # The same request succeeded meanwhile (a retry raced us): the id has that outcome.
                return await get_transfer_row(session, community, transfer_id)
            return None

    row = await retrying(record)
    if row is not None:
        return row
    raise problem


class _Refused(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


# --- settings, members -----------------------------------------------------------------------------


async def ensure_community(session: AsyncSession, community: str) -> None:
    """Create the community's settings row and its pool and community accounts if missing."""
    await session.execute(insert(SETTINGS).values(community=community).on_conflict_do_nothing())
    await session.execute(
        insert(ACCOUNTS)
        .values(
            [
                {
                    "id": ledger.pool_account_id(community),
                    "community": community,
                    "kind": "pool",
                    "owner_id": None,
                    "debits_must_not_exceed_credits": True,
                },
                {
                    "id": ledger.community_account_id(community),
                    "community": community,
                    "kind": "community",
                    "owner_id": None,
                    "debits_must_not_exceed_credits": False,
                },
            ]
        )
        .on_conflict_do_nothing()
    )


async def community_settings(session: AsyncSession, community: str) -> Row:
    row = (await session.execute(select(SETTINGS).where(SETTINGS.c.community == community))).first()
    if row is None:
        await ensure_community(session, community)
        row = (await session.execute(select(SETTINGS).where(SETTINGS.c.community == community))).one()
    return row


async def read_settings(session: AsyncSession, community: str) -> Row:
    async with transaction(session):
        return await community_settings(session, community)


async def update_settings(session: AsyncSession, community: str, data: CommunitySettingsIn | CommunitySettingsChange) -> Row:
    """Replace every setting (PUT) or only those given (PATCH). One UPDATE of the given columns, so two
    workers changing different settings at once both keep their change."""
    values = data.model_dump(exclude_unset=isinstance(data, CommunitySettingsChange))
    async with transaction(session):
        await ensure_community(session, community)
        await session.execute(update(SETTINGS).where(SETTINGS.c.community == community).values(**values, updated_at=func.now()))
        return (await session.execute(select(SETTINGS).where(SETTINGS.c.community == community))).one()


async def _member(session: AsyncSession, community: str, member_id: str, *, lock: bool = False) -> Row:
    q = select(MEMBERS).where(MEMBERS.c.community == community, MEMBERS.c.member_id == member_id)
    row = (await session.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise NotAMember(member_id=member_id)
    return row


async def _is_verified_relative(session: AsyncSession, community: str, a: str, b: str) -> bool:
    return (
        await session.execute(
            select(RELATIVES.c.relation).where(
                RELATIVES.c.community == community, RELATIVES.c.member_id == a, RELATIVES.c.relative_id == b
            )
        )
    ).first() is not None


async def _member_view(session: AsyncSession, community: str, member_id: str) -> Row:
    row = (
        await session.execute(
            select(
                MEMBERS,
                ACCOUNTS.c.debits_pending,
                ACCOUNTS.c.debits_posted,
                ACCOUNTS.c.credits_pending,
                ACCOUNTS.c.credits_posted,
            )
            .join(ACCOUNTS, ACCOUNTS.c.id == MEMBERS.c.account_id)
            .where(MEMBERS.c.community == community, MEMBERS.c.member_id == member_id)
        )
    ).first()
    if row is None:
        raise NotAMember(member_id=member_id)
    return row


async def enrol(session: AsyncSession, principal: Principal, data: MemberEnrol) -> tuple[Row, bool]:
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
        return await _member_view(session, community, member_id), created


async def verify_age(session: AsyncSession, worker: Principal, member_id: str, data: AgeVerification) -> Row:
    async with transaction(session):
        await _member(session, worker.community, member_id, lock=True)
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
        return await _member_view(session, worker.community, member_id)


async def verify_relative(session: AsyncSession, worker: Principal, member_id: str, data: RelativeIn) -> Row:
    community = worker.community
    if member_id == data.relative_id:
        raise NotAVerifiedRelative(("不能登记自己为亲属", "A member cannot be their own relative"))
    async with transaction(session):
        await _member(session, community, member_id)
        await _member(session, community, data.relative_id)
        for a, b in ((member_id, data.relative_id), (data.relative_id, member_id)):
            await session.execute(
                insert(RELATIVES)
                .values(community=community, member_id=a, relative_id=b, relation=data.relation, verified_by=worker.subject)
                .on_conflict_do_nothing()
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


async def list_relatives(session: AsyncSession, community: str, member_id: str) -> list[Row]:
    async with transaction(session):
        return list(
            (
                await session.execute(
                    select(RELATIVES)
                    .where(RELATIVES.c.community == community, RELATIVES.c.member_id == member_id)
                    .order_by(RELATIVES.c.relative_id)
                )
            ).all()
        )


async def _may_see_member(session: AsyncSession, principal: Principal, member_id: str) -> bool:
    return (
        member_id == principal.subject
        or principal.has(*DELEGATE_STAFF_ROLES)
        or await _is_verified_relative(session, principal.community, principal.subject, member_id)
    )


async def read_member(session: AsyncSession, principal: Principal, member_id: str) -> Row:
    async with transaction(session):
        if not await _may_see_member(session, principal, member_id):
            raise NotAMember(member_id=member_id)  # 404: another resident's membership is not disclosed
        return await _member_view(session, principal.community, member_id)


async def passbook(
    session: AsyncSession, principal: Principal, member_id: str, page: PageParams
) -> tuple[list[dict[str, Any]], str | None]:
    """The member's posted transfers, newest first, each with the balance after it (存折)."""
    community = principal.community
    async with transaction(session):
        if not await _may_see_member(session, principal, member_id):
            raise NotAMember(member_id=member_id)
        member = await _member(session, community, member_id)
        account = member.account_id
        q = (
            select(TRANSFERS)
            .where(
                TRANSFERS.c.phase == "posted",
                or_(TRANSFERS.c.debit_account_id == account, TRANSFERS.c.credit_account_id == account),
            )
            .order_by(TRANSFERS.c.seq.desc())
            .limit(page.limit + 1)
        )
        after = page.after()
        if after:
            q = q.where(TRANSFERS.c.seq < int(after[0]))
        rows = list((await session.execute(q)).all())
    items, cursor = make_page(rows, page.limit, lambda r: [r.seq])
    entries = []
    for r in items:
        credited = r.credit_account_id == account
        entries.append(
            {
                "transfer_id": r.id,
                "seq": r.seq,
                "kind": r.kind,
                "minutes": r.amount_minutes if credited else -r.amount_minutes,
                "balance_after": r.credit_balance_after if credited else r.debit_balance_after,
                "counterparty_account_id": r.debit_account_id if credited else r.credit_account_id,
                "service_type": r.service_type,
                "reason": r.reason,
                "pending_id": r.pending_id,
                "reverses_id": r.reverses_id,
                "created_at": r.created_at,
            }
        )
    return entries, cursor


# --- care requests -----------------------------------------------------------------------------------


async def _care(session: AsyncSession, community: str, request_id: uuid.UUID, *, lock: bool = False) -> Row:
    q = select(CARE).where(CARE.c.id == request_id, CARE.c.community == community)
    row = (await session.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise CareRequestNotFound()
    return row


async def post_care_request(session: AsyncSession, principal: Principal, data: CareRequestIn) -> Row:
    """An elder asks for care; a verified relative or a steward/worker may ask on the elder's behalf."""
    community = principal.community
    elder_id = data.elder_id or principal.subject
    async with transaction(session):
        elder = await _member(session, community, elder_id)
        if not elder.is_elder:
            raise NotAnElder(member_id=elder_id)
        if (
            elder_id != principal.subject
            and not principal.has(*DELEGATE_STAFF_ROLES)
            and not await _is_verified_relative(session, community, principal.subject, elder_id)
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
) -> tuple[list[Row], str | None]:
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


async def read_care_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row:
    async with transaction(session):
        row = await _care(session, principal.community, request_id)
        me = principal.subject
        visible = (
            row.status == "open"
            or me in (row.elder_id, row.volunteer_id, row.requested_by)
            or principal.has(*DELEGATE_STAFF_ROLES)
            or await _is_verified_relative(session, principal.community, me, row.elder_id)
        )
        if not visible:
            raise CareRequestNotFound()
        return row


async def accept_care_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row:
    """Exactly one volunteer gets a request: the conditional UPDATE decides, under the row lock."""
    community, me = principal.community, principal.subject
    async with transaction(session):
        volunteer = await _member(session, community, me)
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
        return row


async def cancel_care_request(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row:
    """The elder or someone acting for them withdraws a request before the service starts."""
    community, me = principal.community, principal.subject
    async with transaction(session):
        row = await _care(session, community, request_id, lock=True)
        allowed = (
            me in (row.elder_id, row.requested_by)
            or principal.has(*DELEGATE_STAFF_ROLES)
            or await _is_verified_relative(session, community, me, row.elder_id)
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


async def _my_assignment(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> Row:
    row = await _care(session, principal.community, request_id, lock=True)
    if row.volunteer_id != principal.subject:
        if row.status == "open" or principal.subject in (row.elder_id, row.requested_by):
            raise Forbidden(("只有接单的志愿者可以签到签退", "Only the volunteer who accepted may check in or out"))
        raise CareRequestNotFound()
    return row


def _at(given: datetime | None, now: datetime) -> datetime:
    if given is None:
        return now
    if given > now + CLOCK_SKEW:
        raise TimeInFuture()
    return given.astimezone(UTC)


async def check_in(session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: CheckIn) -> Row:
    async with transaction(session):
        row = await _my_assignment(session, principal, request_id)
        if row.status == domain.CareStatus.IN_PROGRESS.value:
            return row  # a retried check-in: the first one's time stands
        status = domain.next_care_status(row.status, CareAction.CHECK_IN)
        await session.execute(
            update(CARE).where(CARE.c.id == request_id).values(status=status.value, checked_in_at=_at(data.at, now_utc()))
        )
        return await _care(session, principal.community, request_id)


async def check_out(session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: CheckOut) -> Row:
    """The served minutes become a pending transfer from the payer to the volunteer."""
    community = principal.community
    fp = ledger.fingerprint("check-out", principal.subject, {"request": str(request_id), **data.model_dump(mode="json")})

    async def work() -> Row:
        now = now_utc()
        row = await _my_assignment(session, principal, request_id)
        domain.next_care_status(row.status, CareAction.CHECK_OUT)
        out_at = _at(data.at, now)
        minutes = domain.served_minutes(row.checked_in_at, out_at)
        settings = await community_settings(session, community)
        elder = await _member(session, community, row.elder_id)
        volunteer = await _member(session, community, principal.subject)
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
            timeout_at=now + timedelta(minutes=settings.confirmation_timeout_minutes),
        )
        written = await ledger.post_legs(
            session, community, principal.subject, [leg], cap=settings.storage_cap_minutes, now=now, accounts=accounts
        )
        await session.execute(
            update(CARE)
            .where(CARE.c.id == request_id)
            .values(status=domain.CareStatus.LOGGED.value, checked_out_at=out_at, transfer_id=data.transfer_id)
        )
        return written[0]

    return await _once(session, community=community, transfer_id=data.transfer_id, fp=fp, work=work)


# --- confirming, disputing, expiring pending transfers --------------------------------------------


async def _pending_for_resolution(
    session: AsyncSession, principal: Principal | None, community: str, pending_id: uuid.UUID
) -> tuple[Row, Row | None]:
    """Lock the pending transfer and its care request (one round trip), and check who may resolve it.

    The row also carries the community's storage cap, so the confirmation needs no settings query.
    """
    pending = (
        await session.execute(
            select(
                TRANSFERS,
                CARE.c.elder_id,
                CARE.c.volunteer_id,
                CARE.c.status.label("care_status"),
                SETTINGS.c.storage_cap_minutes,
            )
            .join(SETTINGS, SETTINGS.c.community == TRANSFERS.c.community)
            .join(CARE, CARE.c.id == TRANSFERS.c.care_request_id)
            .where(TRANSFERS.c.id == pending_id, TRANSFERS.c.community == community)
            .with_for_update(of=[TRANSFERS, CARE])
        )
    ).first()
    if pending is None:
        raise TransferNotFound()
    care = pending if pending.care_request_id is not None else None
    if principal is not None:
        me = principal.subject
        elder_id = pending.elder_id or ""
        volunteer_id = pending.volunteer_id or ""
        delegate = (
            me not in (elder_id, volunteer_id)
            and not is_worker(principal)
            and (principal.has("steward") or await _is_verified_relative(session, community, me, elder_id))
        )
        if not domain.may_resolve(
            me, elder_id=elder_id, volunteer_id=volunteer_id, is_worker=is_worker(principal), is_delegate=delegate
        ):
            if me == volunteer_id:
                raise NotAllowedToResolve(("服务提供者不能确认自己的服务", "The volunteer who served cannot confirm it"))
            raise TransferNotFound()  # 404 for anyone unrelated
    if pending.phase != "pending":
        raise NotPending()
    if pending.resolution is not None:
        raise AlreadyResolved(resolution=pending.resolution)
    return pending, care


async def _resolve(
    session: AsyncSession,
    pending: Row,
    resolution: str,
    care_action: CareAction,
    now: datetime,
    *,
    first_withdrawal: bool = False,
) -> None:
    """Mark the pending row resolved, move its care request on, and (on posting) note the payer's
    first withdrawal: one statement, as these always go together."""
    care_status = domain.next_care_status(pending.care_status, care_action).value if pending.care_status else None
    await session.execute(
        text("""
        WITH resolved AS (
            UPDATE tb_transfers SET resolution = CAST(:resolution AS text), resolved_at = CAST(:now AS timestamptz)
             WHERE id = :pending_id AND resolution IS NULL RETURNING care_request_id, debit_account_id),
        care AS (
            UPDATE tb_care_requests SET status = CAST(:care_status AS text)
             WHERE CAST(:care_status AS text) IS NOT NULL AND id = (SELECT care_request_id FROM resolved) RETURNING id)
        UPDATE tb_members SET first_withdrawal_at = CAST(:now AS timestamptz)
         WHERE CAST(:first_withdrawal AS boolean) AND account_id = (SELECT debit_account_id FROM resolved)
           AND first_withdrawal_at IS NULL"""),
        {
            "resolution": resolution,
            "now": now,
            "pending_id": pending.id,
            "care_status": care_status,
            "first_withdrawal": first_withdrawal,
        },
    )


# In the driver's form ($n), for `fetch_alone`.
_CONFIRM_SERVICE = (
    "SELECT r.outcome, r.detail, (r.posting).* FROM tb_confirm_service($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
    "$12, $13, $14, $15, $16, $17, $18, $19) AS r"
)
# The care request's moves on confirmation, from the one transition table (the function looks its state up here).
_CARE_ON_CONFIRM = orjson.dumps(
    {src.value: dst.value for (src, action), dst in domain.CARE_TRANSITIONS.items() if action is CareAction.CONFIRM}
).decode()


def _confirm_refusal(detail: dict[str, Any], pending_minutes_asked: int | None) -> Problem:
    """The problem `tb_confirm_service` refused with, built as the Python rules would have raised it."""
    slug = detail["slug"]
    try:
        if slug == MinutesExceedPending.slug:
            domain.confirmed_minutes(detail["pending_minutes"], pending_minutes_asked)
        elif slug == WrongCareRequestState.slug:
            domain.next_care_status(detail["care_status"], CareAction.CONFIRM)
        elif slug == InsufficientBalance.slug:
            domain.Balances(credits_posted=detail["available_minutes"]).check_debit(detail["needed_minutes"])
    except Problem as problem:
        return problem
    if slug == NotAllowedToResolve.slug:
        return NotAllowedToResolve(("服务提供者不能确认自己的服务", "The volunteer who served cannot confirm it"))
    if slug == AlreadyResolved.slug:
        return AlreadyResolved(resolution=detail["resolution"])
    if slug == AccountNotFound.slug:
        return AccountNotFound(("账户不存在", "Unknown account"), account_ids=sorted(detail["account_ids"]))
    return PROBLEMS_BY_SLUG[slug]()  # TransferNotFound, NotPending, SameAccount: no detail


async def confirm(session: AsyncSession, principal: Principal, pending_id: uuid.UUID, data: ConfirmIn) -> Row:
    """Post (part of) a pending service transfer; publishes `timebank.service.confirmed.v1`.

    One statement: `tb_confirm_service` (migration 0002) takes the id lock, replays or refuses a
    reused id, locks the pending transfer, its care request and the accounts, applies the rules
    and writes the posting, the resolution and the outbox row. The statement is its own
    transaction (`execute_alone`: no BEGIN/COMMIT round trips, no lock held across one), or joins
    the caller's when one is open.
    What it refuses is raised here and recorded like any refused transfer id.
    """
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

    async def attempt() -> Any:
        row = await fetch_alone(session, _CONFIRM_SERVICE, *args)
        if row.outcome == "posted":
            outbox_written(session)
        return row

    row = await retrying(attempt)
    if row.outcome in ("posted", "replayed"):
        return row
    if row.outcome == "conflict":
        raise TransferIdConflict(transfer_id=str(data.id))
    detail = orjson.loads(row.detail) if isinstance(row.detail, str | bytes) else row.detail
    if row.outcome == "stored":
        raise _stored_problem(
            SimpleNamespace(id=data.id, problem_slug=detail["slug"], detail_zh=detail["detail_zh"], detail_en=detail["detail_en"])
        )
    problem = _confirm_refusal(detail, data.minutes)
    problem.extensions.setdefault("transfer_id", str(data.id))
    return await _record_refusal(session, community=community, transfer_id=data.id, fp=fp, problem=problem)


async def _void(
    session: AsyncSession,
    community: str,
    actor: str,
    pending: Row,
    void_id: uuid.UUID,
    fp: str,
    reason: str,
    resolution: str,
    now: datetime,
) -> Row:
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


async def dispute(session: AsyncSession, principal: Principal, pending_id: uuid.UUID, data: DisputeIn) -> Row:
    community = principal.community
    fp = ledger.fingerprint("dispute", principal.subject, {"pending": str(pending_id), **data.model_dump(mode="json")})

    async def work() -> Row:
        pending, _ = await _pending_for_resolution(session, principal, community, pending_id)
        return await _void(session, community, principal.subject, pending, data.id, fp, data.reason, "voided", now_utc())

    return await _once(session, community=community, transfer_id=data.id, fp=fp, work=work)


async def expire_pending(session: AsyncSession, *, limit: int = 200, now: datetime | None = None) -> int:
    """Void pending transfers whose confirmation time ran out (the scheduled job calls this)."""
    now = now or now_utc()
    done = 0
    while done < limit:

        async def one() -> bool:
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
                pending, _ = await _pending_for_resolution(session, None, found.community, found.id)
                await _void(
                    session,
                    found.community,
                    "system:expiry",
                    pending,
                    ledger.derived_id(found.id, "expiry"),
                    "expiry",
                    "confirmation timed out",
                    "expired",
                    now,
                )
                return True

        if not await retrying(one):
            break
        done += 1
    return done


# --- expiring hours past the validity period --------------------------------------------------------

HOURS_EXPIRY_ACTOR = "system:hours-expiry"
_EXPIRY_PAGE = 200

# A member's hours still valid: the posted credits since the start of the validity period, less
# those a reversal took back (it undid that credit, not the member's oldest hours).
_VALID_CREDITS_OF = """
      FROM tb_transfers t
     WHERE t.credit_account_id = {account} AND t.phase = 'posted' AND t.created_at >= {since}
       AND NOT EXISTS (SELECT 1 FROM tb_transfers r WHERE r.reverses_id = t.id)"""
_CREDITS_SINCE = "SELECT coalesce(sum(t.amount_minutes), 0) AS minutes" + _VALID_CREDITS_OF
# Summed per account, for any number of accounts: (account id, minutes).
_VALID_CREDITS_OF_ACCOUNTS = text(f"""
    SELECT a.id, ({_CREDITS_SINCE.format(account="a.id", since=":since")}) AS minutes
      FROM unnest(CAST(:accounts AS uuid[])) AS a(id)""")
# The same credits one by one, oldest first, up to those that stay valid past a horizon.
_VALID_CREDITS_UNTIL = text(
    "SELECT t.created_at, t.amount_minutes"
    + _VALID_CREDITS_OF.format(account=":account", since=":since")
    + " AND t.created_at < :horizon_from ORDER BY t.created_at, t.seq"
)
# A community's member accounts holding more than their valid credits, in id order after a key
# (through ix_tb_accounts_community_kind_id, so a page stops at its end). Accounts with nothing
# available are passed over before their credits are summed (through ix_tb_transfers_credit_seq).
_EXPIRY_CANDIDATES = text(f"""
    SELECT a.id
      FROM tb_accounts a
     CROSS JOIN LATERAL ({_CREDITS_SINCE.format(account="a.id", since=":valid_from")}) valid
     WHERE a.community = :community AND a.kind = 'member' AND a.id > :after_id
       AND a.credits_posted - a.debits_posted - a.debits_pending > 0
       AND a.credits_posted - a.debits_posted - a.debits_pending > valid.minutes
     ORDER BY a.id
     LIMIT :limit""")


async def expire_hours(session: AsyncSession, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Move members' hours older than the validity period to the pool, in the communities with
    `hours_expire` on (the scheduled job calls this). Looks at `limit` accounts at most; returns
    how many `expiry` transfers it wrote.

    The candidates are read set-based, a page at a time; each page's accounts of one community are
    then expired in one transaction that locks them and works the amounts out again, so a re-run
    or a second replica finds nothing left.
    """
    now = now or now_utc()
    async with transaction(session):
        periods = (
            await session.execute(
                select(SETTINGS.c.community, SETTINGS.c.hours_valid_months)
                .where(SETTINGS.c.hours_expire)
                .order_by(SETTINGS.c.community)
            )
        ).all()
    seen = expired = 0
    for community, months in periods:
        params = {"community": community, "valid_from": domain.hours_valid_from(now, months), "after_id": uuid.UUID(int=0)}
        while seen < limit:
            async with transaction(session):
                page = list(
                    (await session.execute(_EXPIRY_CANDIDATES, {**params, "limit": min(_EXPIRY_PAGE, limit - seen)})).scalars()
                )
            if page:
                expired += await retrying(partial(_expire_accounts, session, community, page, now))
            seen += len(page)
            if len(page) < _EXPIRY_PAGE:
                break  # this community has no more
            params["after_id"] = page[-1]
    return expired


async def hours_expiry_outlook(
    session: AsyncSession, principal: Principal, member_id: str, *, days: int, now: datetime | None = None
) -> dict[str, Any]:
    """What a member would lose to expiry in the next `days` days if nothing else changes (for the
    member, a verified relative or staff): the same rule the job applies, looked at ahead."""
    community = principal.community
    now = now or now_utc()
    until = now + timedelta(days=days)
    async with transaction(session):
        if not await _may_see_member(session, principal, member_id):
            raise NotAMember(member_id=member_id)
        member = await _member_view(session, community, member_id)  # the member and its account's totals
        settings = await community_settings(session, community)
        available = domain.Balances(
            debits_pending=member.debits_pending, debits_posted=member.debits_posted, credits_posted=member.credits_posted
        ).available
        outlook: list[tuple[date, int]] = []
        if settings.hours_expire and available > 0:
            months = settings.hours_valid_months
            since = domain.hours_valid_from(now, months)
            [(_, valid)] = (
                (await session.execute(_VALID_CREDITS_OF_ACCOUNTS, {"accounts": [member.account_id], "since": since}))
                .tuples()
                .all()
            )
            ageing = (
                await session.execute(
                    _VALID_CREDITS_UNTIL,
                    {"account": member.account_id, "since": since, "horizon_from": domain.hours_valid_from(until, months)},
                )
            ).all()
            outlook = domain.expiry_outlook(
                available, int(valid), [(r.created_at, r.amount_minutes) for r in ageing], months, now=now, until=until
            )
    return {
        "member_id": member_id,
        "hours_expire": settings.hours_expire,
        "valid_months": settings.hours_valid_months,
        "available_minutes": available,
        "expiring": [{"on": day, "minutes": minutes} for day, minutes in outlook],
    }


async def _expire_accounts(session: AsyncSession, community: str, account_ids: list[uuid.UUID], now: datetime) -> int:
    """Move some members' expired hours to the pool, worked out under their accounts' locks (taken
    in id order with the pool's, as every use case takes them): one transaction, one `expiry`
    transfer and one event per member with hours to expire. Returns how many."""
    async with transaction(session):
        settings = await community_settings(session, community)
        if not settings.hours_expire:
            return 0  # switched off since the candidates were read
        months = settings.hours_valid_months
        pool = ledger.pool_account_id(community)
        accounts = await ledger.lock_accounts(session, community, {*account_ids, pool})
        valid = dict(
            (
                await session.execute(
                    _VALID_CREDITS_OF_ACCOUNTS, {"accounts": account_ids, "since": domain.hours_valid_from(now, months)}
                )
            )
            .tuples()
            .all()
        )
        legs, events = [], []
        for account_id in account_ids:
            member = accounts[account_id]
            minutes = domain.expiring_minutes(member.balances.available, int(valid[account_id]))
            if minutes == 0:
                continue
            leg = Leg(
                id=uuid.uuid4(),
                kind="expiry",
                phase="posted",
                debit=account_id,
                credit=pool,
                amount=minutes,
                fingerprint="hours-expiry",
                reason=f"hours older than {months} months expired",
            )
            legs.append(leg)
            events.append(
                HoursExpired(
                    transfer_id=str(leg.id),
                    community=community,
                    member_id=member.owner_id or "",
                    minutes=minutes,
                    valid_months=months,
                    expired_at=now,
                ).model_dump(mode="json")
            )
        if not legs:
            return 0
        await ledger.post_legs(
            session, community, HOURS_EXPIRY_ACTOR, legs, cap=settings.storage_cap_minutes, now=now, accounts=accounts
        )
        await publisher.publish_many(session, HoursExpired.event_type, events, [e["transfer_id"] for e in events])
        return len(legs)


# --- spending, giving, donating, funding, reversing --------------------------------------------------


async def spend(session: AsyncSession, principal: Principal, data: SpendIn) -> Row:
    """A member over the withdrawal age pays for their own care from the community with their hours."""
    community = principal.community
    fp = ledger.fingerprint("spend", principal.subject, data)

    async def work() -> Row:
        now = now_utc()
        settings = await community_settings(session, community)
        member = await _member(session, community, principal.subject)
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

    return await _once(session, community=community, transfer_id=data.id, fp=fp, work=work)


async def gift(session: AsyncSession, principal: Principal, data: GiftIn) -> Row:
    """Give hours to a relative verified by a community worker."""
    community = principal.community
    fp = ledger.fingerprint("gift", principal.subject, data)

    async def work() -> Row:
        giver = await _member(session, community, principal.subject)
        receiver = await _member(session, community, data.to_member_id)
        if not await _is_verified_relative(session, community, giver.member_id, receiver.member_id):
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
        return written[0]

    return await _once(session, community=community, transfer_id=data.id, fp=fp, work=work)


async def donate(session: AsyncSession, principal: Principal, data: DonationIn) -> Row:
    community = principal.community
    fp = ledger.fingerprint("donate", principal.subject, data)

    async def work() -> Row:
        member = await _member(session, community, principal.subject)
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

    return await _once(session, community=community, transfer_id=data.id, fp=fp, work=work)


async def fund_pool(session: AsyncSession, worker: Principal, data: FundingIn) -> Row:
    """Hours entering the pool from outside (donated or subsidised), from the community account."""
    community = worker.community
    fp = ledger.fingerprint("fund", worker.subject, data)

    async def work() -> Row:
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
        written = await ledger.post_legs(
            session, community, worker.subject, [leg], cap=settings.storage_cap_minutes, now=now_utc()
        )
        return written[0]

    return await _once(session, community=community, transfer_id=data.id, fp=fp, work=work)


async def reverse(session: AsyncSession, worker: Principal, original_id: uuid.UUID, data: ReversalIn) -> Row:
    """Correct a posted transfer by a new one in the other direction that points at it."""
    community = worker.community
    fp = ledger.fingerprint("reverse", worker.subject, {"original": str(original_id), **data.model_dump(mode="json")})

    async def work() -> Row:
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

    return await _once(session, community=community, transfer_id=data.id, fp=fp, work=work)


async def post_batch(session: AsyncSession, worker: Principal, data: BatchIn) -> list[Row]:
    """Up to 1,000 linked transfers in one transaction: all are posted, or none.

    For a worker entering a paper service log (纸质台账) or a round of pool funding. Ids already
    used with the same body replay as a whole; a refused batch records every id as failed.
    """
    community = worker.community
    fps = {item.id: ledger.fingerprint("batch", worker.subject, item) for item in data.transfers}
    ids = list(fps)

    async def attempt() -> list[Row]:
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
                written = await _batch_work(session, worker, data, fps)
            except Problem as problem:
                raise _Refused(problem) from None
            wanted = set(ids)  # the batch's own transfers, without the overflow legs the ledger added
            return [r for r in written if r.id in wanted]

    try:
        return await retrying(attempt)
    except _Refused as refused:
        problem = refused.problem

    async def record() -> None:
        async with transaction(session):
            await session.execute(
                insert(FAILED)
                .values(
                    [
                        {
                            "id": i,
                            "community": community,
                            "fingerprint": fps[i],
                            "problem_slug": LinkedTransferFailed.slug,
                            "detail_zh": None,
                            "detail_en": None,
                        }
                        for i in ids
                    ]
                )
                .on_conflict_do_nothing()
            )

    if type(problem) in PROBLEMS_BY_SLUG.values():
        await retrying(record)
    raise LinkedTransferFailed(cause=problem.slug, **problem.extensions)


async def _rows_by_id(session: AsyncSession, ids: list[uuid.UUID]) -> list[Row]:
    rows = {
        r.id: r for r in (await session.execute(select(TRANSFERS).where(TRANSFERS.c.id == any_(ledger.uuid_array(ids))))).all()
    }
    return [rows[i] for i in ids]


async def _batch_work(session: AsyncSession, worker: Principal, data: BatchIn, fps: dict[uuid.UUID, str]) -> list[Row]:
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
    legs: list[Leg] = []
    events: list[dict[str, Any]] = []  # ServiceConfirmed data, built as dicts: 1,000 models cost more than the SQL
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
                    "transfer_id": str(item.id),
                    "community": community,
                    "volunteer_id": credit.owner_id or "",
                    "elder_id": item.elder_id or "",
                    "minutes": item.minutes,
                    "service_type": item.service_type or "other",
                    "confirmed_at": now.isoformat(),
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


# --- reads for staff ------------------------------------------------------------------------------


async def read_transfer(session: AsyncSession, principal: Principal, transfer_id: uuid.UUID) -> Row:
    async with transaction(session):
        row = await get_transfer_row(session, principal.community, transfer_id)
        if principal.has(*DELEGATE_STAFF_ROLES):
            return row
        owners = set(
            (
                await session.execute(
                    select(ACCOUNTS.c.owner_id).where(ACCOUNTS.c.id.in_([row.debit_account_id, row.credit_account_id]))
                )
            ).scalars()
        )
        if principal.subject in owners:
            return row
        for owner in owners:
            if owner and await _is_verified_relative(session, principal.community, principal.subject, owner):
                return row
        raise TransferNotFound()


async def read_account(session: AsyncSession, account_id: uuid.UUID) -> Row:
    return (await session.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id))).one()


async def pool_view(session: AsyncSession, community: str) -> dict[str, Any]:
    async with transaction(session):
        await community_settings(session, community)
        pool = await read_account(session, ledger.pool_account_id(community))
        community_account = await read_account(session, ledger.community_account_id(community))
        count, minutes = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(TRANSFERS.c.amount_minutes), 0)).where(
                    TRANSFERS.c.community == community, TRANSFERS.c.phase == "pending", TRANSFERS.c.resolution.is_(None)
                )
            )
        ).one()
    return {
        "pool": pool,
        "community_account": community_account,
        "open_pending_count": int(count),
        "open_pending_minutes": int(minutes),
    }


async def list_pending(
    session: AsyncSession, community: str, resolution: str | None, page: PageParams
) -> tuple[list[Row], str | None]:
    """Pending service transfers awaiting confirmation (resolution None) or disputed ('voided')."""
    q = select(TRANSFERS).where(TRANSFERS.c.community == community, TRANSFERS.c.phase == "pending")
    q = q.where(TRANSFERS.c.resolution.is_(None) if resolution is None else TRANSFERS.c.resolution == resolution)
    after = page.after()
    if after:
        q = q.where(TRANSFERS.c.seq < int(after[0]))
    async with transaction(session):
        rows = list((await session.execute(q.order_by(TRANSFERS.c.seq.desc()).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda r: [r.seq])


async def summary(session: AsyncSession, community: str, month: date) -> dict[str, Any]:
    """Hours served in a month (local time), by service type, net of reversed services."""
    start = datetime(month.year, month.month, 1, tzinfo=domain.LOCAL_TZ)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=domain.LOCAL_TZ)
    reversed_ids = select(TRANSFERS.c.reverses_id).where(TRANSFERS.c.reverses_id.is_not(None))
    async with transaction(session):
        rows = (
            await session.execute(
                select(TRANSFERS.c.service_type, func.count(), func.sum(TRANSFERS.c.amount_minutes))
                .where(
                    TRANSFERS.c.community == community,
                    TRANSFERS.c.kind == "service",
                    TRANSFERS.c.phase == "posted",
                    TRANSFERS.c.created_at >= start,
                    TRANSFERS.c.created_at < end,
                    TRANSFERS.c.id.not_in(reversed_ids),
                )
                .group_by(TRANSFERS.c.service_type)
                .order_by(TRANSFERS.c.service_type)
            )
        ).all()
        members, volunteers, elders = (
            await session.execute(
                select(func.count(), func.count().filter(MEMBERS.c.is_volunteer), func.count().filter(MEMBERS.c.is_elder)).where(
                    MEMBERS.c.community == community
                )
            )
        ).one()
    by_type = [{"service_type": r[0] or "other", "services": int(r[1]), "minutes": int(r[2])} for r in rows]
    return {
        "community": community,
        "month": f"{month.year:04d}-{month.month:02d}",
        "services": sum(t["services"] for t in by_type),
        "minutes_served": sum(t["minutes"] for t in by_type),
        "by_service_type": by_type,
        "members": int(members),
        "volunteers": int(volunteers),
        "elders": int(elders),
    }
