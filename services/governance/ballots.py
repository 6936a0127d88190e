"""Ballots (表决票): one final ballot per voter key, cast in the app, by a recorded proxy, or on paper
entered by a worker. The unique key (decision, voter key) is the rule; a retry of the same ballot
by the same caster gets that ballot back, anything else a `BallotAlreadyCast`."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import problems
from services.governance.accounts import now_utc
from services.governance.decision_models import BALLOTS, DECISION_UNITS, DECISION_VOTERS, PROXIES, Ballot, Decision
from services.governance.decision_schemas import BallotCreate, PaperBallotCreate
from services.governance.decisions import decision_in
from services.governance.events import BallotCast, publisher
from services.kit.auth import Principal
from services.kit.db import transaction


def receipt_for(decision_id: uuid.UUID, option: str) -> str:
    """A hash of the ballot with a random nonce: it names the option to whoever holds it, and nobody
    can tell from the published list whose ballot a receipt is."""
    nonce = secrets.token_hex(16)
    return hashlib.sha256(f"{decision_id}|{option}|{nonce}".encode()).hexdigest()


async def cast(session: AsyncSession, voter: Principal, decision_id: uuid.UUID, data: BallotCreate) -> Ballot:
    """A resident's ballot, for themself or, as a recorded proxy, for an owner on the roll."""
    async with transaction(session):
        decision = await _open_for_ballots(session, voter.community, decision_id, data.option)
        resident_id = voter.subject
        if data.on_behalf_of is not None and data.on_behalf_of != voter.subject:
            proxy = select(PROXIES.c.owner_id).where(
                PROXIES.c.community == voter.community,
                PROXIES.c.owner_id == data.on_behalf_of,
                PROXIES.c.proxy_id == voter.subject,
            )
            if await session.scalar(proxy) is None:
                raise problems.NotAProxy()
            resident_id = data.on_behalf_of
        on_roll = (
            await session.execute(
                select(DECISION_VOTERS.c.household_id, DECISION_UNITS.c.owner_key)
                .join(
                    DECISION_UNITS,
                    (DECISION_UNITS.c.decision_id == DECISION_VOTERS.c.decision_id)
                    & (DECISION_UNITS.c.household_id == DECISION_VOTERS.c.household_id),
                )
                .where(DECISION_VOTERS.c.decision_id == decision_id, DECISION_VOTERS.c.resident_id == resident_id)
            )
        ).first()
        if on_roll is None:
            raise problems.NotOnRoll()
        channel = "app" if resident_id == voter.subject else "proxy"
        return await _record(
            session,
            decision,
            on_roll.household_id,
            data.option,
            channel=channel,
            cast_by=voter.subject,
            resident_id=resident_id,
            voter_key=on_roll.owner_key,
        )


async def cast_paper(session: AsyncSession, worker: Principal, decision_id: uuid.UUID, data: PaperBallotCreate) -> Ballot:
    """A paper ballot (纸质表决票) a worker enters for a unit on the roll, recorded with the worker."""
    async with transaction(session):
        decision = await _open_for_ballots(session, worker.community, decision_id, data.option)
        return await _record(
            session, decision, data.household_id, data.option, channel="paper", cast_by=worker.subject, resident_id=None
        )


async def _open_for_ballots(session: AsyncSession, community: str, decision_id: uuid.UUID, option: str) -> Decision:
    # FOR KEY SHARE: ballots go in concurrently, and the closing job's FOR UPDATE waits for them (and they for it).
    decision = await decision_in(session, community, decision_id, lock="share")
    now = now_utc()
    if decision.status != "open" or not decision.opens_at <= now < decision.closes_at:
        raise problems.DecisionNotOpen()
    if option not in decision.options:
        raise problems.UnknownOption()
    return decision


async def _record(
    session: AsyncSession,
    decision: Decision,
    household_id: str,
    option: str,
    *,
    channel: str,
    cast_by: str,
    resident_id: str | None,
    voter_key: str | None = None,
) -> Ballot:
    """Insert the ballot under the one-ballot key; `voter_key` is looked up from the roll when not given."""
    assert decision.id is not None
    if voter_key is None:
        voter_key = await session.scalar(
            select(DECISION_UNITS.c.owner_key).where(
                DECISION_UNITS.c.decision_id == decision.id, DECISION_UNITS.c.household_id == household_id
            )
        )
    if voter_key is None:
        raise problems.NotOnRoll(("该户不在本次表决名册中", "The household is not on this decision's roll"))
    values = {
        "decision_id": decision.id,
        "community": decision.community,
        "voter_key": voter_key,
        "household_id": household_id,
        "option": option,
        "channel": channel,
        "cast_by": cast_by,
        "on_behalf_of": resident_id if channel == "proxy" else None,
        "receipt": receipt_for(decision.id, option),
    }
    row = (
        await session.execute(
            insert(BALLOTS)
            .values(**values)
            .on_conflict_do_nothing(constraint="uq_gov_ballots_one_per_voter")
            .returning(*BALLOTS.c)
        )
    ).first()
    if row is None:
        existing = await session.scalar(
            select(Ballot).where(BALLOTS.c.decision_id == decision.id, BALLOTS.c.voter_key == voter_key)
        )
        assert existing is not None
        if existing.option == option and existing.cast_by == cast_by:
            return existing
        raise problems.BallotAlreadyCast()
    ballot = Ballot(**row._mapping)
    assert ballot.id is not None and ballot.cast_at is not None
    await publisher.publish(
        session,
        BallotCast(
            ballot_id=str(ballot.id),
            decision_id=str(decision.id),
            community=decision.community,
            kind=decision.kind,
            channel=channel,
            resident_id=resident_id,
            cast_at=ballot.cast_at,
        ),
        key=str(decision.id),
    )
    return ballot


async def named_ballots(session: AsyncSession, worker: Principal, decision_id: uuid.UUID) -> Sequence[Ballot]:
    """The ballots by name, for the committee, only when the decision was drafted to show them."""
    async with transaction(session):
        decision = await decision_in(session, worker.community, decision_id)
        if not decision.ballots_by_name:
            raise problems.BallotsSecret()
        query = select(Ballot).where(BALLOTS.c.decision_id == decision_id).order_by(BALLOTS.c.household_id)
        return (await session.scalars(query)).all()
