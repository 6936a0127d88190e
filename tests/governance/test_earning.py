"""Earning through HTTP: rules, check-ins, caps under concurrency, the budget, awards with approval."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from services.governance.events import PointsGranted
from tests.governance.conftest import Community, problem_type


async def test_steward_checkin_grants_points_into_statement_and_budget(community: Community) -> None:
    await community.fund(1000)
    rule = await community.rule(points=15, lot_validity_days=30)
    r = await community.client.post("/checkins", json={"rule_id": rule["id"], "resident_id": "res-a"}, headers=community.steward)
    assert r.status_code == 201, r.text
    assert (r.json()["points"], r.json()["status"]) == (15, "granted")
    points = await community.points("res-a")
    assert (points["balance"], points["expiring_within_30_days"]) == (15, 15)
    [entry] = await community.statement("res-a")
    assert (entry["kind"], entry["delta"], entry["balance_after"], entry["reason"]) == ("grant", 15, 15, "垃圾分类签到")
    assert await community.budget() == {
        "community": community.id,
        "funded": 1000,
        "granted": 15,
        "clawed_back": 0,
        "remaining": 985,
    }


async def test_thirty_concurrent_checkins_on_a_rule_capped_once_a_day_grant_exactly_one(community: Community) -> None:
    await community.fund(10_000)
    rule = await community.rule(points=5, cap_count=1, cap_period="day")
    results = await asyncio.gather(
        *(
            community.client.post("/checkins", json={"rule_id": rule["id"], "resident_id": "res-cap"}, headers=community.steward)
            for _ in range(30)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1
    assert codes.count(409) == 29
    assert {problem_type(r) for r in results if r.status_code == 409} == {"governance/cap-reached"}
    assert (await community.points("res-cap"))["balance"] == 5
    assert len(await community.statement("res-cap")) == 1
    # The cap is per resident: another resident still earns today.
    other = await community.client.post(
        "/checkins", json={"rule_id": rule["id"], "resident_id": "res-other"}, headers=community.steward
    )
    assert other.status_code == 201


async def test_budget_runs_out_and_never_goes_negative(community: Community) -> None:
    await community.fund(25)
    rule = await community.rule(points=10)
    results = await asyncio.gather(
        *(
            community.client.post("/checkins", json={"rule_id": rule["id"], "resident_id": f"res-{i}"}, headers=community.steward)
            for i in range(6)
        )
    )
    assert sorted(r.status_code for r in results) == [201, 201, 409, 409, 409, 409]
    assert {problem_type(r) for r in results if r.status_code == 409} == {"governance/budget-exhausted"}
    budget = await community.budget()
    assert (budget["remaining"], budget["granted"]) == (5, 20)


async def test_unknown_rule_switched_off_rule_and_wrong_rule_kind_are_problems(community: Community) -> None:
    await community.fund(100)
    unknown = await community.client.post(
        "/checkins", json={"rule_id": str(uuid.uuid4()), "resident_id": "res-x"}, headers=community.steward
    )
    assert (unknown.status_code, problem_type(unknown)) == (404, "governance/rule-not-found")
    rule = await community.rule()
    off = await community.client.patch(f"/rules/{rule['id']}", json={"enabled": False}, headers=community.worker)
    assert off.status_code == 200 and off.json()["enabled"] is False
    r = await community.client.post("/checkins", json={"rule_id": rule["id"], "resident_id": "res-x"}, headers=community.steward)
    assert (r.status_code, problem_type(r)) == (409, "governance/rule-inactive")
    event_rule = await community.rule(trigger="parking.booking.completed.v1")
    r = await community.client.post(
        "/checkins", json={"rule_id": event_rule["id"], "resident_id": "res-x"}, headers=community.steward
    )
    assert (r.status_code, problem_type(r)) == (422, "governance/not-a-checkin-rule")
    # A rule of another community is unknown here.
    r = await community.client.post(
        "/checkins",
        json={"rule_id": rule["id"], "resident_id": "res-x"},
        headers=community.stack.auth("steward-1", "steward", community="elsewhere"),
    )
    assert (r.status_code, problem_type(r)) == (404, "governance/rule-not-found")
    assert await community.statement("res-x") == []
    assert (await community.budget())["granted"] == 0


async def test_rule_validation_and_roles(community: Community) -> None:
    bad = await community.client.post(
        "/rules",
        json={"code": "x", "name": "n", "trigger": "checkin.meeting_attendance", "points": 5, "cap_count": 2},
        headers=community.worker,
    )
    assert (bad.status_code, problem_type(bad)) == (422, "validation-error")
    unknown_trigger = await community.client.post(
        "/rules", json={"code": "y", "name": "n", "trigger": "made.up.v1", "points": 5}, headers=community.worker
    )
    assert unknown_trigger.status_code == 422
    by_resident = await community.client.post(
        "/rules",
        json={"code": "z", "name": "n", "trigger": "checkin.meeting_attendance", "points": 5},
        headers=community.resident("res-r"),
    )
    assert by_resident.status_code == 403
    await community.rule(code="meeting")
    again = await community.client.post(
        "/rules",
        json={"code": "meeting", "name": "n", "trigger": "checkin.meeting_attendance", "points": 5},
        headers=community.worker,
    )
    assert (again.status_code, problem_type(again)) == (409, "governance/code-taken")


async def test_qr_code_checkin_once_per_resident_and_only_on_its_day(community: Community) -> None:
    await community.fund(100)
    rule = await community.rule(trigger="checkin.meeting_attendance", points=8, name="居民议事会")
    code = await community.client.post("/checkin-codes", json={"rule_id": rule["id"]}, headers=community.steward)
    assert code.status_code == 201, code.text
    body = {"code": code.json()["code"]}
    first = await community.client.post("/checkins/qr", json=body, headers=community.resident("res-q"))
    assert first.status_code == 201, first.text
    second = await community.client.post("/checkins/qr", json=body, headers=community.resident("res-q"))
    assert (second.status_code, problem_type(second)) == (409, "governance/cap-reached")
    other = await community.client.post("/checkins/qr", json=body, headers=community.resident("res-q2"))
    assert other.status_code == 201
    stale = await community.client.post(
        "/checkin-codes", json={"rule_id": rule["id"], "valid_on": "2020-01-01"}, headers=community.steward
    )
    r = await community.client.post("/checkins/qr", json={"code": stale.json()["code"]}, headers=community.resident("res-q3"))
    assert (r.status_code, problem_type(r)) == (422, "governance/checkin-code-invalid")
    assert (await community.points("res-q"))["balance"] == 8


async def test_small_award_applies_at_once_large_one_needs_a_second_worker(community: Community) -> None:
    await community.fund(1000)
    small = await community.award("res-w", 20)
    assert small["status"] == "applied"
    large = await community.award("res-w", 200, reason="抗台救灾")
    assert large["status"] == "pending"
    assert (await community.points("res-w"))["balance"] == 20
    pending = await community.client.get("/awards", params={"status": "pending"}, headers=community.worker)
    assert [a["id"] for a in pending.json()["items"]] == [large["id"]]
    self_approve = await community.client.post(f"/awards/{large['id']}/approve", headers=community.worker)
    assert (self_approve.status_code, problem_type(self_approve)) == (403, "governance/self-approval")
    ok = await community.client.post(f"/awards/{large['id']}/approve", headers=community.worker2)
    assert ok.status_code == 200 and ok.json()["status"] == "applied" and ok.json()["decided_by"] == "worker-2"
    again = await community.client.post(f"/awards/{large['id']}/approve", headers=community.worker2)
    assert (again.status_code, problem_type(again)) == (409, "governance/award-not-pending")
    assert (await community.points("res-w"))["balance"] == 220
    assert (await community.budget())["remaining"] == 780


async def test_award_without_reason_or_over_budget_writes_nothing(community: Community) -> None:
    await community.fund(30)
    r = await community.client.post("/awards", json={"resident_id": "res-n", "points": 10}, headers=community.worker)
    assert (r.status_code, problem_type(r)) == (422, "validation-error")
    r = await community.client.post(
        "/awards", json={"resident_id": "res-n", "points": 10, "reason": ""}, headers=community.worker
    )
    assert r.status_code == 422
    r = await community.client.post(
        "/awards", json={"resident_id": "res-n", "points": 40, "reason": "表彰"}, headers=community.worker
    )
    assert (r.status_code, problem_type(r)) == (409, "governance/budget-exhausted")
    listed = await community.client.get("/awards", headers=community.worker)
    assert listed.json()["items"] == []
    assert await community.statement("res-n") == []


async def test_deduction_takes_points_and_may_leave_the_balance_negative(community: Community) -> None:
    await community.fund(100)
    await community.award("res-d", 10)
    deduction = await community.award("res-d", -25, reason="违规投放垃圾")
    assert deduction["status"] == "applied"
    points = await community.points("res-d")
    assert (points["balance"], points["debt"]) == (-15, 15)
    entries = await community.statement("res-d")
    assert [(e["kind"], e["delta"], e["balance_after"]) for e in entries] == [("deduction", -25, -15), ("award", 10, 10)]
    # A later award pays the debt first.
    await community.award("res-d", 20)
    points = await community.points("res-d")
    assert (points["balance"], points["debt"]) == (5, 0)
    lots = await community.client.get("/me/lots", headers=community.resident("res-d"))
    assert sum(lot["remaining"] for lot in lots.json()["items"]) == 5


async def test_openapi_documents_the_routes_and_their_problems(community: Community) -> None:
    spec = (await community.client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/rules",
        "/checkins",
        "/checkins/qr",
        "/awards",
        "/budget",
        "/me/statement",
        "/leaderboard",
        "/rewards",
        "/redemptions",
        "/redemptions/{redemption_id}/cancel",
        "/households/{household_id}/points",
    ):
        assert path in paths, path
    redeem = paths["/redemptions"]["post"]
    assert redeem["operationId"] == "governance-redeem"
    assert "urn:community:problem:governance/insufficient-points" in redeem["responses"]["409"]["description"]
    assert "urn:community:problem:governance/reward-not-found" in redeem["responses"]["404"]["description"]
    assert "Problem" in spec["components"]["schemas"]


async def test_grants_by_rule_and_award_publish_points_granted_and_skips_do_not(community: Community) -> None:
    await community.fund(1000)
    rule = await community.rule(points=7, cap_count=1, cap_period="day")
    first = await community.client.post(
        "/checkins", json={"rule_id": rule["id"], "resident_id": "res-ev"}, headers=community.steward
    )
    capped = await community.client.post(
        "/checkins", json={"rule_id": rule["id"], "resident_id": "res-ev"}, headers=community.steward
    )
    assert (first.status_code, capped.status_code) == (201, 409)
    award = await community.award("res-ev", 20)
    async with community.svc.state.sessionmaker() as session, session.begin():
        rows = (
            await session.execute(
                text(
                    "SELECT key, data FROM kit_outbox WHERE type = 'governance.points.granted.v1' "
                    "AND data->>'community' = :community ORDER BY id"
                ),
                {"community": community.id},
            )
        ).all()
    by_rule, by_award = (PointsGranted.model_validate(r.data) for r in rows)  # exactly two: the capped one is not
    assert (by_rule.resident_id, by_rule.points, by_rule.source, by_rule.trigger, by_rule.rule_id) == (
        "res-ev",
        7,
        "rule",
        rule["trigger"],
        rule["id"],
    )
    assert rows[0].key == by_rule.grant_id
    assert (by_award.grant_id, by_award.points, by_award.source, by_award.trigger) == (award["id"], 20, "award", "award")
