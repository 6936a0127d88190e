"""The demo seed runs against a fresh service and its data shows through the API."""

from __future__ import annotations

from deploy.local import demo_community as demo
from services.parking.app import create_app
from services.parking.demo import seed_demo
from services.parking.settings import Settings
from tests.support.harness import run_service
from tests.support.stack import TestStack


async def test_seed_demo_creates_visible_data(stack: TestStack) -> None:
    async with run_service(stack, "parking", create_app, Settings) as svc:
        await seed_demo(svc.client, lambda subject, roles: stack.token(subject, *roles, community=demo.COMMUNITY))
        steward = stack.auth(demo.staff("steward.wu").id, "steward", community=demo.COMMUNITY)
        spots = (await svc.client.get("/spots", headers=steward)).json()["items"]
        assert len(spots) == 6 and {s["status"] for s in spots} == {"verified"}
        bookings = (await svc.client.get("/bookings", params={"role": "all"}, headers=steward)).json()["items"]
        statuses = sorted(b["status"] for b in bookings)
        assert statuses == ["active", "active", "completed", "confirmed", "confirmed"]
        events = (await svc.client.get("/gate-events", headers=steward)).json()["items"]
        assert len(events) == 4 and all(e["decision"] == "open" for e in events)
        owner = demo.resident("周杰")
        earnings = (await svc.client.get("/earnings", headers=stack.auth(owner.id, "resident", community=demo.COMMUNITY))).json()
        assert earnings["completed_bookings"] == 1 and earnings["total_owner_share_fen"] == 350
        occupancy = (await svc.client.get("/occupancy", headers=steward)).json()
        assert occupancy["occupied_now"] == 2
