"""Scenario 1: identity comes from property's registry, through the gateway, to every service."""

from __future__ import annotations

from tests.e2e.conftest import Community, bearer, expect


async def test_a_resident_registered_in_property_logs_in_by_code_and_uses_another_service(community: Community) -> None:
    # property_admin registers the resident in property, through the gateway.
    person = await community.register_resident("郑美玲", "volunteer")
    listed = await community.call("GET", f"/api/property/residents/{person.id}", community.admin)
    assert (listed["phone"], listed["household_id"]) == (person.phone, person.household_id)

    # The gateway learns of them from property's event; they log in by phone + one-time code.
    await community.login(person)
    me = expect(await community.client.get("/auth/me", headers=person.auth), 200)
    assert me["subject"] == person.id and me["community"] == community.id
    assert sorted(me["roles"]) == ["resident", "volunteer"]

    # The token opens a resident route of another service: the time bank enrols them as a volunteer.
    enrolled = await community.call("POST", "/api/timebank/members", person.auth, {"volunteer": True}, expected=(201,))
    assert (enrolled["member_id"], enrolled["community"], enrolled["is_volunteer"]) == (person.id, community.id, True)
    mine = await community.call("GET", "/api/timebank/members/me", person.auth)
    assert mine["member_id"] == person.id and mine["balance"]["posted_minutes"] == 0
    # ...and governance knows the same subject (an empty account, not someone else's).
    points = await community.call("GET", "/api/governance/me/points", person.auth)
    assert points["balance"] == 0

    # The code was single use: logging in again with it fails.
    r = await community.client.post(
        "/auth/token",
        json={
            "grant_type": "otp",
            "community": community.id,
            "phone": person.phone,
            "code": community.platform.sender.sent[person.phone][-1],
        },
    )
    assert r.status_code == 401 and r.json()["type"].endswith("gateway/invalid-grant")


async def test_an_unknown_phone_gets_no_code_and_cannot_log_in(community: Community) -> None:
    # A registered neighbour proves the registry events flow to the gateway in this community...
    neighbour = await community.resident("黄立新")
    stranger = "17099990000"
    r = await community.client.post("/auth/otp", json={"community": community.id, "phone": stranger})
    # ...while the unknown number is answered exactly like a known one, but no code is sent.
    assert r.status_code == 202 and r.json()["sent"] is True
    assert stranger not in community.platform.sender.sent
    for guess in ("000000", "123456"):
        r = await community.client.post(
            "/auth/token", json={"grant_type": "otp", "community": community.id, "phone": stranger, "code": guess}
        )
        assert r.status_code == 401 and r.json()["type"].endswith("gateway/invalid-grant"), r.text
    # A phone registered in another community does not log in here either.
    r = await community.client.post("/auth/otp", json={"community": "e2e-elsewhere", "phone": neighbour.phone})
    assert r.status_code == 202
    assert len(community.platform.sender.sent[neighbour.phone]) == 1
    # Without a token the gateway answers 401 before any service is called.
    r = await community.client.get("/api/timebank/members/me")
    assert r.status_code == 401
    r = await community.client.get("/api/timebank/members/me", headers=bearer("not-a-jwt"))
    assert r.status_code == 401


async def test_a_machine_logs_in_as_its_client_id_and_may_not_take_a_persons_id(community: Community) -> None:
    person = await community.register_resident("马小东")
    # A client named like a person's id would get tokens whose subject is that person: refused.
    r = await community.client.put(
        f"/auth/clients/{person.id}", json={"roles": ["gate_device"], "secret": "s" * 20}, headers=community.admin
    )
    assert r.status_code == 422 and r.json()["type"].endswith("validation-error"), r.text
    r = await community.client.post(
        "/auth/token",
        json={"grant_type": "client_credentials", "community": community.id, "client_id": person.id, "client_secret": "s" * 20},
    )
    assert r.status_code == 422 and r.json()["type"].endswith("validation-error"), r.text
    # A gate camera's subject is its client id: the id parking knows it by.
    subject, _ = await community.machine("gate-west", "gate_device")
    assert subject == "gate-west"
