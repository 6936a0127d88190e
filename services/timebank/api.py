"""HTTP routes of the time bank: parse, authorize, call one use case, shape the response."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Month
from services.kit.pagination import InvalidCursor, Page, PageDep
from services.kit.problems import BadRequest, Forbidden, problem_responses
from services.timebank import audit, service
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
async def read_settings(principal: CurrentPrincipal, session: SessionDep) -> Any:
    """The community's time-bank rules: withdrawal age, storage cap, first-withdrawal minimum, timeout."""
    return CommunitySettingsOut.model_validate(await service.read_settings(session, principal.community))


@router.put("/settings", response_model=CommunitySettingsOut, tags=["settings"], responses=problem_responses(Forbidden))
async def update_settings(body: CommunitySettingsIn, worker: Worker, session: SessionDep) -> Any:
    """Replace every setting: one left out goes back to its default. PATCH changes only the ones given."""
    return CommunitySettingsOut.model_validate(await service.update_settings(session, worker.community, body))


@router.patch("/settings", response_model=CommunitySettingsOut, tags=["settings"], responses=problem_responses(Forbidden))
async def change_settings(body: CommunitySettingsChange, worker: Worker, session: SessionDep) -> Any:
    """Change only the settings given; the others keep their value."""
    return CommunitySettingsOut.model_validate(await service.update_settings(session, worker.community, body))


@router.post(
    "/members",
    response_model=MemberOut,
    status_code=201,
    tags=["members"],
    responses={200: {"description": "Already enrolled; roles added", "model": MemberOut}, **problem_responses(Forbidden)},
)
async def enrol(body: MemberEnrol, principal: CurrentPrincipal, session: SessionDep, response: Response) -> Any:
    """Enrol as volunteer, elder or both (a community worker may enrol someone else)."""
    row, created = await service.enrol(session, principal, body)
    if not created:
        response.status_code = 200
    return member_out(row)


@router.get("/members/me", response_model=MemberOut, tags=["members"], responses=problem_responses(NotAMember))
async def read_me(principal: CurrentPrincipal, session: SessionDep) -> Any:
    return member_out(await service.read_member(session, principal, principal.subject))


@router.get("/members/{member_id}", response_model=MemberOut, tags=["members"], responses=problem_responses(NotAMember))
async def read_member(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Oneself, a verified relative, or anyone for a steward or community worker; 404 otherwise."""
    return member_out(await service.read_member(session, principal, member_id))


@router.post(
    "/members/{member_id}/verification",
    response_model=MemberOut,
    tags=["members"],
    responses=problem_responses(NotAMember, Forbidden),
)
async def verify_age(member_id: MemberPath, body: AgeVerification, worker: Worker, session: SessionDep) -> Any:
    """A community worker records the birth date checked in person, and priority-elder status."""
    return member_out(await service.verify_age(session, worker, member_id, body))


@router.post(
    "/members/{member_id}/relatives",
    response_model=RelativeOut,
    status_code=201,
    tags=["members"],
    responses=problem_responses(NotAMember, NotAVerifiedRelative, Forbidden),
)
async def verify_relative(member_id: MemberPath, body: RelativeIn, worker: Worker, session: SessionDep) -> Any:
    """A community worker records a verified family link (both directions)."""
    return RelativeOut.model_validate(await service.verify_relative(session, worker, member_id, body), from_attributes=True)


@router.get(
    "/members/{member_id}/relatives", response_model=list[RelativeOut], tags=["members"], responses=problem_responses(NotAMember)
)
async def list_relatives(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep) -> Any:
    if member_id != principal.subject and not principal.has("community_worker", "steward"):
        raise NotAMember(member_id=member_id)
    rows = await service.list_relatives(session, principal.community, member_id)
    return [RelativeOut.model_validate(r, from_attributes=True) for r in rows]


@router.get(
    "/members/{member_id}/passbook",
    response_model=Page[PassbookEntry],
    tags=["members"],
    responses=problem_responses(NotAMember, InvalidCursor),
)
async def passbook(member_id: MemberPath, principal: CurrentPrincipal, session: SessionDep, page: PageDep) -> Any:
    """The passbook (存折): posted transfers, newest first, each with the balance after it.
    `me` names the caller."""
    who = principal.subject if member_id == "me" else member_id
    items, cursor = await service.passbook(session, principal, who, page)
    return Page[PassbookEntry](items=[PassbookEntry.model_validate(i) for i in items], next_cursor=cursor)


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
) -> Any:
    """Hours that will pass the community's validity period in the next `days` days, by date, if
    nothing else changes (empty where hours do not expire). `me` names the caller."""
    who = principal.subject if member_id == "me" else member_id
    return HoursExpiryOutlook.model_validate(await service.hours_expiry_outlook(session, principal, who, days=days))


# --- care requests ----------------------------------------------------------------------------------


@router.post(
    "/care-requests",
    response_model=CareRequestOut,
    status_code=201,
    tags=["care"],
    responses=problem_responses(NotAMember, NotAnElder),
)
async def post_care_request(body: CareRequestIn, principal: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep) -> Any:
    """An elder asks for care; a verified relative or a steward/worker may ask on the elder's behalf."""

    async def create() -> CareRequestOut:
        return care_out(await service.post_care_request(session, principal, body))

    return await idem.run(session, body, create, CareRequestOut)


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
) -> Any:
    """Requests by start time. Open ones are the whole community's (volunteers browse these); in
    other states a resident sees the requests they are the elder, volunteer or requester of, or
    whose elder is their verified relative; staff see all."""
    states = sorted({s.value for s in status or [CareStatus.OPEN]})
    rows, cursor = await service.list_care_requests(session, principal, states, page)
    return Page[CareRequestOut](items=[care_out(r) for r in rows], next_cursor=cursor)


