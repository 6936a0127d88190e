"""The demo seed runs against a fresh service; the demo consumer then pulls the demo community's
events, and no demo resident's name or phone number is in what it gets."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from deploy.local import demo_community as demo
from services.citysync.app import create_app
from services.citysync.demo import seed_demo
from services.citysync.domain import SCENES
from services.citysync.settings import Settings
from services.kit.envelope import CloudEvent
from tests.citysync import factory
from tests.citysync.conftest import Community, ingest_all
from tests.support.harness import run_service
from tests.support.stack import TestStack


def demo_events() -> list[CloudEvent]:
    now = datetime.now(UTC)
    building = {b.code: b.id for b in demo.BUILDINGS}
    events = []
    for p in demo.RESIDENTS:
        events.append(
            factory.event(
                "property.resident.registered.v1",
                {
                    "resident_id": p.id,
                    "community": demo.COMMUNITY,
                    "household_id": demo.demo_id("household", p.unit),
                    "building_id": building[p.building],
                    "name": p.name,
                    "phone": p.phone,
                    "roles": list(p.roles),
                    "birth_date": p.birth_date.isoformat(),
                },
                p.id,
                "/services/property",
                now,
            )
        )
    for s in demo.STAFF:
        events.append(
            factory.event(
                "property.staff.registered.v1",
                {"staff_id": s.id, "community": demo.COMMUNITY, "name": s.name, "username": s.username, "roles": list(s.roles)},
                s.id,
                "/services/property",
                now,
            )
        )
    volunteer, elder = demo.resident("刘晓燕"), demo.resident("王秀英")
    events.append(
        factory.event(
            "timebank.service.confirmed.v1",
            {
                "transfer_id": str(uuid.uuid4()),
                "community": demo.COMMUNITY,
                "volunteer_id": volunteer.id,
                "elder_id": elder.id,
                "minutes": 60,
                "service_type": "companionship",
                "confirmed_at": now.isoformat(),
            },
            "t",
            "/services/timebank",
            now,
        )
    )
    return events


async def test_seed_demo_registers_the_city_consumer_with_every_feed(stack: TestStack) -> None:
    async with run_service(stack, "citysync", create_app, Settings) as svc:
        token_for = lambda subject, roles: stack.token(subject, *roles, community=demo.COMMUNITY)  # noqa: E731
        await seed_demo(svc.client, token_for)
        await seed_demo(svc.client, token_for)  # an interrupted seed can run again
        worker = stack.auth(demo.staff("worker.he").id, "community_worker", community=demo.COMMUNITY)
        consumers = (await svc.client.get("/consumers", headers=worker)).json()["items"]
        assert [(c["id"], c["status"]) for c in consumers] == [(cid, "active") for cid, _ in demo.CITY_SYNC_CLIENTS]
        assert sorted(g["scene"] for g in consumers[0]["grants"] if g["revoked_at"] is None) == sorted(SCENES)

        await ingest_all(svc, demo_events())
        community = Community(stack, svc, id=demo.COMMUNITY)
        headers = community.consumer_auth(demo.CITY_SYNC_CLIENTS[0][0])
        records = [r for scene in SCENES for r in await community.pull_all(headers, scene)]
        assert len(records) == len(demo.RESIDENTS) + 1  # staff registrations are not exported
        blob = json.dumps(records, ensure_ascii=False)
        for p in demo.RESIDENTS:
            assert p.name not in blob and p.phone not in blob and p.id not in blob
        for s in demo.STAFF:
            assert s.name not in blob and s.username not in blob
        bands = {r["data"]["age_band"] for r in records if r["record_type"] == "resident_registered"}
        assert "80-84" in bands or "85-89" in bands
