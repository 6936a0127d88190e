"""Verified proxy voting: a written authorisation or a registered relative of an elder, recorded by a
worker, and kept on the ballot; the event `gov_cast_ballot` writes is the declared event."""

from __future__ import annotations

from services.governance.events import BallotCast
from tests.governance.conftest import Community, problem_type
from tests.governance.test_decisions import opened, person, small_estate, vote


async def test_a_relative_of_an_elder_votes_for_them_and_the_ballot_says_on_which_basis(community: Community) -> None:
    await small_estate(community)
    await person(community, "daughter", "h9", owner=False)
    await person(community, "neighbour", "h9", owner=False)
    decision_id = await opened(community, ballots_by_name=True)
    body = {"owner_id": "o1", "proxy_id": "daughter", "basis": "relative", "relation": "女儿"}
    r = await community.client.post("/proxies", json=body, headers=community.worker)
    assert r.status_code == 201, r.text
    assert (r.json()["basis"], r.json()["relation"], r.json()["recorded_by"]) == ("relative", "女儿", "worker-1")
    written = {"owner_id": "o2", "proxy_id": "neighbour"}
    assert (await community.client.post("/proxies", json=written, headers=community.worker)).json()["basis"] == "written"

    assert (await vote(community, decision_id, "daughter", "yes", on_behalf_of="o1")).status_code == 201
    assert (await vote(community, decision_id, "neighbour", "no", on_behalf_of="o2")).status_code == 201
    # A relative of one owner is nobody's proxy for another.
    r = await vote(community, decision_id, "daughter", "yes", on_behalf_of="o2")
    assert r.status_code == 403 and problem_type(r) == "governance/not-a-proxy"
    named = (await community.client.get(f"/decisions/{decision_id}/ballots", headers=community.worker)).json()["items"]
    assert {(b["household_id"], b["cast_by"], b["on_behalf_of"], b["proxy_basis"]) for b in named} == {
        ("h1", "daughter", "o1", "relative"),
        ("h2", "neighbour", "o2", "written"),
    }
    cast = await community.outbox_events("governance.ballot.cast.v1")
    assert sorted((e["resident_id"], e["channel"], e["kind"]) for e in cast) == [
        ("o1", "proxy", "owners_ordinary"),
        ("o2", "proxy", "owners_ordinary"),
    ]
    for data in cast:
        BallotCast.model_validate(data)


async def test_a_proxy_is_recorded_only_with_its_basis_made_plain(community: Community) -> None:
    for body in (
        {"owner_id": "o1", "proxy_id": "son", "basis": "relative"},  # which relative?
        {"owner_id": "o1", "proxy_id": "son", "relation": "儿子"},  # a written one names no relation
        {"owner_id": "o1", "proxy_id": "o1"},
        {"owner_id": "o1", "proxy_id": "son", "basis": "neighbour"},
    ):
        r = await community.client.post("/proxies", json=body, headers=community.worker)
        assert r.status_code == 422, body
    r = await community.client.post("/proxies", json={"owner_id": "o1", "proxy_id": "son"}, headers=community.resident("o1"))
    assert r.status_code == 403
