"""HTTP routes of the time bank: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import InvalidCursor, Page, PageDep
from services.kit.problems import BadRequest, Forbidden, problem_responses
from services.timebank import audit, batches, care, community, hours_expiry, members, reports, resolution, transfers
from services.timebank.domain import LOCAL_TZ, CareStatus
from services.timebank.problems import (
    AccountNotFound,
    AgeNotVerified,
    AlreadyResolved,
    AlreadyReversed,
    BelowFirstWithdrawalMinimum,
    BelowWithdrawalAge,
    CannotServeSelf,
    CareRequestNotFound,
    CareRequestTaken,
    CheckoutBeforeCheckin,
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
    ServiceTooShort,
    TimeInFuture,
    TransferIdConflict,
    TransferNotFound,
    WrongAccountKind,
    WrongCareRequestState,
)
from services.timebank.schemas import (
    AccountOut,
    AgeVerification,
    Balance,
    BatchIn,
    BatchOut,
    CareRequestIn,
    CareRequestOut,
    CheckIn,
    CheckOut,
    CommunitySettingsChange,
    CommunitySettingsIn,
    CommunitySettingsOut,
    CommunitySummary,
    ConfirmIn,
    DisputeIn,
    DonationIn,
    FundingIn,
    GiftIn,
    HoursExpiryOutlook,
    LedgerAuditOut,
    MemberEnrol,
    MemberOut,
    PassbookEntry,
    PoolOut,
    RelativeIn,
    RelativeOut,
    ReversalIn,
    SpendIn,
    TransferOut,
)

router = APIRouter()
Worker = Annotated[Principal, require_roles("community_worker")]
Staff = Annotated[Principal, require_roles("community_worker", "steward")]
MemberPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]

TRANSFER_PROBLEMS = (TransferIdConflict, InsufficientBalance, AccountNotFound, NotAMember)


def _balance(row: Any) -> Balance:
    return Balance(
        posted_minutes=row.credits_posted - row.debits_posted,
        available_minutes=row.credits_posted - row.debits_posted - row.debits_pending,
        pending_in_minutes=row.credits_pending,
        pending_out_minutes=row.debits_pending,
    )


def member_out(row: Any) -> MemberOut:
    return MemberOut(
        member_id=row.member_id,
        community=row.community,
        is_volunteer=row.is_volunteer,
        is_elder=row.is_elder,
        priority_elder=row.priority_elder,
        birth_date=row.birth_date,
        age_verified_at=row.age_verified_at,
        account_id=row.account_id,
        balance=_balance(row),
    )


def account_out(row: Any) -> AccountOut:
    return AccountOut(
        id=row.id,
        kind=row.kind,
        owner_id=row.owner_id,
        debits_pending=row.debits_pending,
        debits_posted=row.debits_posted,
        credits_pending=row.credits_pending,
        credits_posted=row.credits_posted,
        balance=_balance(row),
    )


def transfer_out(row: Any) -> TransferOut:
    return TransferOut.model_validate(row, from_attributes=True)


def care_out(row: Any) -> CareRequestOut:
    return CareRequestOut.model_validate(row, from_attributes=True)


# --- settings and members ---------------------------------------------------------------------------


@router.get("/settings", response_model=CommunitySettingsOut, tags=["settings"])
async def read_settings(principal: CurrentPrincipal, session: SessionDep) -> CommunitySettingsOut:
    """Read the community's time-bank rules.

    Withdrawal age, storage cap, minimum balance before a first withdrawal, confirmation timeout and
    hours expiry, with their defaults until a worker changes them. Any member of the community.
    """
    return CommunitySettingsOut.model_validate(await community.read_settings(session, principal.community))


@router.put("/settings", response_model=CommunitySettingsOut, tags=["settings"], responses=problem_responses(Forbidden))
async def update_settings(body: CommunitySettingsIn, worker: Worker, session: SessionDep) -> CommunitySettingsOut:
    """Replace every setting.

    A setting left out goes back to its default; `PATCH /settings` changes only the ones given.
    Community workers only.
    """
    return CommunitySettingsOut.model_validate(await community.update_settings(session, worker.community, body))


@router.patch("/settings", response_model=CommunitySettingsOut, tags=["settings"], responses=problem_responses(Forbidden))
async def change_settings(body: CommunitySettingsChange, worker: Worker, session: SessionDep) -> CommunitySettingsOut:
    """Change only the settings given.

    The others keep their value, also when another worker changes a different setting at the same
    time. Community workers only.
    """
    return CommunitySettingsOut.model_validate(await community.update_settings(session, worker.community, body))


@router.post(
    "/members",
    response_model=MemberOut,
    status_code=201,
    tags=["members"],
    responses={200: {"description": "Already enrolled; roles added", "model": MemberOut}, **problem_responses(Forbidden)},
)
async def enrol(body: MemberEnrol, principal: CurrentPrincipal, session: SessionDep, response: Response) -> MemberOut:
    """Enrol as volunteer, elder or both.

    A resident enrols themself (201), or adds a role when already enrolled (200); a community worker
    may enrol someone else by `member_id`. The member's account is opened with the membership.
    """
    row, created = await members.enrol(session, principal, body)
    if not created:
        response.status_code = 200
    return member_out(row)


@router.get("/members/me", response_model=MemberOut, tags=["members"], responses=problem_responses(NotAMember))
async def read_me(principal: CurrentPrincipal, session: SessionDep) -> MemberOut:
    """Read one's own membership and balance.

    The caller's roles, verified birth date and balance; 404 when not enrolled.
    """
    return member_out(await members.read_member(session, principal, principal.subject))


@router.get("/members/{member_id}", response_model=MemberOut, tags=["members"], responses=problem_responses(NotAMember))
async def read_member(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep) -> MemberOut:
    """Read a member's membership and balance.

    For the member, a verified relative, a steward or a community worker; 404 for anyone else, so
    that another resident's membership is not disclosed.
    """
    return member_out(await members.read_member(session, principal, member_id))


@router.post(
    "/members/{member_id}/verification",
    response_model=MemberOut,
    tags=["members"],
    responses=problem_responses(NotAMember, Forbidden),
)
async def verify_age(member_id: MemberPath, body: AgeVerification, worker: Worker, session: SessionDep) -> MemberOut:
    """Record a member's verified birth date and priority-elder status.

    The birth date a community worker checked in person decides the withdrawal age; a priority
    elder's (重点空巢独居老人) care is paid by the pool. Community workers only.
    """
    return member_out(await members.verify_age(session, worker, member_id, body))


@router.post(
    "/members/{member_id}/relatives",
    response_model=RelativeOut,
    status_code=201,
    tags=["members"],
    responses=problem_responses(NotAMember, NotAVerifiedRelative, Forbidden),
)
async def verify_relative(member_id: MemberPath, body: RelativeIn, worker: Worker, session: SessionDep) -> RelativeOut:
    """Record a verified family link.

    Written in both directions, so either may give hours to the other or act for them as a
    delegate. Community workers only.
    """
    return RelativeOut.model_validate(await members.verify_relative(session, worker, member_id, body), from_attributes=True)


@router.get(
    "/members/{member_id}/relatives", response_model=list[RelativeOut], tags=["members"], responses=problem_responses(NotAMember)
)
async def list_relatives(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep) -> list[RelativeOut]:
    """List a member's verified relatives.

    For the member themself, a steward or a community worker; 404 for anyone else.
    """
    if member_id != principal.subject and not principal.has("community_worker", "steward"):
        raise NotAMember(member_id=member_id)
    rows = await members.list_relatives(session, principal.community, member_id)
    return [RelativeOut.model_validate(r, from_attributes=True) for r in rows]


@router.get(
    "/members/{member_id}/passbook",
    response_model=Page[PassbookEntry],
    tags=["members"],
    responses=problem_responses(NotAMember, InvalidCursor),
)
async def passbook(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[PassbookEntry]:
    """Read a member's passbook (存折).

    Posted transfers, newest first, each signed from the member's side with the balance after it;
    cursor-paginated. `me` names the caller. For the member, a verified relative or staff; 404
    otherwise.
    """
    who = principal.subject if member_id == "me" else member_id
    items, cursor = await members.passbook(session, principal, who, page)
    return Page[PassbookEntry](items=items, next_cursor=cursor)


@router.get(
    "/members/{member_id}/hours-expiry",
    response_model=HoursExpiryOutlook,
    tags=["members"],
    responses=problem_responses(NotAMember),
)
async def hours_expiry_outlook(
    member_id: MemberPath,
    principal: CurrentPrincipal,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=366, description="How far ahead")] = 90,
) -> HoursExpiryOutlook:
    """Read the hours that will pass the validity period soon.

    By date, the minutes that will expire in the next `days` days if nothing else changes (empty
    where hours do not expire); spending before a date saves them. `me` names the caller. For the
    member, a verified relative or staff; 404 otherwise.
    """
    who = principal.subject if member_id == "me" else member_id
    return await hours_expiry.hours_expiry_outlook(session, principal, who, days=days)


# --- care requests ----------------------------------------------------------------------------------


@router.post(
    "/care-requests",
    response_model=CareRequestOut,
    status_code=201,
    tags=["care"],
    responses=problem_responses(NotAMember, NotAnElder),
)
async def post_care_request(
    body: CareRequestIn, principal: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep
) -> CareRequestOut | JSONResponse:
    """Ask for care.

    An elder asks for themself; a verified relative, a steward or a community worker may ask on the
    elder's behalf. An `Idempotency-Key` makes a retry safe.
    """
    return await idem.run(session, body, partial(_post_care_request, session, principal, body), CareRequestOut)


async def _post_care_request(session: AsyncSession, principal: Principal, body: CareRequestIn) -> CareRequestOut:
    return care_out(await care.post_care_request(session, principal, body))


@router.get("/care-requests", response_model=Page[CareRequestOut], tags=["care"], responses=problem_responses(InvalidCursor))
async def list_care_requests(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        list[CareStatus] | None,
        Query(
            description="One or more states (repeat the parameter: "
            "`?status=accepted&status=in_progress` for a volunteer's "
            "tasks); `open` by default"
        ),
    ] = None,
) -> Page[CareRequestOut]:
    """List care requests by start time.

    Open requests are the whole community's (volunteers browse these); in other states a resident
    sees the requests they are the elder, volunteer or requester of, or whose elder is their
    verified relative; staff see all. Any member; cursor-paginated.
    """
    states = sorted({s.value for s in status or [CareStatus.OPEN]})
    rows, cursor = await care.list_care_requests(session, principal, states, page)
    return Page[CareRequestOut](items=[care_out(r) for r in rows], next_cursor=cursor)


@router.get(
    "/care-requests/{request_id}", response_model=CareRequestOut, tags=["care"], responses=problem_responses(CareRequestNotFound)
)
async def read_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Read a care request.

    An open request is visible to every member; later, to its elder, volunteer and requester, the
    elder's verified relatives and staff; 404 for anyone else.
    """
    return care_out(await care.read_care_request(session, principal, request_id))


