"""Visitor passes through the API: issued for the resident's building, verified offline with only
the published keys, checked online (window, entry count, revocation, community), listed and
revoked by their owner only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.security.pass_tokens import OfflineVerifier, keys_from_jwks
from tests.security.conftest import Community, community_on


async def test_a_pass_verifies_offline_against_the_published_keys_alone(community: Community) -> None:
    c = community
    resident = await c.resident("r1", household_id="h1", building_id="b7")
    door = await c.device("door-1", building_id="b7")
    issued = await c.issue(resident, max_entries=1)
    assert issued["building_id"] == "b7" and len(issued["code"]) == 6
    keys = (await c.client.get("/pass-keys", headers=door)).json()
    assert keys["community"] == c.id and keys["keys"][0]["crv"] == "Ed25519" and "d" not in keys["keys"][0]
    offline = OfflineVerifier(community=c.id, keys=keys_from_jwks(keys["keys"]))
    assert offline.admit(issued["token"], datetime.now(UTC)).pass_id == issued["id"]


async def test_online_checks_count_entries_and_refuse_the_one_too_many(community: Community) -> None:
    c = community
    resident = await c.resident("r1")
    door = await c.device("door-1")
    issued = await c.issue(resident, max_entries=2)
    decisions = [(await c.client.post("/passes/check", json={"token": issued["token"]}, headers=door)).json() for _ in range(3)]
    assert [(d["admit"], d["reason"], d["entries_left"]) for d in decisions] == [
        (True, "ok", 1),
        (True, "ok", 0),
        (False, "used-up", None),
    ]


async def test_concurrent_scans_of_a_single_entry_pass_admit_one(community: Community) -> None:
    c = community
    resident = await c.resident("r1")
    door = await c.device("door-1")
    issued = await c.issue(resident, max_entries=1)
    answers = await asyncio.gather(
        *(c.client.post("/passes/check", json={"code": issued["code"]}, headers=door) for _ in range(10))
    )
    assert sorted(r.json()["admit"] for r in answers) == [False] * 9 + [True]


async def test_a_revoked_pass_fails_online_at_once_and_reaches_the_devices_list(community: Community) -> None:
    c = community
    resident = await c.resident("r1")
    door = await c.device("door-1")
    issued = await c.issue(resident)
    r = await c.client.post(f"/passes/{issued['id']}/revoke", headers=resident)
    assert r.status_code == 200 and r.json()["revoked_at"]
    again = await c.client.post(f"/passes/{issued['id']}/revoke", headers=resident)
    assert again.json()["revoked_at"] == r.json()["revoked_at"]
    decision = (await c.client.post("/passes/check", json={"token": issued["token"]}, headers=door)).json()
    assert (decision["admit"], decision["reason"]) == (False, "revoked")
    pulled = (await c.client.get("/devices/me/revocations", headers=door)).json()["items"]
    assert [x["pass_id"] for x in pulled] == [issued["id"]]
    after = pulled[-1]["revoked_seq"]
    assert (await c.client.get("/devices/me/revocations", params={"after": after}, headers=door)).json()["items"] == []
    live = (await c.client.get("/devices/me/passes", headers=door)).json()["items"]
    assert issued["id"] not in {p["pass_id"] for p in live}
    events = await c.rows("SELECT type FROM kit_outbox WHERE key = :k ORDER BY id", k=issued["id"])
    assert [e.type for e in events] == ["security.pass.issued.v1", "security.pass.revoked.v1"]


async def test_a_pass_fails_outside_its_window_online(community: Community) -> None:
    c = community
    resident = await c.resident("r1")
    door = await c.device("door-1")
    later = await c.issue(resident, starts_in=2)
    decision = (await c.client.post("/passes/check", json={"token": later["token"]}, headers=door)).json()
    assert (decision["admit"], decision["reason"]) == (False, "not-yet-valid")
    assert (await c.client.post("/passes/check", json={"code": later["code"]}, headers=door)).json()["reason"] == "unknown-code"


async def test_another_communitys_pass_and_a_forged_one_fail_online(community: Community) -> None:
    c = community
    other = community_on(c.stack, c.svc)
    theirs = await other.issue(await other.resident("r9"))
    door = await c.device("door-1")
    ours = await c.issue(await c.resident("r1"))
    decision = (await c.client.post("/passes/check", json={"token": theirs["token"]}, headers=door)).json()
    assert (decision["admit"], decision["reason"]) == (False, "unknown-key")
    body = ours["token"].split(".")[0]
    forged = f"{body}.{theirs['token'].split('.')[1]}"
    assert (await c.client.post("/passes/check", json={"token": forged}, headers=door)).json()["reason"] == "bad-signature"


async def test_residents_see_and_revoke_only_their_own_passes(community: Community) -> None:
    c = community
    mine = await c.resident("r1", household_id="h1")
    neighbour = await c.resident("r2", household_id="h2")
    issued = await c.issue(mine)
    assert [p["id"] for p in (await c.client.get("/passes", headers=mine)).json()["items"]] == [issued["id"]]
    assert (await c.client.get("/passes", headers=neighbour)).json()["items"] == []
    for path in (f"/passes/{issued['id']}", f"/passes/{issued['id']}/revoke"):
        method = c.client.get if path.endswith(issued["id"]) else c.client.post
        assert (await method(path, headers=neighbour)).status_code == 404
    other = community_on(c.stack, c.svc)
    outsider = other.auth("r1", "resident")  # the same subject in another community
    assert (await c.client.get(f"/passes/{issued['id']}", headers=outsider)).status_code == 404


async def test_staff_see_todays_expected_visitors_per_building_without_who(community: Community) -> None:
    c = community
    in_b1 = await c.issue(await c.resident("r1", building_id="b1"), plate="浙K12345")
    await c.issue(await c.resident("r2", household_id="h2", building_id="b2"))
    r = await c.client.get("/expected-visitors", params={"building_id": "b1"}, headers=c.staff)
    assert r.status_code == 200
    assert [(v["pass_id"], v["has_plate"]) for v in r.json()["items"]] == [(in_b1["id"], True)]
    assert "plate" not in r.json()["items"][0] and "resident_id" not in r.json()["items"][0]
    assert (await c.client.get("/expected-visitors", headers=c.auth("r1", "resident"))).status_code == 403


async def test_a_pass_needs_a_registered_resident_and_a_sane_window(community: Community) -> None:
    c = community
    start = datetime.now(UTC)
    window = {"valid_from": start.isoformat(), "valid_until": (start + timedelta(hours=1)).isoformat()}
    assert (await c.client.post("/passes", json=window, headers=c.auth("stranger", "resident"))).status_code == 403
    resident = await c.resident("r1")
    backwards = {"valid_from": window["valid_until"], "valid_until": window["valid_from"]}
    r = await c.client.post("/passes", json=backwards, headers=resident)
    assert r.status_code == 422 and r.json()["type"].endswith("security/invalid-pass-window")
    too_long = {**window, "valid_until": (start + timedelta(days=30)).isoformat()}
    assert (await c.client.post("/passes", json=too_long, headers=resident)).status_code == 422
