"""Spending through HTTP: the catalogue, reservations under contention, lots order, stock, limits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from services.governance import accounts
from services.governance.models import Lot
from tests.governance.conftest import Community, problem_type


async def test_hundred_concurrent_redemptions_against_a_balance_for_thirteen_reserve_exactly_thirteen(
    community: Community,
) -> None:
    await community.fund(10_000)
    await community.give("res-r", 13 * 7)
    reward = await community.reward(points=7, stock=500)
    results = await asyncio.gather(
        *(
            community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("res-r"))
            for _ in range(100)
        )
    )
    codes = [r.status_code for r in results]
    assert codes.count(201) == 13, codes
    assert codes.count(409) == 87
    assert {problem_type(r) for r in results if r.status_code == 409} == {"governance/insufficient-points"}
    points = await community.points("res-r")
    assert (points["balance"], points["reserved"], points["debt"]) == (0, 91, 0)
    lots = await community.client.get("/me/lots", headers=community.resident("res-r"))
    assert lots.json()["items"] == []
    rewards = await community.client.get("/rewards", headers=community.resident("res-r"))
    assert [w["stock"] for w in rewards.json()["items"]] == [487]
    balances = [e["balance_after"] for e in await community.statement("res-r")]
    assert min(balances) == 0


async def test_spending_takes_the_soonest_expiring_lot_first_and_unexpiring_lots_last(community: Community) -> None:
    await community.fund(1000)
    await community.award("res-o", 10)  # expires in a year (award lots)
    short = await community.rule(points=4, lot_validity_days=7, code="short")
    never = await community.rule(points=6, code="never", trigger="checkin.community_activity")
    medium = await community.rule(points=5, lot_validity_days=30, code="medium", trigger="checkin.meeting_attendance")
    for rule in (never, short, medium):
        r = await community.client.post(
            "/checkins", json={"rule_id": rule["id"], "resident_id": "res-o"}, headers=community.steward
        )
        assert r.status_code == 201
    reward = await community.reward(points=12)
    r = await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("res-o"))
    assert r.status_code == 201, r.text
    lots = (await community.client.get("/me/lots", headers=community.resident("res-o"))).json()["items"]
    # 4 (7 days) and 5 (30 days) are used up, then 3 of the 10 expiring in a year; the 6 without expiry stay.
    assert [(lot["points"], lot["remaining"], lot["expires_at"] is None) for lot in lots] == [(10, 7, False), (6, 6, True)]


async def test_unknown_reward_out_of_stock_limit_and_inactive_are_problems_that_write_nothing(community: Community) -> None:
    await community.fund(1000)
    await community.award("res-b", 50)
    unknown = await community.client.post(
        "/redemptions", json={"reward_id": str(uuid.uuid4())}, headers=community.resident("res-b")
    )
    assert (unknown.status_code, problem_type(unknown)) == (404, "governance/reward-not-found")
    scarce = await community.reward(points=5, stock=1)
    r = await community.client.post(
        "/redemptions", json={"reward_id": scarce["id"], "quantity": 2}, headers=community.resident("res-b")
    )
    assert (r.status_code, problem_type(r)) == (409, "governance/out-of-stock")
    limited = await community.reward(points=5, per_resident_limit=2)
    ok = await community.client.post(
        "/redemptions", json={"reward_id": limited["id"], "quantity": 2}, headers=community.resident("res-b")
    )
    assert ok.status_code == 201
    over = await community.client.post("/redemptions", json={"reward_id": limited["id"]}, headers=community.resident("res-b"))
    assert (over.status_code, problem_type(over)) == (409, "governance/resident-limit-exceeded")
    later = await community.reward(points=5, active_from=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    r = await community.client.post("/redemptions", json={"reward_id": later["id"]}, headers=community.resident("res-b"))
    assert (r.status_code, problem_type(r)) == (409, "governance/reward-inactive")
    # Only the one good redemption moved anything.
    points = await community.points("res-b")
    assert (points["balance"], points["reserved"]) == (40, 10)
    assert [e["kind"] for e in await community.statement("res-b")] == ["spend", "award"]
    catalogue = await community.client.get("/rewards", headers=community.resident("res-b"))
    assert {w["code"]: w["stock"] for w in catalogue.json()["items"]}[scarce["code"]] == 1
    assert later["code"] not in {w["code"] for w in catalogue.json()["items"]}


async def test_item_redemption_fulfilled_by_a_worker_or_cancelled_by_the_resident(community: Community) -> None:
    await community.fund(1000)
    await community.award("res-i", 30)
    reward = await community.reward(points=10, stock=5)
    first = (
        await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("res-i"))
    ).json()
    second = (
        await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("res-i"))
    ).json()
    done = await community.client.post(f"/redemptions/{first['id']}/fulfil", headers=community.worker)
    assert done.status_code == 200 and done.json()["status"] == "captured"
    # Another resident cannot see or cancel it: it does not exist for them.
    peek = await community.client.get(f"/redemptions/{second['id']}", headers=community.resident("res-other"))
    assert (peek.status_code, problem_type(peek)) == (404, "governance/redemption-not-found")
    steal = await community.client.post(f"/redemptions/{second['id']}/cancel", headers=community.resident("res-other"))
    assert steal.status_code == 404
    cancelled = await community.client.post(f"/redemptions/{second['id']}/cancel", headers=community.resident("res-i"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "released"
    again = await community.client.post(f"/redemptions/{second['id']}/cancel", headers=community.resident("res-i"))
    assert (again.status_code, problem_type(again)) == (409, "governance/redemption-not-open")
    points = await community.points("res-i")
    assert (points["balance"], points["reserved"]) == (20, 0)
    catalogue = (await community.client.get("/rewards", headers=community.resident("res-i"))).json()["items"]
    assert catalogue[0]["stock"] == 4
    mine = await community.client.get("/me/redemptions", headers=community.resident("res-i"))
    assert {r["status"] for r in mine.json()["items"]} == {"captured", "released"}


async def test_expiry_sweep_expires_due_lots_with_a_statement_line(community: Community) -> None:
    await community.fund(1000)
    rule = await community.rule(points=9, lot_validity_days=1)
    await community.client.post("/checkins", json={"rule_id": rule["id"], "resident_id": "res-e"}, headers=community.steward)
    await community.award("res-e", 5)
    async with community.svc.state.sessionmaker() as session:
        expired = await accounts.expire_due_lots(session, now=datetime.now(UTC) + timedelta(days=2))
    assert expired >= 9
    points = await community.points("res-e")
    assert points["balance"] == 5
    latest = (await community.statement("res-e"))[0]
    assert (latest["kind"], latest["delta"], latest["balance_after"]) == ("expiry", -9, 5)
    # A second sweep finds nothing more for this resident.
    async with community.svc.state.sessionmaker() as session:
        await accounts.expire_due_lots(session, now=datetime.now(UTC) + timedelta(days=2))
    assert len(await community.statement("res-e")) == 3


async def test_redemption_first_expires_lots_the_sweep_has_not_reached(community: Community) -> None:
    await community.fund(1000)
    rule = await community.rule(points=9, lot_validity_days=7)
    r = await community.client.post("/checkins", json={"rule_id": rule["id"], "resident_id": "res-x"}, headers=community.steward)
    assert r.status_code == 201, r.text
    await community.award("res-x", 5)
    # The 9-point lot's expiry passes before any sweep runs.
    async with community.svc.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Lot)
            .where(Lot.community == community.id, Lot.points == 9)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    reward = await community.reward(points=4)
    # 14 points in lots, but 9 of them are expired: 8 is more than what is left, and nothing is written.
    short = await community.client.post(
        "/redemptions", json={"reward_id": reward["id"], "quantity": 2}, headers=community.resident("res-x")
    )
    assert (short.status_code, problem_type(short)) == (409, "governance/insufficient-points")
    assert short.json()["available"] == 5
    assert [e["kind"] for e in await community.statement("res-x")] == ["award", "grant"]
    ok = await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("res-x"))
    assert ok.status_code == 201, ok.text
    lines = [(e["kind"], e["delta"], e["balance_after"]) for e in await community.statement("res-x")]
    assert lines[:2] == [("spend", -4, 1), ("expiry", -9, 5)]
    points = await community.points("res-x")
    assert (points["balance"], points["reserved"]) == (1, 4)


async def test_statement_is_cursor_paginated_newest_first(community: Community) -> None:
    await community.fund(1000)
    for i in range(1, 6):
        await community.award("res-p", i)
    headers = community.resident("res-p")
    page1 = (await community.client.get("/me/statement", params={"limit": 2}, headers=headers)).json()
    page2 = (
        await community.client.get("/me/statement", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=headers)
    ).json()
    page3 = (
        await community.client.get("/me/statement", params={"limit": 2, "cursor": page2["next_cursor"]}, headers=headers)
    ).json()
    assert [e["delta"] for e in page1["items"] + page2["items"] + page3["items"]] == [5, 4, 3, 2, 1]
    assert page3["next_cursor"] is None
    staff_view = await community.client.get("/residents/res-p/statement", headers=community.worker)
    assert len(staff_view.json()["items"]) == 5
    forbidden = await community.client.get("/residents/res-p/statement", headers=community.resident("res-x"))
    assert forbidden.status_code == 403