@router.post(
    "/care-requests/{request_id}/accept",
    response_model=CareRequestOut,
    tags=["care"],
    responses=problem_responses(CareRequestTaken, CannotServeSelf, NotAVolunteer, NotAMember, CareRequestNotFound),
)
async def accept_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Accept an open care request.

    An enrolled volunteer (not the elder) takes the request; exactly one of any number of racing
    volunteers gets it, the others get 409. The winner retrying gets its request again.
    """
    return care_out(await care.accept_care_request(session, principal, request_id))


@router.post(
    "/care-requests/{request_id}/cancel",
    response_model=CareRequestOut,
    tags=["care"],
    responses=problem_responses(WrongCareRequestState, CareRequestNotFound, Forbidden),
)
async def cancel_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Cancel a care request.

    While it is open or accepted, by the elder, the requester, a verified relative or staff;
    publishes `timebank.care_request.cancelled.v1`. A retry answers the cancelled request again.
    """
    return care_out(await care.cancel_care_request(session, principal, request_id))


@router.post(
    "/care-requests/{request_id}/check-in",
    response_model=CareRequestOut,
    tags=["care"],
    responses=problem_responses(WrongCareRequestState, CareRequestNotFound, TimeInFuture, Forbidden),
)
async def check_in(request_id: uuid.UUID, body: CheckIn, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Check in at the start of the service.

    Only the volunteer who accepted the request; `at` defaults to now and may not be in the future.
    A retry answers the request again, the first check-in time standing.
    """
    return care_out(await care.check_in(session, principal, request_id, body))


@router.post(
    "/care-requests/{request_id}/check-out",
    response_model=TransferOut,
    status_code=201,
    tags=["care"],
    responses=problem_responses(
        CheckoutBeforeCheckin,
        ServiceTooShort,
        TimeInFuture,
        WrongCareRequestState,
        InsufficientBalance,
        BelowWithdrawalAge,
        AgeNotVerified,
        BelowFirstWithdrawalMinimum,
        TransferIdConflict,
        CareRequestNotFound,
    ),
)
async def check_out(request_id: uuid.UUID, body: CheckOut, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Check out: the served minutes become a pending transfer.

    Only the volunteer who accepted the request. The payer is the elder, or the pool for a priority
    elder; the elder's own hours need the withdrawal age and the first-withdrawal minimum.
    `transfer_id` makes a retry safe.
    """
    return transfer_out(await care.check_out(session, principal, request_id, body))


# --- transfers --------------------------------------------------------------------------------------


@router.post(
    "/transfers/{pending_id}/confirm",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(
        NotAllowedToResolve, AlreadyResolved, NotPending, MinutesExceedPending, TransferNotFound, *TRANSFER_PROBLEMS
    ),
)
async def confirm(pending_id: uuid.UUID, body: ConfirmIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Confirm a service: post its pending transfer.

    The elder, a verified delegate (a relative or a steward) or a community worker posts the pending
    transfer, maybe for fewer minutes than logged; never the volunteer who served (403), and 404
    for anyone unrelated. Publishes `timebank.service.confirmed.v1`. The body's `id` makes a retry
    safe.
    """
    return transfer_out(await resolution.confirm(session, principal, pending_id, body))


@router.post(
    "/transfers/{pending_id}/dispute",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(NotAllowedToResolve, AlreadyResolved, NotPending, TransferNotFound, *TRANSFER_PROBLEMS),
)
async def dispute(pending_id: uuid.UUID, body: DisputeIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Dispute a service: void its pending transfer.

    Nothing is paid and the payer's hours are released. The same people as for a confirmation may
    dispute; the body's `id` makes a retry safe.
    """
    return transfer_out(await resolution.dispute(session, principal, pending_id, body))


@router.post(
    "/transfers/spend",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(BelowWithdrawalAge, AgeNotVerified, BelowFirstWithdrawalMinimum, *TRANSFER_PROBLEMS),
)
async def spend(body: SpendIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Pay for one's own care with one's hours.

    A member over the withdrawal age (with a verified birth date) pays the community for their own
    care. The body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.spend(session, principal, body))


@router.post(
    "/transfers/gift",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(NotAVerifiedRelative, *TRANSFER_PROBLEMS),
)
async def gift(body: GiftIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Give hours to a verified relative.

    Any member, to a relative a community worker verified. The body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.gift(session, principal, body))


@router.post(
    "/transfers/donation",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(*TRANSFER_PROBLEMS),
)
async def donate(body: DonationIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Donate hours to the community pool (公益池).

    Any member. The body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.donate(session, principal, body))


@router.post(
    "/transfers/funding",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(Forbidden, *TRANSFER_PROBLEMS),
)
async def fund_pool(body: FundingIn, worker: Worker, session: SessionDep) -> TransferOut:
    """Record hours entering the pool from outside.

    Donated or subsidised hours move from the community account to the pool. Community workers
    only; the body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.fund_pool(session, worker, body))


@router.post(
    "/transfers/batch",
    response_model=BatchOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(LinkedTransferFailed, WrongAccountKind, Forbidden, *TRANSFER_PROBLEMS),
)
async def post_batch(body: BatchIn, worker: Worker, session: SessionDep) -> BatchOut:
    """Post up to 1,000 linked transfers: all or none.

    Service, donation and funding transfers from a paper service log or a round of funding, in one
    transaction; a refused leg refuses the batch and every id in it. Community workers only.
    """
    rows = await batches.post_batch(session, worker, body)
    return BatchOut(transfers=[transfer_out(r) for r in rows])


@router.post(
    "/transfers/{transfer_id}/reversal",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(NotReversible, AlreadyReversed, TransferNotFound, Forbidden, *TRANSFER_PROBLEMS),
)
async def reverse(transfer_id: uuid.UUID, body: ReversalIn, worker: Worker, session: SessionDep) -> TransferOut:
    """Reverse a posted transfer.

    A new transfer in the other direction that points at the original; overflows, expiries and
    reversals are not reversible, and a transfer is reversed at most once. Community workers only.
    """
    return transfer_out(await transfers.reverse(session, worker, transfer_id, body))


@router.get(
    "/transfers/{transfer_id}", response_model=TransferOut, tags=["transfers"], responses=problem_responses(TransferNotFound)
)
async def read_transfer(transfer_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Read a transfer.

    For the owners of its two accounts, their verified relatives and staff; 404 for anyone else.
    """
    return transfer_out(await transfers.read_transfer(session, principal, transfer_id))


# --- staff views ---------------------------------------------------------------------------------------


@router.get("/pool", response_model=PoolOut, tags=["community"], responses=problem_responses(Forbidden))
async def pool(staff: Staff, session: SessionDep) -> PoolOut:
    """Read the pool and the community account.

    Their balances, and the count and minutes of pending transfers still awaiting confirmation.
    Stewards and community workers only.
    """
    view = await reports.pool_view(session, staff.community)
    return PoolOut(
        pool=account_out(view.pool),
        community_account=account_out(view.community_account),
        open_pending_count=view.open_pending_count,
        open_pending_minutes=view.open_pending_minutes,
    )


@router.get(
    "/pending-transfers",
    response_model=Page[TransferOut],
    tags=["community"],
    responses=problem_responses(Forbidden, InvalidCursor),
)
async def pending_transfers(
    staff: Staff,
    session: SessionDep,
    page: PageDep,
    state: Annotated[Literal["awaiting", "disputed", "expired"], Query()] = "awaiting",
) -> Page[TransferOut]:
    """List pending transfers awaiting confirmation, disputed or timed out.

    Newest first, cursor-paginated: `awaiting` confirmations, `disputed` ones or `expired` ones.
    Stewards and community workers only.
    """
    resolution = {"awaiting": None, "disputed": "voided", "expired": "expired"}[state]
    rows, cursor = await reports.list_pending(session, staff.community, resolution, page)
    return Page[TransferOut](items=[transfer_out(r) for r in rows], next_cursor=cursor)


@router.get("/summary", response_model=CommunitySummary, tags=["community"], responses=problem_responses(BadRequest))
async def community_summary(
    principal: CurrentPrincipal,
    session: SessionDep,
    month: Annotated[str | None, Query(description="YYYY-MM, local time; defaults to this month")] = None,
) -> CommunitySummary:
    """Read the month's summary of hours served.

    Services and minutes served in the month (local time) by service type, net of reversals, and the
    number of members, volunteers and elders. Any member of the community.
    """
    if month is None:
        today = datetime.now(LOCAL_TZ).date()
        first = date(today.year, today.month, 1)
    else:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise BadRequest(("月份格式应为 YYYY-MM", "month must be YYYY-MM"))
        first = date(int(month[:4]), int(month[5:]), 1)
    return await reports.summary(session, principal.community, first)


@router.get("/ledger-audit", response_model=LedgerAuditOut, tags=["community"], responses=problem_responses(Forbidden))
async def audit_ledger(worker: Worker, session: SessionDep) -> LedgerAuditOut:
    """Check that the community's ledger reconciles.

    Whether the account totals agree with the transfers (double entry, pending transfers resolved
    once, no hours crossing communities), and where they do not. Reads every row: for a worker's
    check or an alert, not for every page load. Community workers only.
    """
    result = await audit.audit_ledger(session, worker.community)
    return LedgerAuditOut(
        community=worker.community,
        reconciles=result.reconciles,
        accounts=result.accounts,
        transfers=result.transfers,
        findings=[vars(f) for f in result.findings],
    )
