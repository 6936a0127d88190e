"""Ballots cast at the same moment go to the database in groups (ballot_groups.py): each ballot gets
the outcome it would get alone, and a group that fails is sent again ballot by ballot."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select

from services.governance import ballot_groups, ballots, problems
from services.governance.decision_models import BALLOTS, ROLL_UNITS
from services.governance.decision_schemas import BallotCreate
from services.governance.statements import RESIDENTS
from services.kit.auth import Principal
from tests.governance.conftest import Community
from tests.governance.test_decisions import opened

OWNERS = [f"r{i}" for i in range(30)]


async def estate(c: Community) -> uuid.UUID:
    """Thirty sold units, an owner each, and a tenant in the first; an owners' decision opened on them."""
    async with c.svc.state.sessionmaker() as session, session.begin():
        units = [{"community": c.id, "household_id": f"u{i}", "area": 6000 + i} for i in range(len(OWNERS))]
        await session.execute(insert(ROLL_UNITS), units)
        people = [{"community": c.id, "resident_id": o, "household_id": f"u{i}", "owner": True} for i, o in enumerate(OWNERS)]
        people.append({"community": c.id, "resident_id": "tenant", "household_id": "u0", "owner": False})
        await session.execute(insert(RESIDENTS), people)
    return uuid.UUID(await opened(c))


async def burst(c: Community, decision_id: uuid.UUID, casts: list[tuple[str, str]]) -> list[Any]:
    """Every ballot at once, each in its own session as a request has it; outcomes in order."""

    async def cast(who: str, option: str) -> Any:
        voter = Principal(who, frozenset({"resident"}), c.id)
        return await ballots.cast(c.svc.state.sessionmaker(), voter, decision_id, BallotCreate(option=option))

    return await asyncio.gather(*(cast(who, option) for who, option in casts), return_exceptions=True)


async def stored(c: Community, decision_id: uuid.UUID) -> dict[str, str]:
    async with c.svc.state.sessionmaker() as session, session.begin():
        rows = await session.execute(select(BALLOTS.c.cast_by, BALLOTS.c.option).where(BALLOTS.c.decision_id == decision_id))
        return {cast_by: option for cast_by, option in rows.all()}


def writer(c: Community) -> ballot_groups.BallotWriter:
    return ballot_groups.writer_for(c.svc.state.sessionmaker())


async def test_ballots_in_a_group_get_the_outcomes_they_would_get_alone(community: Community) -> None:
    decision_id = await estate(community)
    groups_before = writer(community).groups_sent
    casts = [(o, "yes") for o in OWNERS]
    casts += [("r0", "yes"), ("r0", "yes")]  # a retry, twice: the same ballot
    casts += [("r1", "no")]  # a different second ballot: one of r1's two wins, the other is refused
    casts += [("tenant", "yes"), ("r2", "maybe")]  # not on an owners' roll; not an option
    replies = await burst(community, decision_id, casts)

    assert writer(community).groups_sent > groups_before  # more ballots than lanes: groups were sent
    by_voter: dict[str, list[Any]] = {}
    for (who, _), reply in zip(casts, replies, strict=True):
        by_voter.setdefault(who, []).append(reply)
    assert isinstance(by_voter["tenant"][0], problems.NotOnRoll)
    assert isinstance(by_voter["r2"][1], problems.UnknownOption)
    r0 = by_voter["r0"]
    assert all(isinstance(r, ballots.CastBallot) for r in r0) and len({r.receipt for r in r0}) == 1
    [won] = [r for r in by_voter["r1"] if isinstance(r, ballots.CastBallot)]
    [refused] = [r for r in by_voter["r1"] if not isinstance(r, ballots.CastBallot)]
    assert isinstance(refused, problems.BallotAlreadyCast)
    kept = await stored(community, decision_id)
    assert set(kept) == set(OWNERS) and kept["r1"] == won.option
    assert all(option == "yes" for who, option in kept.items() if who != "r1")
    events = await community.outbox_events("governance.ballot.cast.v1")
    assert sorted(e["resident_id"] for e in events) == sorted(OWNERS)  # one event per ballot written


async def test_a_group_that_fails_is_sent_again_ballot_by_ballot(community: Community, monkeypatch: pytest.MonkeyPatch) -> None:
    decision_id = await estate(community)
    failed_before = writer(community).groups_failed
    # A group statement the database refuses (no such function): every group of the burst fails.
    monkeypatch.setattr(
        ballot_groups, "CAST_GROUP_SQL", ballot_groups.CAST_GROUP_SQL.replace("gov_cast_ballot(", "gov_no_such_fn(")
    )
    replies = await burst(community, decision_id, [(o, "no") for o in OWNERS])

    assert writer(community).groups_failed > failed_before
    assert all(isinstance(r, ballots.CastBallot) for r in replies), replies
    assert await stored(community, decision_id) == dict.fromkeys(OWNERS, "no")
    assert len(await community.outbox_events("governance.ballot.cast.v1")) == len(OWNERS)