@router.get(
    "/care-requests/{request_id}", response_model=CareRequestOut, tags=["care"], responses=problem_responses(CareRequestNotFound)
)
async def read_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return care_out(await service.read_care_request(session, principal, request_id))


@router.post(
    "/care-requests/{request_id}/accept",
    response_model=CareRequestOut,
    tags=["care"],
    responses=problem_responses(CareRequestTaken, CannotServeSelf, NotAVolunteer, NotAMember, CareRequestNotFound),
)
async def accept_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """A volunteer takes an open request; exactly one of any number of racing volunteers gets it."""
    return care_out(await service.accept_care_request(session, principal, request_id))


@router.post(
    "/care-requests/{request_id}/cancel",
    response_model=CareRequestOut,
    tags=["care"],
    responses=problem_responses(WrongCareRequestState, CareRequestNotFound, Forbidden),
)
async def cancel_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Withdraw a request while it is open or accepted (the elder, the requester, a relative or staff)."""
    return care_out(await service.cancel_care_request(session, principal, request_id))


@router.post(
    "/care-requests/{request_id}/check-in",
    response_model=CareRequestOut,
    tags=["care"],
    responses=problem_responses(WrongCareRequestState, CareRequestNotFound, TimeInFuture, Forbidden),
)
async def check_in(request_id: uuid.UUID, body: CheckIn, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return care_out(await service.check_in(session, principal, request_id, body))


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
async def check_out(request_id: uuid.UUID, body: CheckOut, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """The served minutes become a pending transfer from the payer (the elder, or the pool for a
    priority elder) to the volunteer. `transfer_id` makes a retry safe."""
    return transfer_out(await service.check_out(session, principal, request_id, body))


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
async def confirm(pending_id: uuid.UUID, body: ConfirmIn, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """The elder, a verified delegate or a worker posts the pending transfer (maybe for fewer minutes)."""
    return transfer_out(await service.confirm(session, principal, pending_id, body))


@router.post(
    "/transfers/{pending_id}/dispute",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(NotAllowedToResolve, AlreadyResolved, NotPending, TransferNotFound, *TRANSFER_PROBLEMS),
)
async def dispute(pending_id: uuid.UUID, body: DisputeIn, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Void the pending transfer: nothing is paid, the payer's hours are released."""
    return transfer_out(await service.dispute(session, principal, pending_id, body))


