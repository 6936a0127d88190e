"""The demo seed runs against a fresh service and its data is visible through the API."""

from __future__ import annotations

from deploy.local.demo_community import BUILDINGS, COMMUNITY, RESIDENTS, staff
from services.property.demo import seed_demo
from services.property.domain import Status
from tests.support.harness import RunningService
from tests.support.stack import TestStack


async def test_seed_demo_creates_registry_and_tickets_in_every_status(stack: TestStack, svc: RunningService) -> None:
    await seed_demo(svc.client, lambda subject, roles: stack.token(subject, *roles, community=COMMUNITY))
    admin = stack.auth(staff("admin.qian").id, "property_admin", community=COMMUNITY)
    buildings = (await svc.client.get("/buildings", headers=admin)).json()["items"]
    assert {b["id"] for b in buildings} == {b.id for b in BUILDINGS}
    assert all(b["steward_id"] and b["backup_steward_id"] for b in buildings)
    residents = (await svc.client.get("/residents", params={"limit": 50}, headers=admin)).json()["items"]
    assert {r["id"] for r in residents} == {p.id for p in RESIDENTS}
    assert {r["owner"] for r in residents} == {True, False}
    households = (await svc.client.get("/households", params={"limit": 50}, headers=admin)).json()["items"]
    assert all(h["exclusive_area"] > 0 and h["sold"] for h in households)
    tickets = (await svc.client.get("/tickets", params={"limit": 50}, headers=admin)).json()["items"]
    assert {t["status"] for t in tickets} == {s.value for s in Status}
    wu = stack.auth(staff("steward.wu").id, "steward", community=COMMUNITY)
    queue = (await svc.client.get("/queue", headers=wu)).json()["items"]
    assert queue, "the steward's queue should not be empty"
    community_queue = (await svc.client.get("/queue", params={"scope": "community"}, headers=wu)).json()["items"]
    assert len(community_queue) == 1
