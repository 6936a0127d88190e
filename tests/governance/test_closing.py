"""The closing job: once across replicas, with the counts in the event and the receipts in the result,
and never missing a ballot in flight."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text

from services.governance import ballots, closing
from services.governance.decision_models import ROLL_UNITS
from services.governance.decision_schemas import BallotCreate
from services.governance.statements import RESIDENTS
from services.kit.auth import Principal
from tests.governance.conftest import Community, problem_type, wait_until
from tests.governance.test_decisions import ballots_of, opened, small_estate, vote


async def closing_time(c: Community, decision_id: str) -> datetime:
    return datetime.fromisoformat((await c.client.get(f"/decisions/{decision_id}", headers=c.worker)).json()["closes_at"])


async def after_closing(c: Community, decision_id: str) -> None:
    closes_at = await closing_time(c, decision_id)

    async def past() -> bool:
        return datetime.now(UTC) >= closes_at

    await wait_until(past)


async def four_jobs_at_once(c: Community) -> list[int]:
    async def one_job() -> int:
        async with c.svc.state.sessionmaker() as session:
            return await closing.close_due(session)

    return list(await asyncio.gather(*(one_job() for _ in range(4))))


async def closed_events(c: Community, decision_id: str) -> list[dict[str, Any]]:
    return [e for e in await c.outbox_events("governance.decision.closed.v1") if e["decision_id"] == decision_id]


async def test_four_closing_jobs_at_once_close_an_owners_decision_once_with_one_event(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community, closes_in=3)
    receipts = {}
    for who, option in (("o1", "yes"), ("o2", "yes")):
        r = await vote(community, decision_id, who, option)
        assert r.status_code == 201, r.text
        receipts[who] = r.json()["receipt"]
    r = await community.client.post(
        f"/decisions/{decision_id}/paper-ballots", json={"household_id": "h3", "option": "no"}, headers=community.worker
    )
    assert r.status_code == 201, r.text
    await after_closing(community, decision_id)
    await four_jobs_at_once(community)
    await four_jobs_at_once(community)

    events = await closed_events(community, decision_id)
    assert len(events) == 1
    event = events[0]
    # Units h1 9000, h2 8000 sold; h3 and h4 (7000 each) the developer's, counted as one owner.
    assert (event["roll_voters"], event["roll_area"]) == (3, 31000)
    assert (event["participating_voters"], event["participating_area"]) == (3, 31000)
    assert event["outcome"] == "passed"
    assert {o["option"]: (o["ballots"], o["area"]) for o in event["options"]} == {
        "yes": (2, 17000),
        "no": (1, 14000),
        "abstain": (0, 0),
    }
    assert "receipts" not in str(event) and "o1" not in str(event)

    decision = (await community.client.get(f"/decisions/{decision_id}", headers=community.resident("o1"))).json()
    assert decision["status"] == "closed" and decision["result"]["outcome"] == "passed"
    by_option = {o["option"]: o["receipts"] for o in decision["result"]["options"]}
    assert sorted(by_option["yes"]) == sorted(receipts.values())
    assert len(by_option["no"]) == 1 and by_option["abstain"] == []


async def test_a_poll_closes_with_its_winner_and_an_empty_owners_vote_without_quorum(community: Community) -> None:
    await small_estate(community)
    poll = await opened(community, "household_poll", closes_in=3, options=["早八点", "早九点"])
    owners = await opened(community, "owners_major", closes_in=3)
    assert (await vote(community, poll, "t1", "早九点")).status_code == 201
    assert (await vote(community, owners, "o1", "yes")).status_code == 201
    await after_closing(community, poll)
    await after_closing(community, owners)
    await four_jobs_at_once(community)
    [poll_event] = await closed_events(community, poll)
    assert (poll_event["outcome"], poll_event["winner"], poll_event["participating_voters"], poll_event["roll_voters"]) == (
        "winner",
        "早九点",
        1,
        4,
    )
    [owners_event] = await closed_events(community, owners)
    assert owners_event["outcome"] == "no_quorum"


async def advisory_lock_awaited(c: Community) -> bool:
    async with c.svc.state.sessionmaker() as session, session.begin():
        query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return bool((await session.execute(query)).scalar_one() > 0)


async def test_ballots_in_flight_at_the_close_are_counted_and_later_ones_refused(community: Community) -> None:
    """Ten ballots are cast before the closing time in transactions still open when the closing jobs
    start. The close waits for them and counts them (without the decision's advisory lock it would
    count without them, and they would be written uncounted); a ballot after the close is refused."""
    owners = [f"r{i}" for i in range(12)]
    async with community.svc.state.sessionmaker() as session, session.begin():
        units = [{"community": community.id, "household_id": f"u{i}", "area": 5000 + i} for i in range(len(owners))]
        await session.execute(insert(ROLL_UNITS), units)
        people = [
            {"community": community.id, "resident_id": owner, "household_id": f"u{i}", "owner": True}
            for i, owner in enumerate(owners)
        ]
        await session.execute(insert(RESIDENTS), people)
    decision_id = uuid.UUID(await opened(community, closes_in=5))
    in_flight = [community.svc.state.sessionmaker() for _ in range(10)]
    receipts = []
    for owner, session in zip(owners, in_flight, strict=False):
        await session.begin()
        voter = Principal(owner, frozenset({"resident"}), community.id)
        receipts.append((await ballots.cast(session, voter, decision_id, BallotCreate(option="yes"))).receipt)
    await after_closing(community, str(decision_id))
    jobs = asyncio.ensure_future(four_jobs_at_once(community))

    async def close_waiting_or_done() -> bool:
        return jobs.done() or await advisory_lock_awaited(community)

    await wait_until(close_waiting_or_done, interval=0.01)
    for session in in_flight:
        await session.commit()
        await session.close()
    await jobs

    async def closed() -> bool:
        r = await community.client.get(f"/decisions/{decision_id}", headers=community.worker)
        return bool(r.json()["status"] == "closed")

    await wait_until(closed)
    [event] = await closed_events(community, str(decision_id))
    assert event["participating_voters"] == len(in_flight) == await ballots_of(community, str(decision_id))
    result = (await community.client.get(f"/decisions/{decision_id}", headers=community.worker)).json()["result"]
    [yes] = [o for o in result["options"] if o["option"] == "yes"]
    assert sorted(yes["receipts"]) == sorted(receipts)
    late = await vote(community, str(decision_id), owners[-1], "yes")
    assert late.status_code == 409 and problem_type(late) == "governance/decision-not-open"
