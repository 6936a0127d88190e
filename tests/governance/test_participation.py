"""Participation points: an earning rule on `governance.ballot.cast.v1` grants the voter (the owner
for a proxy's ballot) once per decision; a paper ballot names nobody and grants nothing."""

from __future__ import annotations

import uuid

from sqlmodel import col, select

from services.governance.consumers import EARNING_GROUP
from services.governance.models import Grant
from services.kit.envelope import CloudEvent
from tests.governance.conftest import Community, consumers_ready, wait_until
from tests.governance.test_decisions import opened, person, small_estate, vote


async def test_a_ballot_earns_participation_points_once_per_decision(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(1000)
    await community.rule(code="vote", name="参与表决", trigger="governance.ballot.cast.v1", points=5)
    await small_estate(community)
    await person(community, "son", "h5", owner=False)
    r = await community.client.post("/proxies", json={"owner_id": "o2", "proxy_id": "son"}, headers=community.worker)
    assert r.status_code == 201
    decision_id = await opened(community)
    poll = await opened(community, "household_poll", options=["早八点", "早九点"])
    assert (await vote(community, decision_id, "o1", "yes")).status_code == 201
    assert (await vote(community, decision_id, "son", "no", on_behalf_of="o2")).status_code == 201
    assert (await vote(community, poll, "o1", "早八点")).status_code == 201
    r = await community.client.post(
        f"/decisions/{decision_id}/paper-ballots", json={"household_id": "h3", "option": "no"}, headers=community.worker
    )
    assert r.status_code == 201

    async def earned() -> bool:
        return (await community.points("o1"))["balance"] == 10 and (await community.points("o2"))["balance"] == 5

    await wait_until(earned, timeout=30)
    # The same participation arriving again (a redelivery under another event id) grants nothing more.
    # A later event with the same key (so the same partition, read in order) shows the consumer has
    # read past the redelivery.
    [cast] = [e for e in await community.outbox_events("governance.ballot.cast.v1") if e["resident_id"] == "o2"]
    again = {k: v for k, v in cast.items() if k != "community"}
    await community.publish("governance.events", "governance.ballot.cast.v1", decision_id, again, str(uuid.uuid4()))
    later = {**again, "ballot_id": str(uuid.uuid4()), "resident_id": "marker"}
    await community.publish("governance.events", "governance.ballot.cast.v1", decision_id, later, str(uuid.uuid4()))

    async def past_marker() -> bool:
        return (await community.points("marker"))["balance"] == 5

    await wait_until(past_marker, timeout=30)
    assert (await community.points("o2"))["balance"] == 5
    assert (await community.points("o1"))["balance"] == 10
    assert (await community.points("son"))["balance"] == 0


async def test_a_batch_grants_for_ballots_only_where_a_community_has_a_rule_on_them(community: Community) -> None:
    """The earning group's batch passes over ballots of communities without a participation rule
    (apply_earning_batch) and still grants, in the same batch, for those of a community with one."""
    await community.fund(1000)
    await community.rule(code="vote", name="参与表决", trigger="governance.ballot.cast.v1", points=5)
    elsewhere = f"other-{uuid.uuid4().hex[:8]}"
    decision_id = str(uuid.uuid4())

    def ballot(where: str, resident_id: str) -> CloudEvent:
        data = {
            "ballot_id": str(uuid.uuid4()),
            "decision_id": decision_id,
            "community": where,
            "kind": "owners_ordinary",
            "channel": "app",
            "resident_id": resident_id,
            "cast_at": "2026-12-05T12:00:00+00:00",
        }
        return CloudEvent(type="governance.ballot.cast.v1", source="/services/governance", key=decision_id, data=data)

    events = [ballot(elsewhere, "b1"), ballot(community.id, "a1"), ballot(elsewhere, "b2"), ballot(community.id, "a2")]
    [earning] = [c for c in community.svc.state.consumers if c.spec.group == EARNING_GROUP]
    assert await earning.apply_batch(events) == len(events)

    assert (await community.points("a1"))["balance"] == 5 and (await community.points("a2"))["balance"] == 5
    async with community.svc.state.sessionmaker() as session, session.begin():
        granted = (await session.execute(select(col(Grant.resident_id)).where(col(Grant.source_ref) == decision_id))).all()
    assert sorted(r for (r,) in granted) == ["a1", "a2"]
