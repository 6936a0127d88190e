"""Decisions and ballots through HTTP against the real database: the roll freezes, one final ballot."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from services.governance import roll, statements
from services.governance.decision_models import BALLOTS, DECISION_UNITS
from tests.governance.conftest import Community, problem_type, wait_until


async def unit(c: Community, household_id: str, area: int, *, sold: bool = True, buyer: str | None = None) -> None:
    async with c.svc.state.sessionmaker() as session:
        await roll.record_unit(session, c.id, household_id, area=area, sold=sold, buyer_key=buyer)


async def person(c: Community, resident_id: str, household_id: str, *, owner: bool) -> None:
    async with c.svc.state.sessionmaker() as session:
        await statements.register_resident(session, c.id, resident_id, household_id, owner=owner)


async def ballots_of(c: Community, decision_id: str) -> int:
    async with c.svc.state.sessionmaker() as session, session.begin():
        query = select(func.count()).select_from(BALLOTS).where(BALLOTS.c.decision_id == uuid.UUID(decision_id))
        return int((await session.execute(query)).scalar_one())


async def draft(
    c: Community, kind: str = "owners_ordinary", *, opens_in: float = -60, closes_in: float = 3600, **extra: Any
) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "kind": kind,
        "question": "是否同意更换小区电梯维保单位？",
        "opens_at": (now + timedelta(seconds=opens_in)).isoformat(),
        "closes_at": (now + timedelta(seconds=closes_in)).isoformat(),
        **extra,
    }
    r = await c.client.post("/decisions", json=body, headers=c.worker)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def opened(c: Community, kind: str = "owners_ordinary", **kw: Any) -> str:
    decision = await draft(c, kind, **kw)
    r = await c.client.post(f"/decisions/{decision['id']}/open", headers=c.worker)
    assert r.status_code == 200, r.text
    return str(decision["id"])


async def small_estate(c: Community) -> None:
    """Units h1, h2 sold (owners o1, o2; tenant t1 in h1), h3 and h4 still the developer's."""
    for h, area, sold in (("h1", 9000, True), ("h2", 8000, True), ("h3", 7000, False), ("h4", 7000, False)):
        await unit(c, h, area, sold=sold)
    await person(c, "o1", "h1", owner=True)
    await person(c, "o2", "h2", owner=True)
    await person(c, "t1", "h1", owner=False)


async def vote(c: Community, decision_id: str, who: str, option: str, **extra: Any) -> Any:
    return await c.client.post(f"/decisions/{decision_id}/ballots", json={"option": option, **extra}, headers=c.resident(who))


async def test_an_owner_casts_one_final_ballot_and_a_retry_gets_the_same_one(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community)
    first = await vote(community, decision_id, "o1", "yes")
    assert first.status_code == 201, first.text
    again = await vote(community, decision_id, "o1", "yes")
    assert again.status_code == 201 and again.json()["receipt"] == first.json()["receipt"]
    other = await vote(community, decision_id, "o1", "no")
    assert other.status_code == 409 and problem_type(other) == "governance/ballot-already-cast"
    assert await ballots_of(community, decision_id) == 1
    cast = await community.outbox_events("governance.ballot.cast.v1")
    assert [(e["decision_id"], e["resident_id"], e["channel"]) for e in cast] == [(decision_id, "o1", "app")]
    assert "option" not in cast[0] and "yes" not in str(cast[0])
    mine = (await community.client.get("/me/decisions", headers=community.resident("o1"))).json()["items"]
    assert [(d["id"], d["my_receipt"]) for d in mine] == [(decision_id, first.json()["receipt"])]


async def test_tenants_unknown_options_and_undrafted_times_are_refused_and_write_nothing(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community)
    r = await vote(community, decision_id, "t1", "yes")
    assert r.status_code == 403 and problem_type(r) == "governance/not-on-roll"
    r = await vote(community, decision_id, "o1", "maybe")
    assert r.status_code == 422 and problem_type(r) == "governance/unknown-option"
    later = await opened(community, opens_in=3600, closes_in=7200)
    r = await vote(community, later, "o1", "yes")
    assert r.status_code == 409 and problem_type(r) == "governance/decision-not-open"
    unopened = (await draft(community))["id"]
    r = await vote(community, unopened, "o1", "yes")
    assert r.status_code == 409 and problem_type(r) == "governance/decision-not-open"
    for d in (decision_id, later, unopened):
        assert await ballots_of(community, d) == 0
    assert await community.outbox_events("governance.ballot.cast.v1") == []


async def test_a_ballot_after_the_closing_time_is_refused(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community, closes_in=1.5)
    closes_at = datetime.fromisoformat(
        (await community.client.get(f"/decisions/{decision_id}", headers=community.worker)).json()["closes_at"]
    )

    async def past() -> bool:
        return datetime.now(UTC) >= closes_at

    await wait_until(past)
    r = await vote(community, decision_id, "o1", "yes")
    assert r.status_code == 409 and problem_type(r) == "governance/decision-not-open"
    assert await ballots_of(community, decision_id) == 0


