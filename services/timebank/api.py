"""The time bank's HTTP routes: what they share, the community's settings and the staff's views.

Routes parse, authorize, call one use case and shape the response; each route's docstring is its
OpenAPI summary and description. Here: what the route modules share (the role and path aliases,
the refusals any transfer may meet, the shaping of balances and transfers), the settings routes,
and the staff's views of the community (the pool, pending transfers, the month's summary, the
ledger audit). Members' routes are in `members_api`, care requests' in `care_api` and the
ledger's in `transfers_api`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.inputs import Month
from services.kit.pagination import InvalidCursor, Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.timebank import audit, community, reports
from services.timebank.domain import LOCAL_TZ
from services.timebank.problems import AccountNotFound, InsufficientBalance, NotAMember, TransferIdConflict
from services.timebank.schemas import (
    AccountOut,
    Balance,
    CommunitySettingsChange,
    CommunitySettingsIn,
    CommunitySettingsOut,
    CommunitySummary,
    LedgerAuditOut,
    PendingTransferOut,
    PoolOut,
    TransferOut,
)

Worker = Annotated[Principal, require_roles("community_worker")]
Staff = Annotated[Principal, require_roles("community_worker", "steward")]
MemberPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]

TRANSFER_PROBLEMS = (TransferIdConflict, InsufficientBalance, AccountNotFound, NotAMember)


def balance_of(row: Any) -> Balance:
    return Balance(
        posted_minutes=row.credits_posted - row.debits_posted,
        available_minutes=row.credits_posted - row.debits_posted - row.debits_pending,
        pending_in_minutes=row.credits_pending,
        pending_out_minutes=row.debits_pending,
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
        balance=balance_of(row),
    )


def transfer_out(row: Any) -> TransferOut:
    return TransferOut.model_validate(row, from_attributes=True)


settings_routes = APIRouter(tags=["settings"])
community_routes = APIRouter(tags=["community"])


@settings_routes.get("/settings", response_model=CommunitySettingsOut)
async def read_settings(principal: CurrentPrincipal, session: SessionDep) -> CommunitySettingsOut:
    """Read the community's time-bank rules.

    Withdrawal age, storage cap, minimum balance before a first withdrawal, confirmation timeout and
    hours expiry, with their defaults until a worker changes them. Any member of the community.
    """
    return CommunitySettingsOut.model_validate(await community.read_settings(session, principal.community))


@settings_routes.put("/settings", response_model=CommunitySettingsOut, responses=problem_responses(Forbidden))
async def update_settings(body: CommunitySettingsIn, worker: Worker, session: SessionDep) -> CommunitySettingsOut:
    """Replace every setting.

    A setting left out goes back to its default; `PATCH /settings` changes only the ones given.
    Community workers only.
    """
    return CommunitySettingsOut.model_validate(await community.update_settings(session, worker.community, body))


@settings_routes.patch("/settings", response_model=CommunitySettingsOut, responses=problem_responses(Forbidden))
async def change_settings(body: CommunitySettingsChange, worker: Worker, session: SessionDep) -> CommunitySettingsOut:
    """Change only the settings given.

    The others keep their value, also when another worker changes a different setting at the same
    time. Community workers only.
    """
    return CommunitySettingsOut.model_validate(await community.update_settings(session, worker.community, body))


# --- staff views ---------------------------------------------------------------------------------------


@community_routes.get("/pool", response_model=PoolOut, responses=problem_responses(Forbidden))
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


@community_routes.get(
    "/pending-transfers",
    response_model=Page[PendingTransferOut],
    responses=problem_responses(Forbidden, InvalidCursor),
)
async def pending_transfers(
    staff: Staff,
    session: SessionDep,
    page: PageDep,
    state: Annotated[Literal["awaiting", "disputed", "expired"], Query()] = "awaiting",
) -> Page[PendingTransferOut]:
    """List pending transfers awaiting confirmation, disputed or timed out.

    Newest first, cursor-paginated: `awaiting` confirmations, `disputed` ones or `expired` ones,
    each resolved one with the reason it was voided with (`resolution_reason`: the dispute's
    reason). Stewards and community workers only.
    """
    resolution = {"awaiting": None, "disputed": "voided", "expired": "expired"}[state]
    rows, cursor = await reports.list_pending(session, staff.community, resolution, page)
    return Page[PendingTransferOut](items=[PendingTransferOut.model_validate(r) for r in rows], next_cursor=cursor)


@community_routes.get("/summary", response_model=CommunitySummary)
async def community_summary(
    principal: CurrentPrincipal,
    session: SessionDep,
    month: Annotated[Month | None, Query(description="YYYY-MM, local time; defaults to this month")] = None,
) -> CommunitySummary:
    """Read the month's summary of hours served.

    Services and minutes served in the month (local time) by service type, net of reversals, and the
    number of members, volunteers and elders. Any member of the community.
    """
    if month is None:
        today = datetime.now(LOCAL_TZ).date()
        first = date(today.year, today.month, 1)
    else:
        first = date(int(month[:4]), int(month[5:]), 1)
    return await reports.summary(session, principal.community, first)


@community_routes.get("/ledger-audit", response_model=LedgerAuditOut, responses=problem_responses(Forbidden))
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
