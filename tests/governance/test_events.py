"""Events in and out: earning from other services, reversal, the redemption saga with property,
points payments, households, and the leaderboard cache."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.governance import leaderboard
from services.governance.app import create_app
from services.governance.settings import Settings
from tests.governance.conftest import Community, consumers_ready, problem_type, wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


async def _confirmed(
    community: Community, volunteer: str, minutes: int, transfer_id: str | None = None, event_id: str | None = None
) -> str:
    transfer_id = transfer_id or str(uuid.uuid4())
    await community.publish(
        "timebank.events",
        "timebank.service.confirmed.v1",
        transfer_id,
        {
            "transfer_id": transfer_id,
            "volunteer_id": volunteer,
            "elder_id": "elder-1",
            "minutes": minutes,
            "service_type": "companionship",
            "confirmed_at": "2026-01-01T00:00:00+00:00",
            "unknown_field": 1,
        },
        event_id=event_id,
    )
    return transfer_id


async def test_timebank_service_earns_points_per_hour_once_however_often_it_arrives(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(1000)
    await community.rule(trigger="timebank.service.confirmed.v1", points=10, per_hour=True, code="tb")
    event_id = str(uuid.uuid4())
    transfer = await _confirmed(community, "vol-1", 150, event_id=event_id)
    await _confirmed(community, "vol-1", 150, transfer_id=transfer, event_id=event_id)
    await _confirmed(community, "vol-1", 60)  # a later event shows both copies went by

    async def two_grants() -> bool:
        return len(await community.statement("vol-1")) >= 2

    await wait_until(two_grants)
    entries = await community.statement("vol-1")
    assert [e["delta"] for e in entries] == [10, 25]  # 150 minutes at 10 an hour
    assert (await community.budget())["granted"] == 35


async def test_parking_window_used_earns_the_owner_points(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(100)
    await community.rule(trigger="parking.booking.completed.v1", points=3, code="share", name="共享车位")
    booking = str(uuid.uuid4())
    await community.publish(
        "parking.events",
        "parking.booking.completed.v1",
        booking,
        {
            "booking_id": booking,
            "spot_id": "s1",
            "owner_id": "owner-1",
            "booker_id": "booker-1",
            "start": "2026-01-01T01:00:00+00:00",
            "end": "2026-01-01T03:00:00+00:00",
            "fee_fen": 1000,
            "owner_share_fen": 700,
            "completed_at": "2026-01-01T03:05:00+00:00",
        },
    )

    async def granted() -> bool:
        return (await community.points("owner-1"))["balance"] == 3

    await wait_until(granted)
    assert (await community.points("booker-1"))["balance"] == 0


async def test_reversal_claws_back_even_spent_points_and_the_statement_says_why(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(1000)
    await community.rule(trigger="timebank.service.confirmed.v1", points=20, per_hour=True, code="tb")
    transfer = await _confirmed(community, "vol-2", 120)

    async def earned() -> bool:
        return (await community.points("vol-2"))["balance"] == 40

    await wait_until(earned)
    reward = await community.reward(points=30)
    r = await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("vol-2"))
    assert r.status_code == 201
    await community.publish(
        "timebank.events",
        "timebank.transfer.reversed.v1",
        str(uuid.uuid4()),
        {
            "transfer_id": str(uuid.uuid4()),
            "reverses_transfer_id": transfer,
            "volunteer_id": "vol-2",
            "minutes": 120,
            "reason": "登记有误",
        },
    )

    async def clawed() -> bool:
        return (await community.points("vol-2"))["balance"] < 10

    await wait_until(clawed)
    points = await community.points("vol-2")
    assert (points["balance"], points["debt"]) == (-30, 30)
    latest = (await community.statement("vol-2"))[0]
    assert (latest["kind"], latest["delta"], latest["balance_after"]) == ("reversal", -40, -30)
    assert transfer in latest["reason"] and "登记有误" in latest["reason"]
    budget = await community.budget()
    assert (budget["granted"], budget["clawed_back"], budget["remaining"]) == (40, 40, 1000)
    # Cancelling the redemption puts 30 points back in lots, but they pay the debt before any spending.
    cancel = await community.client.post(f"/redemptions/{r.json()['id']}/cancel", headers=community.resident("vol-2"))
    assert cancel.status_code == 200
    assert (await community.points("vol-2"))["balance"] == 0
    cheap = await community.reward(points=1)
    again = await community.client.post("/redemptions", json={"reward_id": cheap["id"]}, headers=community.resident("vol-2"))
    assert (again.status_code, problem_type(again)) == (409, "governance/insufficient-points")


async def test_service_redemption_saga_captured_by_property_or_released_on_failure(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(1000)
    await community.give("res-s", 50)
    reward = await community.reward(kind="service", service_code="cleaning-2h", points=20, name="保洁两小时")
    headers = community.resident("res-s")
    first = (await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=headers)).json()
    second = (await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=headers)).json()
    reserved = {e["redemption_id"]: e for e in await community.outbox_events("governance.redemption.reserved.v1")}
    assert reserved[first["id"]] == {
        "redemption_id": first["id"],
        "community": community.id,
        "resident_id": "res-s",
        "reward_id": reward["id"],
        "fulfilment": "property",
        "service_code": "cleaning-2h",
        "points": 20,
        "quantity": 1,
    }
    await community.publish(
        "property.events",
        "property.redemption.fulfilled.v1",
        first["id"],
        {"redemption_id": first["id"], "ticket_id": "ticket-9"},
    )
    await community.publish(
        "property.events",
        "property.redemption.failed.v1",
        second["id"],
        {"redemption_id": second["id"], "reason": "no cleaner this week"},
    )

    async def settled() -> bool:
        r = await community.client.get("/me/redemptions", params={"status": "reserved"}, headers=headers)
        return r.json()["items"] == []

    await wait_until(settled)
    one = (await community.client.get(f"/redemptions/{first['id']}", headers=headers)).json()
    two = (await community.client.get(f"/redemptions/{second['id']}", headers=headers)).json()
    assert (one["status"], one["ticket_id"]) == ("captured", "ticket-9")
    assert two["status"] == "released" and "no cleaner" in two["release_reason"]
    points = await community.points("res-s")
    assert (points["balance"], points["reserved"]) == (30, 0)
    # A late answer for a settled redemption changes nothing.
    await community.publish(
        "property.events", "property.redemption.fulfilled.v1", second["id"], {"redemption_id": second["id"], "ticket_id": "late"}
    )
    captured = await community.outbox_events("governance.redemption.captured.v1")
    assert [e["redemption_id"] for e in captured] == [first["id"]]
    released = await community.outbox_events("governance.redemption.released.v1")
    assert [e["redemption_id"] for e in released] == [second["id"]]


async def test_points_payment_is_captured_or_rejected_and_answered_once(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(1000)
    await community.give("res-pay", 30)
    for payment, points in (("pay-1", 25), ("pay-2", 25)):
        await community.publish(
            "property.events",
            "property.points_payment.requested.v1",
            payment,
            {"payment_id": f"{community.id}-{payment}", "resident_id": "res-pay", "points": points, "order_id": "o-1"},
        )
    # A redelivered request (new event id, same payment) is answered once.
    await community.publish(
        "property.events",
        "property.points_payment.requested.v1",
        "pay-1",
        {"payment_id": f"{community.id}-pay-1", "resident_id": "res-pay", "points": 25, "order_id": "o-1"},
    )

    async def answered() -> bool:
        return len(await community.outbox_events("governance.points_payment.settled.v1")) >= 2

    await wait_until(answered)
    settled = {
        e["payment_id"].removeprefix(community.id + "-"): (e["status"], e["reason"])
        for e in await community.outbox_events("governance.points_payment.settled.v1")
    }
    assert settled == {"pay-1": ("captured", None), "pay-2": ("rejected", "insufficient-points")}
    assert (await community.points("res-pay"))["balance"] == 5
    assert len(await community.outbox_events("governance.points_payment.settled.v1")) == 2


async def test_household_view_sums_members_and_hides_other_households(community: Community) -> None:
    await consumers_ready(community.svc)
    await community.fund(1000)
    for resident, household in (("m-1", "h-1"), ("m-2", "h-1"), ("m-3", "h-2")):
        await community.publish(
            "property.events",
            "property.resident.registered.v1",
            resident,
            {
                "resident_id": resident,
                "household_id": household,
                "building_id": "b1",
                "name": "测试",
                "phone": "17000000000",
                "roles": ["resident"],
            },
        )
    await community.give("m-1", 10)
    await community.give("m-2", 15)
    await community.give("m-3", 40)

    async def registered() -> bool:
        r = await community.client.get("/households/h-2/points", headers=community.worker)
        return r.status_code == 200

    await wait_until(registered)
    mine = await community.client.get("/households/h-1/points", headers=community.resident("m-2"))
    assert mine.status_code == 200
    assert mine.json() == {
        "household_id": "h-1",
        "balance": 25,
        "members": [{"resident_id": "m-1", "balance": 10}, {"resident_id": "m-2", "balance": 15}],
    }
    theirs = await community.client.get("/households/h-2/points", headers=community.resident("m-1"))
    assert (theirs.status_code, problem_type(theirs)) == (404, "governance/household-not-found")


async def test_leaderboard_is_served_from_redis_and_rebuilt_when_redis_is_empty(community: Community) -> None:
    await community.fund(1000)
    await community.give("lb-a", 30)
    await community.give("lb-b", 50)
    await community.give("lb-c", 10)
    await community.award("lb-c", -5, reason="违规停车")
    headers = community.resident("lb-a")
    first = (await community.client.get("/leaderboard", headers=headers)).json()
    assert [(r["rank"], r["resident_id"], r["points"]) for r in first["rows"]] == [
        (1, "lb-b", 50),
        (2, "lb-a", 30),
        (3, "lb-c", 5),
    ]
    assert first["from_cache"] is False and first["total"] == 85
    top_two = (await community.client.get("/leaderboard?limit=2", headers=headers)).json()
    assert len(top_two["rows"]) == 2 and top_two["from_cache"] is True and top_two["total"] == 85
    second = (await community.client.get("/leaderboard", headers=headers)).json()
    assert second["from_cache"] is True and second["rows"] == first["rows"]
    await community.svc.state.redis.delete(leaderboard.key(community.id, first["month"]))  # Redis lost it
    rebuilt = (await community.client.get("/leaderboard", headers=headers)).json()
    assert rebuilt["from_cache"] is False and rebuilt["rows"] == first["rows"] and rebuilt["total"] == 85
    # An award through the API drops the cached month, so the next read is fresh.
    await community.give("lb-c", 50)
    fresh = (await community.client.get("/leaderboard", headers=headers)).json()
    assert fresh["rows"][0] == {"rank": 1, "resident_id": "lb-c", "points": 55} and fresh["total"] == 135


@pytest.fixture
async def quick_timeout(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(
        stack, "governance", create_app, Settings, redemption_timeout_s=1, redemption_timeout_job_every_s=0.2
    ) as svc:
        yield svc


async def test_redemption_with_no_answer_from_property_is_released_after_the_timeout(
    stack: TestStack, quick_timeout: RunningService
) -> None:
    community = Community(stack=stack, svc=quick_timeout, id=f"c-{uuid.uuid4().hex[:10]}")
    await community.fund(100)
    await community.give("res-t", 20)
    reward = await community.reward(kind="service", service_code="repair-1h", points=20)
    r = await community.client.post("/redemptions", json={"reward_id": reward["id"]}, headers=community.resident("res-t"))
    assert r.status_code == 201
    assert (await community.points("res-t"))["balance"] == 0

    async def released() -> bool:
        got = await community.client.get(f"/redemptions/{r.json()['id']}", headers=community.resident("res-t"))
        return bool(got.json()["status"] == "released")

    await wait_until(released, timeout=15)
    got = (await community.client.get(f"/redemptions/{r.json()['id']}", headers=community.resident("res-t"))).json()
    assert got["release_reason"] == "timeout"
    assert (await community.points("res-t"))["balance"] == 20