async def test_a_poll_gives_each_household_one_vote_tenants_included(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community, "household_poll", options=["甲配餐", "乙配餐"])
    r = await vote(community, decision_id, "t1", "甲配餐")
    assert r.status_code == 201, r.text
    r = await vote(community, decision_id, "o1", "乙配餐")
    assert r.status_code == 409 and problem_type(r) == "governance/ballot-already-cast"
    assert (await vote(community, decision_id, "o2", "乙配餐")).status_code == 201
    assert await ballots_of(community, decision_id) == 2


async def test_a_registry_change_after_opening_changes_neither_the_roll_nor_who_may_vote(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community)
    await unit(community, "h1", 1, sold=True, buyer="zhang")
    await unit(community, "h9", 5000)
    await person(community, "o9", "h9", owner=True)
    await person(community, "t1", "h1", owner=True)  # the tenant buys in: not on this roll
    async with community.svc.state.sessionmaker() as session, session.begin():
        frozen = (
            await session.execute(
                select(DECISION_UNITS.c.household_id, DECISION_UNITS.c.area, DECISION_UNITS.c.owner_key)
                .where(DECISION_UNITS.c.decision_id == uuid.UUID(decision_id))
                .order_by(DECISION_UNITS.c.household_id)
            )
        ).all()
    assert [tuple(r) for r in frozen] == [
        ("h1", 9000, "unit:h1"),
        ("h2", 8000, "unit:h2"),
        ("h3", 7000, "developer"),
        ("h4", 7000, "developer"),
    ]
    for newcomer in ("o9", "t1"):
        r = await vote(community, decision_id, newcomer, "yes")
        assert r.status_code == 403 and problem_type(r) == "governance/not-on-roll"


async def test_a_hundred_concurrent_ballots_from_one_owner_make_one_ballot(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community)
    options = ["yes", "no", "abstain"]
    replies = await asyncio.gather(*(vote(community, decision_id, "o1", options[i % 3]) for i in range(100)))
    ok = [r for r in replies if r.status_code == 201]
    refused = [r for r in replies if r.status_code == 409]
    assert len(ok) + len(refused) == 100, {r.status_code for r in replies}
    assert len({r.json()["receipt"] for r in ok}) == 1
    assert len({r.json()["option"] for r in ok}) == 1
    assert await ballots_of(community, decision_id) == 1
    assert len(await community.outbox_events("governance.ballot.cast.v1")) == 1


async def test_a_worker_enters_paper_ballots_under_the_same_rule(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community)
    paper = {"household_id": "h3", "option": "no"}
    r = await community.client.post(f"/decisions/{decision_id}/paper-ballots", json=paper, headers=community.worker)
    assert r.status_code == 201 and r.json()["channel"] == "paper"
    # h4 is the developer's too: the developer has already voted.
    r = await community.client.post(
        f"/decisions/{decision_id}/paper-ballots", json={"household_id": "h4", "option": "yes"}, headers=community.worker
    )
    assert r.status_code == 409 and problem_type(r) == "governance/ballot-already-cast"
    r = await community.client.post(
        f"/decisions/{decision_id}/paper-ballots", json={"household_id": "h1", "option": "yes"}, headers=community.worker2
    )
    assert r.status_code == 201
    assert (await vote(community, decision_id, "o1", "yes")).status_code == 409  # cast on paper by worker-2
    r = await community.client.post(
        f"/decisions/{decision_id}/paper-ballots", json={"household_id": "nowhere", "option": "yes"}, headers=community.worker
    )
    assert r.status_code == 403 and problem_type(r) == "governance/not-on-roll"
    async with community.svc.state.sessionmaker() as session, session.begin():
        rows = (
            await session.execute(
                select(BALLOTS.c.household_id, BALLOTS.c.cast_by)
                .order_by(BALLOTS.c.household_id)
                .where(BALLOTS.c.decision_id == uuid.UUID(decision_id))
            )
        ).all()
    assert [tuple(r) for r in rows] == [("h1", "worker-2"), ("h3", "worker-1")]
    cast = await community.outbox_events("governance.ballot.cast.v1")
    assert {(e["channel"], e["resident_id"]) for e in cast} == {("paper", None)}


async def test_a_recorded_proxy_votes_for_the_owner_and_nobody_else_may(community: Community) -> None:
    await small_estate(community)
    await person(community, "son", "h5", owner=False)
    decision_id = await opened(community)
    r = await vote(community, decision_id, "son", "yes", on_behalf_of="o2")
    assert r.status_code == 403 and problem_type(r) == "governance/not-a-proxy"
    r = await community.client.post("/proxies", json={"owner_id": "o2", "proxy_id": "son"}, headers=community.worker)
    assert r.status_code == 201 and r.json()["recorded_by"] == "worker-1"
    r = await vote(community, decision_id, "son", "yes", on_behalf_of="o2")
    assert r.status_code == 201 and r.json()["channel"] == "proxy"
    assert (await community.client.get(f"/decisions/{decision_id}", headers=community.resident("son"))).status_code == 200
    assert (await vote(community, decision_id, "o2", "no")).status_code == 409
    cast = await community.outbox_events("governance.ballot.cast.v1")
    assert [(e["channel"], e["resident_id"]) for e in cast] == [("proxy", "o2")]