@router.post(
    "/transfers/spend",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(BelowWithdrawalAge, AgeNotVerified, BelowFirstWithdrawalMinimum, *TRANSFER_PROBLEMS),
)
async def spend(body: SpendIn, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Pay for one's own care from the community with one's hours (from the withdrawal age)."""
    return transfer_out(await service.spend(session, principal, body))


@router.post(
    "/transfers/gift",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(NotAVerifiedRelative, *TRANSFER_PROBLEMS),
)
async def gift(body: GiftIn, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Give hours to a relative verified by a community worker."""
    return transfer_out(await service.gift(session, principal, body))


@router.post(
    "/transfers/donation",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(*TRANSFER_PROBLEMS),
)
async def donate(body: DonationIn, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Donate hours to the community pool (公益池)."""
    return transfer_out(await service.donate(session, principal, body))


@router.post(
    "/transfers/funding",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(Forbidden, *TRANSFER_PROBLEMS),
)
async def fund_pool(body: FundingIn, worker: Worker, session: SessionDep) -> Any:
    """A worker records hours entering the pool from outside (donated or subsidised)."""
    return transfer_out(await service.fund_pool(session, worker, body))


@router.post(
    "/transfers/batch",
    response_model=BatchOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(LinkedTransferFailed, WrongAccountKind, Forbidden, *TRANSFER_PROBLEMS),
)
async def post_batch(body: BatchIn, worker: Worker, session: SessionDep) -> Any:
    """Up to 1,000 linked transfers (service, donation, funding) in one transaction: all or none."""
    rows = await service.post_batch(session, worker, body)
    return BatchOut(transfers=[transfer_out(r) for r in rows])


@router.post(
    "/transfers/{transfer_id}/reversal",
    response_model=TransferOut,
    status_code=201,
    tags=["transfers"],
    responses=problem_responses(NotReversible, AlreadyReversed, TransferNotFound, Forbidden, *TRANSFER_PROBLEMS),
)
async def reverse(transfer_id: uuid.UUID, body: ReversalIn, worker: Worker, session: SessionDep) -> Any:
    """Correct a posted transfer by a new one in the other direction that points at it."""
    return transfer_out(await service.reverse(session, worker, transfer_id, body))


@router.get(
    "/transfers/{transfer_id}", response_model=TransferOut, tags=["transfers"], responses=problem_responses(TransferNotFound)
)
async def read_transfer(transfer_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    return transfer_out(await service.read_transfer(session, principal, transfer_id))


# --- staff views ---------------------------------------------------------------------------------------


@router.get("/pool", response_model=PoolOut, tags=["community"], responses=problem_responses(Forbidden))
async def pool(staff: Staff, session: SessionDep) -> Any:
    view = await service.pool_view(session, staff.community)
    return PoolOut(
        pool=account_out(view["pool"]),
        community_account=account_out(view["community_account"]),
        open_pending_count=view["open_pending_count"],
        open_pending_minutes=view["open_pending_minutes"],
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
) -> Any:
    """Pending confirmations (`awaiting`), disputes (`disputed`) or timed-out ones (`expired`)."""
    resolution = {"awaiting": None, "disputed": "voided", "expired": "expired"}[state]
    rows, cursor = await service.list_pending(session, staff.community, resolution, page)
    return Page[TransferOut](items=[transfer_out(r) for r in rows], next_cursor=cursor)


@router.get("/summary", response_model=CommunitySummary, tags=["community"], responses=problem_responses(BadRequest))
async def community_summary(
    principal: CurrentPrincipal,
    session: SessionDep,
    month: Annotated[Month | None, Query(description="YYYY-MM, local time; defaults to this month")] = None,
) -> Any:
    """Hours served in the month by service type, and the number of members."""
    if month is None:
        today = datetime.now(LOCAL_TZ).date()
        first = date(today.year, today.month, 1)
    else:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise BadRequest(("月份格式应为 YYYY-MM", "month must be YYYY-MM"))
        first = date(int(month[:4]), int(month[5:]), 1)
    return CommunitySummary.model_validate(await service.summary(session, principal.community, first))


@router.get("/ledger-audit", response_model=LedgerAuditOut, tags=["community"], responses=problem_responses(Forbidden))
async def audit_ledger(worker: Worker, session: SessionDep) -> Any:
    """Whether the community's account totals agree with its transfers (double entry, pending
    transfers resolved once, no hours crossing communities), and where they do not. Reads every row: for a
    worker's check or an alert, not for every page load."""
    result = await audit.audit_ledger(session, worker.community)
    return LedgerAuditOut(
        community=worker.community,
        reconciles=result.reconciles,
        accounts=result.accounts,
        transfers=result.transfers,
        findings=[vars(f) for f in result.findings],
    )
