"""The demo seed runs against a fresh service (once property has announced the demo residents) and
its devices, passes (one with a visitor's car) and watch show through the API."""

from __future__ import annotations

from deploy.local import demo_community as demo
from services.security.demo import seed_demo
from tests.security.conftest import Community
from tests.support.harness import RunningService
from tests.support.stack import TestStack


async def test_seed_demo_creates_devices_passes_and_an_elder_in_the_watch(stack: TestStack, security: RunningService) -> None:
    c = Community(stack=stack, svc=security, id=demo.COMMUNITY)
    wang, host = demo.resident("王秀英"), demo.resident(demo.VISITOR_HOST)
    b1 = next(b.id for b in demo.BUILDINGS if b.code == "B1")
    b3 = next(b.id for b in demo.BUILDINGS if b.code == "B3")
    await c.resident(wang.id, household_id=demo.demo_id("household", "B1-101"), building_id=b1)
    await c.resident(host.id, household_id=demo.demo_id("household", "B3-301"), building_id=b3)
    await seed_demo(security.client, lambda subject, roles: stack.token(subject, *roles, community=demo.COMMUNITY))
    devices = (await c.client.get("/devices", params={"limit": 200}, headers=c.staff)).json()["items"]
    assert sorted(d["id"] for d in devices) == sorted(d[0] for d in demo.SECURITY_DEVICES)
    as_wang = c.auth(wang.id, *wang.roles)
    passes = (await c.client.get("/passes", headers=as_wang)).json()["items"]
    assert len(passes) == 1 and passes[0]["building_id"] == b1 and passes[0]["max_entries"] == 2
    assert passes[0]["plate"] is None
    [car] = (await c.client.get("/passes", headers=c.auth(host.id, *host.roles))).json()["items"]
    assert (car["building_id"], car["plate"], car["revoked_at"]) == (b3, demo.VISITOR_PLATE, None)
    published = await c.rows(
        "SELECT data FROM kit_outbox WHERE type = 'security.pass.car_allowed.v1' AND data->>'community' = :community"
    )
    assert [(row.data["pass_id"], row.data["plate"]) for row in published] == [(car["id"], demo.VISITOR_PLATE)]
    watches = (await c.client.get("/watches", headers=as_wang)).json()["items"]
    assert [(w["relative_id"], w["hours"], bool(w["consented_at"])) for w in watches] == [(demo.RELATIVE_OF_WANG, 24, True)]