async def test_other_residents_and_other_communities_get_404(community: Community) -> None:
    await small_estate(community)
    decision_id = await opened(community)
    other = Community(stack=community.stack, svc=community.svc, id=f"c-{uuid.uuid4().hex[:10]}")
    await person(other, "o1", "h1", owner=True)
    assert (await community.client.get(f"/decisions/{decision_id}", headers=community.resident("o1"))).status_code == 200
    assert (await community.client.get(f"/decisions/{decision_id}", headers=community.resident("stranger"))).status_code == 404
    assert (await community.client.get(f"/decisions/{decision_id}", headers=other.resident("o1"))).status_code == 404
    assert (await community.client.get(f"/decisions/{decision_id}", headers=other.worker)).status_code == 404
    assert (await community.client.post(f"/decisions/{decision_id}/open", headers=other.worker)).status_code == 404
    r = await vote(other, decision_id, "o1", "yes")
    assert r.status_code == 404 and problem_type(r) == "governance/decision-not-found"
    r = await community.client.post(
        f"/decisions/{decision_id}/paper-ballots", json={"household_id": "h1", "option": "yes"}, headers=other.worker
    )
    assert r.status_code == 404
    assert await ballots_of(community, decision_id) == 0
    assert (await community.client.get("/me/decisions", headers=other.resident("o1"))).json()["items"] == []


async def test_drafting_checks_the_options_and_times(community: Community) -> None:
    now = datetime.now(UTC)
    base = {"question": "q", "opens_at": now.isoformat(), "closes_at": (now + timedelta(hours=1)).isoformat()}
    bad = [
        {**base, "kind": "household_poll", "options": ["a"]},
        {**base, "kind": "household_poll", "options": ["a", "a"]},
        {**base, "kind": "owners_major", "options": ["yes", "no"]},
        {**base, "kind": "owners_ordinary", "closes_at": base["opens_at"]},
        {**base, "kind": "owners_ordinary", "secret": True},
    ]
    for body in bad:
        r = await community.client.post("/decisions", json=body, headers=community.worker)
        assert r.status_code == 422, body
    r = await community.client.post("/decisions", json={**base, "kind": "owners_major"}, headers=community.resident("o1"))
    assert r.status_code == 403
    r = await community.client.post("/decisions", json={**base, "kind": "owners_major"}, headers=community.worker)
    assert r.status_code == 201 and r.json()["options"] == ["yes", "no", "abstain"]
    again = await community.client.post(f"/decisions/{r.json()['id']}/open", headers=community.worker)
    assert again.status_code == 200
    again = await community.client.post(f"/decisions/{r.json()['id']}/open", headers=community.worker)
    assert again.status_code == 409 and problem_type(again) == "governance/decision-already-opened"


async def test_the_committee_sees_ballots_by_name_only_when_the_decision_says_so(community: Community) -> None:
    await small_estate(community)
    named = await opened(community, ballots_by_name=True)
    secret = await opened(community)
    for d in (named, secret):
        assert (await vote(community, d, "o1", "yes")).status_code == 201
    r = await community.client.get(f"/decisions/{named}/ballots", headers=community.worker)
    assert r.status_code == 200, r.text
    assert [(b["household_id"], b["option"], b["cast_by"]) for b in r.json()["items"]] == [("h1", "yes", "o1")]
    r = await community.client.get(f"/decisions/{secret}/ballots", headers=community.worker)
    assert r.status_code == 403 and problem_type(r) == "governance/ballots-secret"
    assert (await community.client.get(f"/decisions/{named}/ballots", headers=community.resident("o1"))).status_code == 403
    other = Community(stack=community.stack, svc=community.svc, id=f"c-{uuid.uuid4().hex[:10]}")
    assert (await community.client.get(f"/decisions/{named}/ballots", headers=other.worker)).status_code == 404


async def test_the_roll_summary_counts_owners_as_the_law_does_for_staff_only(community: Community) -> None:
    await small_estate(community)
    await unit(community, "h5", 5000, buyer="zhang")
    await unit(community, "h6", 6000, buyer="zhang")
    r = await community.client.get("/roll", headers=community.worker)
    assert r.status_code == 200 and r.json() == {"units": 6, "owners": 4, "area": 42000}
    assert (await community.client.get("/roll", headers=community.resident("o1"))).status_code == 403
    other = Community(stack=community.stack, svc=community.svc, id=f"c-{uuid.uuid4().hex[:10]}")
    assert (await community.client.get("/roll", headers=other.worker)).json() == {"units": 0, "owners": 0, "area": 0}
