"""The time bank's ledger routes: confirm, dispute, spend, gift, donate, fund, batch, reverse, read."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import CurrentPrincipal, Principal
from services.kit.db import SessionDep, get_session
from services.kit.direct_routes import DirectRoute
from services.kit.problems import Forbidden, problem_responses
from services.timebank import batches, resolution, transfers
from services.timebank.api import TRANSFER_PROBLEMS, Worker, transfer_out
from services.timebank.problems import (
    AgeNotVerified,
    AlreadyResolved,
    AlreadyReversed,
    BelowFirstWithdrawalMinimum,
    BelowWithdrawalAge,
    LinkedTransferFailed,
    MinutesExceedPending,
    NotAllowedToResolve,
    NotAVerifiedRelative,
    NotPending,
    NotReversible,
    TransferNotFound,
    WrongAccountKind,
)
from services.timebank.schemas import (
    BatchIn,
    BatchOut,
    ConfirmIn,
    DisputeIn,
    DonationIn,
    FundingIn,
    GiftIn,
    ReversalIn,
    SpendIn,
    TransferOut,
)

transfer_routes = APIRouter(tags=["transfers"])
# The everyday write on a router of its own, which the app tries before every other (`app.ROUTERS`).
confirm_routes = APIRouter(tags=["transfers"])


@confirm_routes.post(
    "/transfers/{pending_id}/confirm",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(
        NotAllowedToResolve, AlreadyResolved, NotPending, MinutesExceedPending, TransferNotFound, *TRANSFER_PROBLEMS
    ),
)
async def confirm(request: Request, pending_id: uuid.UUID, body: ConfirmIn, principal: CurrentPrincipal) -> TransferOut:
    """Confirm a service: post its pending transfer.

    The elder, a verified delegate (a relative or a steward) or a community worker posts the pending
    transfer, maybe for fewer minutes than logged; never the volunteer who served (403), and 404
    for anyone unrelated. Publishes `timebank.service.confirmed.v1`. The body's `id` makes a retry
    safe.
    """
    # Most confirmations are answered by `DIRECT_CONFIRM` ahead of FastAPI; this route documents it
    # and answers the rest (a bad token or body, a query string). The session is made here, as
    # `SessionDep` makes it, rather than resolved as one more dependency.
    return await confirm_service(await get_session(request), principal, {"pending_id": pending_id}, body)


async def confirm_service(session: AsyncSession, principal: Principal, ids: dict[str, uuid.UUID], body: ConfirmIn) -> TransferOut:
    """The confirmation, whichever way it came in."""
    return transfer_out(await resolution.confirm(session, principal, ids["pending_id"], body))


# The everyday write, answered as plain ASGI (services/kit/direct_routes.py): its token, body and
# answer are the route's; FastAPI's routing, dependencies and response model's second pass are not.
DIRECT_CONFIRM = DirectRoute(confirm_routes, confirm, ConfirmIn, confirm_service)


@transfer_routes.post(
    "/transfers/{pending_id}/dispute",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(NotAllowedToResolve, AlreadyResolved, NotPending, TransferNotFound, *TRANSFER_PROBLEMS),
)
async def dispute(pending_id: uuid.UUID, body: DisputeIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Dispute a service: void its pending transfer.

    Nothing is paid and the payer's hours are released. The same people as for a confirmation may
    dispute; the body's `id` makes a retry safe.
    """
    return transfer_out(await resolution.dispute(session, principal, pending_id, body))


@transfer_routes.post(
    "/transfers/spend",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(BelowWithdrawalAge, AgeNotVerified, BelowFirstWithdrawalMinimum, *TRANSFER_PROBLEMS),
)
async def spend(body: SpendIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Pay for one's own care with one's hours.

    A member over the withdrawal age (with a verified birth date) pays the community for their own
    care. The body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.spend(session, principal, body))


@transfer_routes.post(
    "/transfers/gift",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(NotAVerifiedRelative, *TRANSFER_PROBLEMS),
)
async def gift(body: GiftIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Give hours to a verified relative.

    Any member, to a relative a community worker verified. The body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.gift(session, principal, body))


@transfer_routes.post(
    "/transfers/donation",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(*TRANSFER_PROBLEMS),
)
async def donate(body: DonationIn, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Donate hours to the community pool (公益池).

    Any member. The body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.donate(session, principal, body))


@transfer_routes.post(
    "/transfers/funding",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(Forbidden, *TRANSFER_PROBLEMS),
)
async def fund_pool(body: FundingIn, worker: Worker, session: SessionDep) -> TransferOut:
    """Record hours entering the pool from outside.

    Donated or subsidised hours move from the community account to the pool. Community workers
    only; the body's `id` makes a retry safe.
    """
    return transfer_out(await transfers.fund_pool(session, worker, body))


@transfer_routes.post(
    "/transfers/batch",
    response_model=BatchOut,
    status_code=201,
    responses=problem_responses(LinkedTransferFailed, WrongAccountKind, Forbidden, *TRANSFER_PROBLEMS),
)
async def post_batch(body: BatchIn, worker: Worker, session: SessionDep) -> BatchOut:
    """Post up to 1,000 linked transfers: all or none.

    Service, donation and funding transfers from a paper service log or a round of funding, in one
    transaction; a refused leg refuses the batch and every id in it. Community workers only.
    """
    rows = await batches.post_batch(session, worker, body)
    return BatchOut(transfers=[transfer_out(r) for r in rows])


@transfer_routes.post(
    "/transfers/{transfer_id}/reversal",
    response_model=TransferOut,
    status_code=201,
    responses=problem_responses(NotReversible, AlreadyReversed, TransferNotFound, Forbidden, *TRANSFER_PROBLEMS),
)
async def reverse(transfer_id: uuid.UUID, body: ReversalIn, worker: Worker, session: SessionDep) -> TransferOut:
    """Reverse a posted transfer.

    A new transfer in the other direction that points at the original; overflows, expiries and
    reversals are not reversible, and a transfer is reversed at most once. Community workers only.
    """
    return transfer_out(await transfers.reverse(session, worker, transfer_id, body))


@transfer_routes.get("/transfers/{transfer_id}", response_model=TransferOut, responses=problem_responses(TransferNotFound))
async def read_transfer(transfer_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> TransferOut:
    """Read a transfer.

    For the owners of its two accounts, their verified relatives and staff; 404 for anyone else.
    """
    return transfer_out(await transfers.read_transfer(session, principal, transfer_id))
