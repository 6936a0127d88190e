"""The closing job's count, one grouped SQL query over the frozen roll's owners, against the reference
model of test_tally.py (Fractions, person by person), on the real database: random registries (many
units, buyers with several units, unsold developer units, areas) frozen by opening a decision, random
ballots, closed by `closing.close_due`. Each example runs in a worker thread with its own event loop
and engine (Hypothesis drives sync functions), one community per example, on one migrated database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.governance import closing, decisions
from services.governance.decision_schemas import DecisionCreate
from services.governance.tally import Kind, owner_key
from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker, plain_url
from tests.governance.test_invariants import run_in_thread
from tests.governance.test_tally import RegistryUnit, reference_outcome, registry_units
from tests.support.stack import TestStack


@pytest.fixture(scope="module")
def database_url(stack: TestStack) -> Any:
    url = run_in_thread(stack.fresh_database("governance"))
    yield url
    run_in_thread(stack.drop_database(url))


def person(u: RegistryUnit) -> str:
    return "the developer" if not u.sold else (u.buyer if u.buyer is not None else "owner of " + u.id)


async def close_in_sql(url: str, kind: Kind, units: list[RegistryUnit], votes: dict[str, str]) -> dict[str, Any]:
    """Freeze `units` by opening a decision, put in one ballot per voting person (under the owner key
    the service gives them), close it, and return the `decision.closed` event's data."""
    community = f"t-{uuid.uuid4().hex[:10]}"
    worker = Principal("worker-1", frozenset({"community_worker"}), community)
    engine = make_engine(url, pool_size=2)
    maker = make_sessionmaker(engine)
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.executemany(
            "INSERT INTO gov_roll_units (community, household_id, area, sold, buyer_key) VALUES ($1, $2, $3, $4, $5)",
            [(community, u.id, u.area, u.sold, u.buyer) for u in units],
        )
        now = datetime.now(UTC)
        draft = DecisionCreate(kind=kind, question="q", opens_at=now - timedelta(minutes=1), closes_at=now + timedelta(hours=1))
        async with maker() as session:
            decision = await decisions.draft(session, worker, draft)
        assert decision.id is not None
        async with maker() as session:
            await decisions.open_decision(session, worker, decision.id)
        ballots: dict[str, tuple[str, str]] = {}  # owner key -> (a household of theirs, option)
        for u in units:
            if person(u) in votes:
                ballots[owner_key(u.id, sold=u.sold, buyer_key=u.buyer)] = (u.id, votes[person(u)])
        await conn.executemany(
            "INSERT INTO gov_ballots (decision_id, community, voter_key, household_id, option, channel, cast_by, receipt)"
            " VALUES ($1, $2, $3, $4, $5, 'paper', 'worker-1', md5(random()::text))",
            [(decision.id, community, key, household, option) for key, (household, option) in ballots.items()],
        )
        await conn.execute(
            "UPDATE gov_decisions SET closes_at = now(), opens_at = now() - interval '1 hour' WHERE id = $1", decision.id
        )
        async with maker() as session:
            assert await closing.close_due(session) == 1
        data = await conn.fetchval(
            "SELECT data FROM kit_outbox WHERE type = 'governance.decision.closed.v1' AND key = $1", str(decision.id)
        )
        return dict(json.loads(data))  # asyncpg answers jsonb as text
    finally:
        await conn.close()
        await engine.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(units=registry_units, kind=st.sampled_from([Kind.owners_ordinary, Kind.owners_major]), data=st.data())
def test_the_sql_count_closes_as_the_reference_decides(
    database_url: str, units: list[RegistryUnit], kind: Kind, data: st.DataObject
) -> None:
    people: dict[str, int] = {}
    for u in units:
        people[person(u)] = people.get(person(u), 0) + u.area
    votes = data.draw(
        st.dictionaries(st.sampled_from(sorted(people)), st.sampled_from(["yes", "no", "abstain"])) if people else st.just({})
    )
    event = run_in_thread(close_in_sql(database_url, kind, units, votes))
    assert event["outcome"] == reference_outcome(kind, units, votes)
    assert (event["roll_voters"], event["roll_area"]) == (len(people), sum(people.values()))
    assert (event["participating_voters"], event["participating_area"]) == (len(votes), sum(people[p] for p in votes))
    by_option = {o["option"]: (o["ballots"], o["area"]) for o in event["options"]}
    for option in ("yes", "no", "abstain"):
        chosen = [p for p, o in votes.items() if o == option]
        assert by_option[option] == (len(chosen), sum(people[p] for p in chosen))
