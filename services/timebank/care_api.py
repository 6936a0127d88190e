"""The time bank's care-request routes: ask, list, read, accept, cancel, check in and out."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import CurrentPrincipal, Principal
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import InvalidCursor, Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.timebank import care
from services.timebank.api import transfer_out
from services.timebank.domain import CareStatus
from services.timebank.problems import (
    AgeNotVerified,
    BelowFirstWithdrawalMinimum,
    BelowWithdrawalAge,
    CannotServeSelf,
    CareRequestNotFound,
    CareRequestTaken,
    CheckinBeforeAcceptance,
    CheckoutBeforeCheckin,
    InsufficientBalance,
    NotAMember,
    NotAnElder,
    NotAVolunteer,
    ServiceTooShort,
    TimeInFuture,
    TransferIdConflict,
    WrongCareRequestState,
)
from services.timebank.schemas import CareRequestIn, CareRequestOut, CheckIn, CheckOut, TransferOut

care_routes = APIRouter(tags=["care"])


def care_out(row: Any) -> CareRequestOut:
    return CareRequestOut.model_validate(row, from_attributes=True)


@care_routes.post(
    "/care-requests",
    response_model=CareRequestOut,
    status_code=201,
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


@care_routes.get("/care-requests", response_model=Page[CareRequestOut], responses=problem_responses(InvalidCursor))
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


@care_routes.get("/care-requests/{request_id}", response_model=CareRequestOut, responses=problem_responses(CareRequestNotFound))
async def read_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Read a care request.

    An open request is visible to every member; later, to its elder, volunteer and requester, the
    elder's verified relatives and staff; 404 for anyone else.
    """
    return care_out(await care.read_care_request(session, principal, request_id))


@care_routes.post(
    "/care-requests/{request_id}/accept",
    response_model=CareRequestOut,
    responses=problem_responses(CareRequestTaken, CannotServeSelf, NotAVolunteer, NotAMember, CareRequestNotFound),
)
async def accept_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Accept an open care request.

    An enrolled volunteer (not the elder) takes the request; exactly one of any number of racing
    volunteers gets it, the others get 409. The winner retrying gets its request again.
    """
    return care_out(await care.accept_care_request(session, principal, request_id))


@care_routes.post(
    "/care-requests/{request_id}/cancel",
    response_model=CareRequestOut,
    responses=problem_responses(WrongCareRequestState, CareRequestNotFound, Forbidden),
)
async def cancel_care_request(request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Cancel a care request.

    While it is open or accepted, by the elder, the requester, a verified relative or staff;
    publishes `timebank.care_request.cancelled.v1`. A retry answers the cancelled request again.
    """
    return care_out(await care.cancel_care_request(session, principal, request_id))


@care_routes.post(
    "/care-requests/{request_id}/check-in",
    response_model=CareRequestOut,
    responses=problem_responses(WrongCareRequestState, CareRequestNotFound, CheckinBeforeAcceptance, TimeInFuture, Forbidden),
)
async def check_in(request_id: uuid.UUID, body: CheckIn, principal: CurrentPrincipal, session: SessionDep) -> CareRequestOut:
    """Check in at the start of the service.

    Only the volunteer who accepted the request; `at` defaults to now, may not be before the
    acceptance nor more than two minutes ahead of the server's clock. A retry answers the request
    again, the first check-in time standing.
    """
    return care_out(await care.check_in(session, principal, request_id, body))


@care_routes.post(
    "/care-requests/{request_id}/check-out",
    response_model=TransferOut,
    status_code=201,
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

    Only the volunteer who accepted the request; `at` defaults to now, must be after the check-in
    and not more than two minutes ahead of the server's clock. The payer is the elder, or the pool for a priority
    elder; the elder's own hours need the withdrawal age and the first-withdrawal minimum.
    `transfer_id` makes a retry safe.
    """
    return transfer_out(await care.check_out(session, principal, request_id, body))
