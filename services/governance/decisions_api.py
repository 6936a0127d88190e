"""Routes of collective choice (集体选择): decisions, ballots, proxies. Thin: parse, authorize, call one use case."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.governance import ballots, decisions, problems, roll
from services.governance.ballots import CastBallot
from services.governance.decision_models import Decision, ProxyAuthorisation
from services.governance.decision_schemas import (
    BallotCreate,
    BallotPublic,
    DecisionCreate,
    DecisionPublic,
    MyDecision,
    NamedBallot,
    PaperBallotCreate,
    ProxyCreate,
    ProxyPublic,
    RollSummary,
)
from services.kit.auth import CurrentPrincipal, Principal, require_roles
from services.kit.db import SessionDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses

router = APIRouter(tags=["decisions"])

Worker = Annotated[Principal, require_roles("community_worker")]
Staff = Annotated[Principal, require_roles("steward", "property_admin", "community_worker")]
Resident = Annotated[Principal, require_roles("resident")]


@router.get("/roll", response_model=RollSummary)
async def roll_summary(staff: Staff, session: SessionDep) -> RollSummary:
    """What a decision opened now would freeze: units, owners as the law counts them, exclusive area (staff)."""
    return RollSummary(**await roll.summary(session, staff.community))


@router.post("/decisions", status_code=201, response_model=DecisionPublic)
async def draft_decision(body: DecisionCreate, worker: Worker, session: SessionDep) -> Decision:
    """Draft a decision.

    A community worker drafts an owners' decision (ordinary or major: options yes / no / abstain) or
    a household poll (its own options), with its opening and closing times.
    """
    return await decisions.draft(session, worker, body)


@router.get("/decisions", response_model=Page[DecisionPublic])
async def list_decisions(staff: Staff, session: SessionDep, page: PageDep) -> Page[DecisionPublic]:
    """List the community's decisions, newest first, paged by cursor (staff)."""
    items, cursor = await decisions.list_decisions(session, staff, page)
    return Page[DecisionPublic](items=[DecisionPublic.model_validate(d) for d in items], next_cursor=cursor)


@router.post(
    "/decisions/{decision_id}/open",
    response_model=DecisionPublic,
    responses=problem_responses(problems.DecisionNotFound, problems.DecisionAlreadyOpened, problems.DecisionNotOpen),
)
async def open_decision(decision_id: uuid.UUID, worker: Worker, session: SessionDep) -> Decision:
    """Open a draft and freeze its roll.

    The units (area, owner key) and who may vote are copied now: registry changes during the vote
    change neither the roll nor the tally.
    """
    return await decisions.open_decision(session, worker, decision_id)


@router.get("/decisions/{decision_id}", response_model=DecisionPublic, responses=problem_responses(problems.DecisionNotFound))
async def get_decision(decision_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep) -> DecisionPublic:
    """Read a decision, with its result and receipts once closed.

    Staff of the community, or a resident on its roll (or their recorded proxy); anyone else gets 404.
    """
    return await decisions.visible_decision(session, who, decision_id)


@router.get("/me/decisions", response_model=Page[MyDecision])
async def my_decisions(me: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[MyDecision]:
    """The open decisions I may vote on, soonest closing first, paged by cursor, each with my receipt
    if a ballot was cast for me."""
    rows, cursor = await decisions.my_open_decisions(session, me, page)
    items = [MyDecision.model_validate(d).model_copy(update={"my_receipt": receipt}) for d, receipt in rows]
    return Page[MyDecision](items=items, next_cursor=cursor)


@router.post(
    "/decisions/{decision_id}/ballots",
    status_code=201,
    response_model=BallotPublic,
    responses=problem_responses(
        problems.DecisionNotFound,
        problems.DecisionNotOpen,
        problems.NotOnRoll,
        problems.NotAProxy,
        problems.BallotAlreadyCast,
        problems.UnknownOption,
    ),
)
async def cast_ballot(decision_id: uuid.UUID, body: BallotCreate, voter: Resident, session: SessionDep) -> CastBallot:
    """Cast my one final ballot (or, as a recorded proxy, an owner's).

    A retry of the same ballot returns it; a different second ballot for the same voter is refused.
    Publishes `governance.ballot.cast.v1` (without the option).
    """
    return await ballots.cast(session, voter, decision_id, body)


@router.post(
    "/decisions/{decision_id}/paper-ballots",
    status_code=201,
    response_model=BallotPublic,
    responses=problem_responses(
        problems.DecisionNotFound,
        problems.DecisionNotOpen,
        problems.NotOnRoll,
        problems.BallotAlreadyCast,
        problems.UnknownOption,
    ),
)
async def cast_paper_ballot(decision_id: uuid.UUID, body: PaperBallotCreate, worker: Worker, session: SessionDep) -> CastBallot:
    """Enter a paper ballot (纸质表决票) for a unit on the roll, recorded with the worker; the same one-ballot rule."""
    return await ballots.cast_paper(session, worker, decision_id, body)


@router.get(
    "/decisions/{decision_id}/ballots",
    response_model=Page[NamedBallot],
    responses=problem_responses(problems.DecisionNotFound, problems.BallotsSecret),
)
async def list_named_ballots(decision_id: uuid.UUID, worker: Worker, session: SessionDep, page: PageDep) -> Page[NamedBallot]:
    """The ballots by name (household, option, who cast it), by household and paged by cursor, for
    the committee, only when the decision was drafted with `ballots_by_name`; otherwise `ballots-secret`."""
    items, cursor = await ballots.named_ballots(session, worker, decision_id, page)
    return Page[NamedBallot](items=[NamedBallot.model_validate(b) for b in items], next_cursor=cursor)


@router.post("/proxies", status_code=201, response_model=ProxyPublic)
async def record_proxy(body: ProxyCreate, worker: Worker, session: SessionDep) -> ProxyAuthorisation:
    """Record a verified proxy: the proxy may vote for the owner in the app.

    The basis is a written authorisation (授权委托书) the worker has seen, or the proxy being a
    registered relative of an elder (the relation named); the proxy's ballots keep the basis.
    """
    return await decisions.record_proxy(session, worker, body)
