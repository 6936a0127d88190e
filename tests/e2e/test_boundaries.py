"""Scenario 6: through the gateway, a resident never sees a neighbour's objects (404, not 403) and a
resident token on a staff route is 403, in every service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import Community, wait_until


async def test_a_resident_gets_404_for_a_neighbours_objects_in_every_service(community: Community) -> None:
    owner = await community.resident("钱一", "elder", "volunteer")
    neighbour = await community.resident("孙二", "volunteer")
    worker = await community.staff("community_worker")
    steward = await community.staff("steward")

    # The owner's objects, one or more in each service, all made through the gateway.
    await community.call("POST", "/api/timebank/members", owner.auth, {"elder": True, "volunteer": True}, expected=(201,))
    await community.call("POST", "/api/timebank/members", neighbour.auth, {"volunteer": True}, expected=(201,))
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    care = await community.call(
        "POST",
        "/api/timebank/care-requests",
        owner.auth,
        {"service_type": "meal", "starts_at": start.isoformat(), "place": "1幢", "minutes_estimated": 30},
        expected=(201,),
    )
    await community.call("POST", f"/api/timebank/care-requests/{care['id']}/cancel", owner.auth)
    spot = await community.call("POST", "/api/parking/spots", owner.auth, {"code": "B1-001", "location": "地库"}, expected=(201,))
    ticket = await community.call(
        "POST", "/api/property/tickets", owner.auth, {"category": "repair", "description": "水管漏水"}, expected=(201,)
    )
    await community.call("POST", "/api/governance/budget/fundings", worker.auth, {"points": 100})
    await community.call(
        "POST",
        "/api/governance/awards",
        worker.auth,
        {"resident_id": owner.id, "points": 10, "reason": "垃圾分类督导"},
        expected=(201,),
    )
    reward = await community.call(
        "POST",
        "/api/governance/rewards",
        worker.auth,
        {"code": "soap", "name": "肥皂", "kind": "item", "points": 5, "stock": 3},
        expected=(201,),
    )
    redemption = await community.call(
        "POST", "/api/governance/redemptions", owner.auth, {"reward_id": reward["id"]}, expected=(201,)
    )

    async def household_known() -> bool:
        r = await community.client.get(f"/api/governance/households/{owner.household_id}/points", headers=owner.auth)
        return r.status_code == 200

    await wait_until(household_known, what="governance learning the owner's household from property")

    own_reads = [
        f"/api/timebank/members/{owner.id}",
        f"/api/timebank/members/{owner.id}/passbook",
        f"/api/timebank/care-requests/{care['id']}",
        f"/api/parking/spots/{spot['id']}",
        f"/api/parking/spots/{spot['id']}/windows",
        f"/api/property/residents/{owner.id}",
        f"/api/property/tickets/{ticket['id']}",
        f"/api/property/tickets/{ticket['id']}/steps",
        f"/api/governance/redemptions/{redemption['id']}",
        f"/api/governance/households/{owner.household_id}/points",
    ]
    for path in own_reads:
        r = await community.client.get(path, headers=owner.auth)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        r = await community.client.get(path, headers=neighbour.auth)
        assert r.status_code == 404, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/problem+json")
    # Nor can the neighbour act on them.
    actions = [
        (f"/api/property/tickets/{ticket['id']}/cancel", {}),
        (f"/api/governance/redemptions/{redemption['id']}/cancel", None),
        (
            f"/api/parking/spots/{spot['id']}/windows",
            {
                "kind": "one_off",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=2)).isoformat(),
                "price_fen_per_30min": 100,
            },
        ),
    ]
    for path, body in actions:
        r = await community.client.post(path, json=body, headers={**neighbour.auth, "Idempotency-Key": str(uuid.uuid4())})
        assert r.status_code == 404, (path, r.status_code, r.text[:300])
    # ...and the objects are untouched.
    assert (await community.call("GET", f"/api/property/tickets/{ticket['id']}", owner.auth))["status"] != "cancelled"
    assert (await community.call("GET", f"/api/governance/redemptions/{redemption['id']}", owner.auth))["status"] == "reserved"
    assert (await community.call("GET", f"/api/parking/spots/{spot['id']}/windows", owner.auth))["items"] == []
    # Staff of the same community do see them (the 404 is about ownership, not existence).
    r = await community.client.get(f"/api/property/tickets/{ticket['id']}", headers=steward.auth)
    assert r.status_code == 200


async def test_a_resident_token_on_staff_routes_is_403_in_every_service(community: Community) -> None:
    resident = await community.resident("李三")
    staff_routes = [
        ("GET", "/api/timebank/pool", None),
        ("GET", "/api/timebank/pending-transfers", None),
        ("POST", "/api/timebank/transfers/funding", {"id": str(uuid.uuid4()), "minutes": 60, "reason": "x"}),
        ("GET", "/api/parking/gate-events", None),
        ("GET", "/api/parking/occupancy", None),
        ("POST", "/api/parking/gate/entries", {"plate": "浙K12345"}),
        ("GET", "/api/property/queue", None),
        ("POST", "/api/property/buildings", {"code": "X9", "name": "X9幢"}),
        ("POST", "/api/governance/rules", {"code": "r", "name": "r", "trigger": "checkin.meeting_attendance", "points": 1}),
        ("GET", "/api/governance/budget", None),
        ("POST", "/api/governance/budget/fundings", {"points": 1_000}),
        ("GET", "/api/citysync/consumers", None),
        ("GET", "/api/citysync/pulls", None),
        ("PUT", "/auth/clients/sneaky", {"roles": ["city_sync"], "secret": "s" * 16}),
    ]
    for method, path, body in staff_routes:
        r = await community.client.request(method, path, json=body, headers=resident.auth)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:300])
    # Nothing was written: no such building, no earning rule.
    buildings = await community.call("GET", "/api/property/buildings", resident.auth)
    assert "X9" not in {b["code"] for b in buildings["items"]}
    rules = await community.call("GET", "/api/governance/rules", resident.auth)
    assert rules["items"] == []
