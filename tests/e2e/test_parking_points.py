"""Scenario 4: a shared parking spot that was used earns its owner governance points."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Community, wait_until


def a_plate() -> str:
    return "浙K" + "".join(random.choices("0123456789", k=5))


async def test_a_completed_booking_earns_the_spot_owner_points(community: Community) -> None:
    owner = await community.resident("周车主")
    booker = await community.resident("刘邻居")
    steward = await community.staff("steward")
    worker = await community.staff("community_worker")
    # The gate camera is a machine client of the gateway, registered in parking by its subject.
    gate_id, gate = await community.machine("gate-east", "gate_device")
    await community.call("POST", "/api/parking/gate-devices", steward.auth, {"id": gate_id, "name": "东门道闸"}, expected=(201,))

    await community.call("POST", "/api/governance/budget/fundings", worker.auth, {"points": 100})
    await community.call(
        "POST",
        "/api/governance/rules",
        worker.auth,
        {"code": "shared-spot", "name": "共享车位", "trigger": "parking.booking.completed.v1", "points": 5},
        expected=(201,),
    )

    # The owner lends the spot (verified by the steward) for a day.
    spot = await community.call(
        "POST", "/api/parking/spots", owner.auth, {"code": "B1-017", "location": "1幢地下车库"}, expected=(201,)
    )
    assert (spot["owner_id"], spot["status"]) == (owner.id, "pending")
    await community.call("POST", f"/api/parking/spots/{spot['id']}/verification", steward.auth, {"approve": True})
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    await community.call(
        "POST",
        f"/api/parking/spots/{spot['id']}/windows",
        owner.auth,
        {
            "kind": "one_off",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "price_fen_per_30min": 300,
        },
        expected=(201,),
    )

    # A neighbour books an hour of it and pays.
    plate = a_plate()
    booking = await community.call(
        "POST",
        "/api/parking/bookings",
        booker.auth,
        {"spot_id": spot["id"], "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat(), "plate": plate},
        expected=(201,),
    )
    assert (booking["status"], booking["fee_fen"]) == ("held", 600)
    paid = await community.call("POST", f"/api/parking/bookings/{booking['id']}/payment", booker.auth, {})
    assert paid["status"] == "confirmed"

    # The gate reads the plate on the way in and out.
    entry = await community.call("POST", "/api/parking/gate/entries", gate, {"plate": plate})
    assert (entry["decision"], entry["booking_id"]) == ("open", booking["id"])
    exit_ = await community.call("POST", "/api/parking/gate/exits", gate, {"plate": plate})
    assert (exit_["decision"], exit_["booking_id"], exit_["overstay_fen"]) == ("open", booking["id"], 0)
    done = await community.call("GET", f"/api/parking/bookings/{booking['id']}", booker.auth)
    assert (done["status"], done["fee_fen"], done["owner_share_fen"]) == ("completed", 600, 420)

    async def owner_points() -> dict[str, Any]:
        found: dict[str, Any] = await community.call("GET", "/api/governance/me/points", owner.auth)
        return found

    async def granted() -> bool:
        return bool((await owner_points())["balance"] == 5)

    await wait_until(granted, what="governance granting the owner points for the used window")
    statement = await community.call("GET", "/api/governance/me/statement", owner.auth)
    assert [(e["kind"], e["delta"], e["reason"]) for e in statement["items"]] == [("grant", 5, "共享车位")]
    # The booker earns nothing for parking; the owner's earnings show the share in fen.
    assert (await community.call("GET", "/api/governance/me/points", booker.auth))["balance"] == 0
    earnings = await community.call("GET", "/api/parking/earnings", owner.auth)
    assert (earnings["total_owner_share_fen"], earnings["completed_bookings"]) == (420, 1)
