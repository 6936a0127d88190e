"""Ballots (表决票): one final ballot per voter key, cast in the app, by a recorded proxy, or on paper
entered by a worker. The unique key (decision, voter key) is the rule; a retry of the same ballot
by the same caster gets that ballot back, anything else a `BallotAlreadyCast`. A ballot is one call
of `gov_cast_ballot` (sql/gov_cast_ballot.sql): every check and write in one round trip; in a burst,
the ballots waiting for a free connection lane go together in one statement (ballot_groups.py)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import problems
from services.governance.accounts import now_utc
from services.governance.ballot_groups import writer_for
from services.governance.decision_models import BALLOTS, Ballot
from services.governance.decision_schemas import BallotCreate, PaperBallotCreate
from services.governance.decisions import decision_in
from services.governance.events import BallotCast, publisher
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.kit.problems import Problem
from services.kit.telemetry import current_traceparent


def receipt_for(decision_id: uuid.UUID, option: str) -> str:
    """A hash of the ballot with a random nonce: it names the option to whoever holds it, and nobody
    can tell from the published list whose ballot a receipt is."""
    nonce = secrets.token_hex(16)
    return hashlib.sha256(f"{decision_id}|{option}|{nonce}".encode()).hexdigest()


@dataclass(frozen=True)
class CastBallot:
    """A ballot as `gov_cast_ballot` answers it. A plain record, not the ORM model: building a table
    model per ballot cost about as much Python time as the rest of the cast (profiled in the bench)."""

    id: uuid.UUID
    decision_id: uuid.UUID
    voter_key: str
    household_id: str
    option: str
    channel: str
    cast_by: str
    on_behalf_of: str | None
    proxy_basis: str | None
    receipt: str
    cast_at: datetime


_REFUSALS: dict[str, type[Problem]] = {
    "not-found": problems.DecisionNotFound,
    "not-open": problems.DecisionNotOpen,
    "unknown-option": problems.UnknownOption,
    "not-a-proxy": problems.NotAProxy,
    "not-on-roll": problems.NotOnRoll,
    "already-cast": problems.BallotAlreadyCast,
}


async def cast(session: AsyncSession, voter: Principal, decision_id: uuid.UUID, data: BallotCreate) -> CastBallot:
    """A resident's ballot, for themself or, as a recorded proxy, for an owner on the roll."""
    proxied = data.on_behalf_of is not None and data.on_behalf_of != voter.subject
    return await _cast(
        session,
        voter.community,
        decision_id,
        data.option,
        voter=voter.subject,
        on_behalf_of=data.on_behalf_of if proxied else None,
        household_id=None,
        channel="proxy" if proxied else "app",
        cast_by=voter.subject,
    )


async def cast_paper(session: AsyncSession, worker: Principal, decision_id: uuid.UUID, data: PaperBallotCreate) -> CastBallot:
    """A paper ballot (纸质表决票) a worker enters for a unit on the roll, recorded with the worker."""
    return await _cast(
        session,
        worker.community,
        decision_id,
        data.option,
        voter=None,
        on_behalf_of=None,
        household_id=data.household_id,
        channel="paper",
        cast_by=worker.subject,
    )


async def _cast(
    session: AsyncSession,
    community: str,
    decision_id: uuid.UUID,
    option: str,
    *,
    voter: str | None,
    on_behalf_of: str | None,
    household_id: str | None,
    channel: str,
    cast_by: str,
) -> CastBallot:
    """One statement, its own transaction: the decision's lock lasts as long as the statement, never
    across a round trip to this busy process. Sent alone, or with the ballots waiting beside it in
    a burst (ballot_groups.py)."""
    now = now_utc()
    ballot_id = uuid.uuid4()
    # The function writes the event's data itself (the kind and the resident are what it reads).
    traceparent, tracestate = current_traceparent()
    args = (
        community,
        decision_id,
        voter,
        on_behalf_of,
        household_id,
        option,
        channel,
        cast_by,
        ballot_id,
        receipt_for(decision_id, option),
        now,
        to_jsonable_python(now),
        str(uuid.uuid4()),
        publisher.topic,
        BallotCast.event_type,
        publisher.source,
        traceparent,
        tracestate,
    )
    row = await writer_for(session).cast(session, args)
    assert row is not None
    refusal = _REFUSALS.get(row.outcome)
    if refusal is problems.NotOnRoll and household_id is not None:
        raise problems.NotOnRoll(("该户不在本次表决名册中", "The household is not on this decision's roll"))
    if refusal is not None:
        raise refusal()
    if row.outcome == "cast":
        outbox_written(session)  # gov_cast_ballot wrote governance.ballot.cast.v1
    return CastBallot(
        id=row.id,
        decision_id=decision_id,
        voter_key=row.voter_key,
        household_id=row.household_id,
        option=row.option,
        channel=row.channel,
        cast_by=row.cast_by,
        on_behalf_of=row.on_behalf_of,
        proxy_basis=row.proxy_basis,
        receipt=row.receipt,
        cast_at=row.cast_at,
    )


async def named_ballots(
    session: AsyncSession, worker: Principal, decision_id: uuid.UUID, page: PageParams
) -> tuple[list[Ballot], str | None]:
    """The ballots by name, for the committee, only when the decision was drafted to show them; in
    voter-key order, which the one-ballot primary key serves (a further index would cost every
    ballot of a burst)."""
    query = select(Ballot).where(BALLOTS.c.decision_id == decision_id)
    after = page.after_key(str)
    if after:
        query = query.where(after_key_condition([BALLOTS.c.voter_key], after))
    query = query.order_by(BALLOTS.c.voter_key).limit(page.limit + 1)
    async with transaction(session):
        decision = await decision_in(session, worker.community, decision_id)
        if not decision.ballots_by_name:
            raise problems.BallotsSecret()
        rows = list((await session.scalars(query)).all())
    return make_page(rows, page.limit, lambda ballot: [ballot.voter_key])
