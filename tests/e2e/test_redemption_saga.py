"""Scenario 3: points redeemed for a property service (the saga across governance and property)."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Community, wait_until

ALL_WEEK = [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(7)]


async def test_a_redemption_becomes_a_property_ticket_and_an_unknown_service_is_released(community: Community) -> None:
    building = await community.building("B7")
    resident = await community.resident("孙丽华")
    worker = await community.staff("community_worker")
    steward = await community.staff("steward", buildings=[building])
    await community.call("PUT", f"/api/property/staff/{steward.id}/roster", community.admin, {"shifts": ALL_WEEK})

    # Property's catalogue has the service; governance offers it as a reward fulfilled by property.
    await community.call(
        "POST",
        "/api/property/catalogue",
        community.admin,
        {"code": "haircut-home", "name": "上门理发", "price_fen": 3000},
        expected=(201,),
    )
    catalogue = await community.call("GET", "/api/property/catalogue", resident.auth)
    assert "haircut-home" in {item["code"] for item in catalogue["items"]}
    await community.call("POST", "/api/governance/budget/fundings", worker.auth, {"points": 500})
    award = await community.call(
        "POST",
        "/api/governance/awards",
        worker.auth,
        {"resident_id": resident.id, "points": 50, "reason": "楼道清洁志愿"},
        expected=(201,),
    )
    assert award["status"] == "applied"
    haircut = await community.call(
        "POST",
        "/api/governance/rewards",
        worker.auth,
        {"code": "haircut", "name": "上门理发", "kind": "service", "service_code": "haircut-home", "points": 30},
        expected=(201,),
    )
    unknown = await community.call(
        "POST",
        "/api/governance/rewards",
        worker.auth,
        {"code": "massage", "name": "推拿", "kind": "service", "service_code": "no-such-service", "points": 10},
        expected=(201,),
    )

    # The app retries its redemption (same Idempotency-Key): one redemption, points reserved once.
    retry = {**resident.auth, "Idempotency-Key": f"redeem-{haircut['id']}"}
    good = await community.call("POST", "/api/governance/redemptions", retry, {"reward_id": haircut["id"]}, expected=(201,))
    again = await community.client.post("/api/governance/redemptions", json={"reward_id": haircut["id"]}, headers=retry)
    assert (again.status_code, again.json()["id"]) == (201, good["id"])
    assert again.headers.get("idempotency-replayed") == "true"
    bad = await community.call(
        "POST", "/api/governance/redemptions", resident.auth, {"reward_id": unknown["id"]}, expected=(201,)
    )
    assert (good["status"], bad["status"]) == ("reserved", "reserved")

    async def redemption(rid: str) -> dict[str, Any]:
        found: dict[str, Any] = await community.call("GET", f"/api/governance/redemptions/{rid}", resident.auth)
        return found

    async def settled() -> bool:
        statuses = {(await redemption(rid))["status"] for rid in (good["id"], bad["id"])}
        return "reserved" not in statuses

    await wait_until(settled, what="property answering both redemptions")
    captured, released = await redemption(good["id"]), await redemption(bad["id"])
    assert captured["status"] == "captured" and captured["ticket_id"]
    assert released["status"] == "released" and released["ticket_id"] is None
    assert "unknown-service-code" in released["release_reason"]

    # The resident sees the prepaid ticket in property, routed to the building's steward.
    tickets = await community.call("GET", "/api/property/tickets", resident.auth)
    assert [t["id"] for t in tickets["items"]] == [captured["ticket_id"]]
    ticket = await community.call("GET", f"/api/property/tickets/{captured['ticket_id']}", resident.auth)
    assert (ticket["category"], ticket["service_code"], ticket["redemption_id"]) == ("service", "haircut-home", good["id"])
    assert (ticket["resident_id"], ticket["household_id"]) == (resident.id, resident.household_id)
    assert (ticket["assignee_id"], ticket["quote_fen"], ticket["payment_status"]) == (steward.id, 3000, "paid")
    queue = await community.call("GET", "/api/property/queue", steward.auth, params={"scope": "mine"})
    assert captured["ticket_id"] in {t["id"] for t in queue["items"]}
    # The steward can start the prepaid work at once: the quote counts as approved.
    await community.call("POST", f"/api/property/tickets/{captured['ticket_id']}/accept", steward.auth)
    started = await community.call("POST", f"/api/property/tickets/{captured['ticket_id']}/start", steward.auth)
    assert started["status"] == "in_progress"

    # The 30 points are spent; the 10 for the unknown service came back.
    points = await community.call("GET", "/api/governance/me/points", resident.auth)
    assert (points["balance"], points["reserved"]) == (20, 0)
    statement = await community.call("GET", "/api/governance/me/statement", resident.auth)
    assert sorted((e["kind"], e["delta"]) for e in statement["items"]) == sorted(
        [("award", 50), ("spend", -30), ("spend", -10), ("refund", 10)]
    )
    mine = await community.call("GET", "/api/governance/me/redemptions", resident.auth)
    assert {(r["id"], r["status"]) for r in mine["items"]} == {(good["id"], "captured"), (bad["id"], "released")}


async def test_a_value_added_order_paid_with_points_is_captured_by_governance(community: Community) -> None:
    resident = await community.resident("冯美华")
    poor = await community.resident("韩小兵")
    worker = await community.staff("community_worker")
    await community.call(
        "POST",
        "/api/property/catalogue",
        community.admin,
        {"code": "window-clean", "name": "擦窗", "price_fen": 400},
        expected=(201,),
    )
    await community.call("POST", "/api/governance/budget/fundings", worker.auth, {"points": 500})
    await community.call(
        "POST",
        "/api/governance/awards",
        worker.auth,
        {"resident_id": resident.id, "points": 50, "reason": "社区活动志愿"},
        expected=(201,),
    )

    async def order(person: Any) -> str:
        ticket = await community.call(
            "POST",
            "/api/property/tickets",
            person.auth,
            {"category": "service", "service_code": "window-clean", "description": "擦窗"},
            expected=(201,),
        )
        assert ticket["quote_fen"] == 400
        payment = await community.call(
            "POST", f"/api/property/tickets/{ticket['id']}/payments", person.auth, {"method": "points"}, expected=(201, 202)
        )
        assert (payment["method"], payment["points"]) == ("points", 40)  # 400 fen at 10 fen per point
        return str(ticket["id"])

    paid, unpaid = await order(resident), await order(poor)

    async def payments_of(person: Any, ticket_id: str) -> list[dict[str, Any]]:
        page = await community.call("GET", f"/api/property/tickets/{ticket_id}/payments", person.auth)
        return list(page["items"])

    async def both_answered() -> bool:
        mine = await payments_of(resident, paid)
        theirs = await payments_of(poor, unpaid)
        return all(p["status"] in ("paid", "rejected") for p in [*mine, *theirs])

    await wait_until(both_answered, what="governance settling both points payments")
    assert [p["status"] for p in await payments_of(resident, paid)] == ["paid"]
    rejected = await payments_of(poor, unpaid)
    assert [p["status"] for p in rejected] == ["rejected"]
    ticket = await community.call("GET", f"/api/property/tickets/{paid}", resident.auth)
    assert ticket["payment_status"] == "paid"
    points = await community.call("GET", "/api/governance/me/points", resident.auth)
    assert (points["balance"], points["reserved"]) == (10, 0)
    statement = await community.call("GET", "/api/governance/me/statement", resident.auth)
    assert [(e["kind"], e["delta"]) for e in statement["items"]] == [("spend", -40), ("award", 50)]
    assert (await community.call("GET", "/api/governance/me/points", poor.auth))["balance"] == 0
