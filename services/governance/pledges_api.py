"""Routes of service pledges (集体选购). Thin: parse, authorize, call one use case."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.governance import pledges, problems
from services.governance.pledge_models import Pledge, PledgeOffer
from services.governance.pledge_schemas import PledgeOfferCreate, PledgeOfferPublic, PledgePublic
from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses

router = APIRouter(tags=["pledges"])

Worker = Annotated[Principal, require_roles("community_worker")]
Resident = Annotated[Principal, require_roles("resident")]


@router.post("/pledge-offers", status_code=201, response_model=PledgeOfferPublic)
async def post_offer(body: PledgeOfferCreate, worker: Worker, session: SessionDep) -> PledgeOffer:
    """Post a service offer (worker): provider, price per household in fen, minimum households, deadline."""
    return await pledges.post_offer(session, worker, body)


@router.get("/pledge-offers", response_model=Page[PledgeOfferPublic])
async def list_offers(who: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[PledgeOfferPublic]:
    """The community's offers, newest first, paged by cursor, with their pledge counts."""
    items, cursor = await pledges.list_offers(session, who, page)
    return Page[PledgeOfferPublic](items=items, next_cursor=cursor)


@router.get(
    "/pledge-offers/{offer_id}", response_model=PledgeOfferPublic, responses=problem_responses(problems.PledgeOfferNotFound)
)
async def read_offer(offer_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep) -> PledgeOfferPublic:
    """An offer of my community (another community's is 404), and whether my household pledged."""
    return await pledges.read_offer(session, who, offer_id)


@router.post(
    "/pledge-offers/{offer_id}/pledges",
    status_code=201,
    response_model=PledgePublic,
    responses=problem_responses(problems.PledgeOfferNotFound, problems.PledgeOfferClosed, problems.NoHousehold),
)
async def pledge(offer_id: uuid.UUID, resident: Resident, session: SessionDep) -> Pledge:
    """Pledge my household (one pledge per household; a retry answers it).

    When the pledges meet the minimum before the deadline, each household gets an order in property's
    catalogue path (paid by money or points); short of it at the deadline, every pledge lapses and
    nothing is charged. Publishes `governance.pledge.ordered.v1` and `governance.pledge_offer.settled.v1`.
    """
    return await pledges.pledge(session, resident, offer_id)


@router.delete(
    "/pledge-offers/{offer_id}/pledges/mine",
    status_code=204,
    responses=problem_responses(
        problems.PledgeOfferNotFound,
        problems.PledgeNotFound,
        problems.PledgeOrdered,
        problems.PledgeOfferClosed,
        problems.NoHousehold,
    ),
)
async def withdraw(offer_id: uuid.UUID, resident: Resident, session: SessionDep) -> None:
    """Withdraw my household's pledge while the offer is open and before its deadline.

    Once the pledges met the minimum the pledge is an order (`pledge-ordered`, 409); a household
    without a pledge to the offer gets `pledge-not-found` (404), as does another community's offer.
    """
    await pledges.withdraw(session, resident, offer_id)
