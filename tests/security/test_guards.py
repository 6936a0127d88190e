"""A security guard (保安) does the watch's work in the security service: devices' status, one door's
events, alarms and answering them, the day's expected visitors; and nothing of the admins' or the
residents' (registering devices, enrolling cards, passes, a household's events). Another community's
door and alarm are 404 to a guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.security.conftest import Community, access, community_on


async def test_a_guard_watches_doors_alarms_and_expected_visitors(community: Community) -> None:
    c = community
    guard = c.auth("guard-1", "security_guard")
    resident = await c.resident("r-1")
    door = await c.device("door-1")
    smoke = await c.device("smoke-1", kind="smoke")
    await c.issue(resident, max_entries=2)
    base = datetime.now(UTC) - timedelta(minutes=30)
    r = await c.client.post("/access-events", json={"events": [access("e1", at=base)]}, headers=door)
    assert r.status_code == 200, r.text
    alarm = (await c.client.post("/alarms", json={"incident_id": "inc-1", "kind": "smoke"}, headers=smoke)).json()

    devices = (await c.client.get("/devices", headers=guard)).json()["items"]
    assert sorted(d["id"] for d in devices) == sorted([c.dev("door-1"), c.dev("smoke-1")])
    window = {
        "device_id": c.dev("door-1"),
        "since": (base - timedelta(minutes=1)).isoformat(),
        "until": datetime.now(UTC).isoformat(),
    }
    found = (await c.client.get("/access-events", params=window, headers=guard)).json()["items"]
    assert [(e["direction"], e["credential_kind"]) for e in found] == [("in", "card")]
    visitors = (await c.client.get("/expected-visitors", headers=guard)).json()["items"]
    assert [(v["building_id"], v["max_entries"]) for v in visitors] == [("b1", 2)]
    alarms = (await c.client.get("/alarms", params={"open": "true"}, headers=guard)).json()["items"]
    assert [a["id"] for a in alarms] == [alarm["id"]]
    answered = await c.client.post(f"/alarms/{alarm['id']}/acknowledge", headers=guard)
    assert answered.status_code == 200 and answered.json()["acknowledged_by"] == "guard-1"

    # Another community's guard finds neither the door nor the alarm.
    other = community_on(c.stack, c.svc).auth("guard-9", "security_guard")
    assert (await c.client.get("/access-events", params=window, headers=other)).status_code == 404
    assert (await c.client.post(f"/alarms/{alarm['id']}/acknowledge", headers=other)).status_code == 404
    assert (await c.client.get("/alarms", headers=other)).json()["items"] == []


async def test_a_guard_registers_no_device_and_reads_no_household(community: Community) -> None:
    c = community
    guard = c.auth("guard-1", "security_guard")
    body = {"id": c.dev("door-2"), "building_id": "b1", "kind": "door", "name": "门"}
    assert (await c.client.post("/devices", json=body, headers=guard)).status_code == 403
    credential = {"credential_id": "card-1", "household_id": "h1"}
    assert (await c.client.post("/credentials", json=credential, headers=guard)).status_code == 403
    for path in ("/passes", "/access-events/mine"):
        assert (await c.client.get(path, headers=guard)).status_code == 403, path
    assert (await c.client.post("/access-events", json={"events": [access("e1")]}, headers=guard)).status_code == 403
