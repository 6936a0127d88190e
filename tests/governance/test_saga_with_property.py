"""The redemption saga end to end with the real property service (both apps, one broker namespace).

Property's demo seed registers the demo community's residents and its service catalogue; governance
learns the households from property's events, reserves points, property opens a prepaid ticket for
the service (or says why not), and governance captures (or releases).
"""

from __future__ import annotations

import asyncio
from typing import Any

from deploy.local.demo_community import COMMUNITY, resident, staff
from services.governance.app import create_app
from services.governance.settings import Settings
from services.property import demo as property_demo
from services.property.app import create_app as create_property_app
from services.property.settings import Settings as PropertySettings
from tests.governance.conftest import consumers_ready, wait_until
from tests.support.harness import run_service
from tests.support.stack import TestStack, new_namespace


async def test_service_redemption_is_fulfilled_by_property_and_a_bad_code_is_released(stack: TestStack) -> None:
    namespace = new_namespace()

    def token_for(subject: str, roles: list[str]) -> str:
        return stack.token(subject, *roles, community=COMMUNITY)

    async with (
        run_service(stack, "property", create_property_app, PropertySettings, namespace=namespace) as prop,
        run_service(stack, "governance", create_app, Settings, namespace=namespace) as gov,
    ):
        await asyncio.gather(consumers_ready(prop), consumers_ready(gov))
        await property_demo.seed_demo(prop.client, token_for)
        worker = {"Authorization": f"Bearer {token_for(staff('worker.feng').id, ['community_worker'])}"}
        sun = resident("孙丽")
        as_sun = {"Authorization": f"Bearer {token_for(sun.id, list(sun.roles))}"}

        async def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
            r = await gov.client.post(path, json=body, headers=headers)
            assert r.status_code in (200, 201), r.text
            return dict(r.json())

        await post("/budget/fundings", {"points": 1000}, worker)
        await post("/awards", {"resident_id": sun.id, "points": 50, "reason": "楼道清洁"}, worker)
        haircut = await post(
            "/rewards",
            {"code": "haircut", "name": "上门理发", "kind": "service", "service_code": "haircut-home", "points": 30},
            worker,
        )
        unknown = await post(
            "/rewards",
            {"code": "massage", "name": "推拿", "kind": "service", "service_code": "no-such-service", "points": 10},
            worker,
        )
        good = await post("/redemptions", {"reward_id": haircut["id"]}, as_sun)
        bad = await post("/redemptions", {"reward_id": unknown["id"]}, as_sun)

        async def both_settled() -> bool:
            r = await gov.client.get("/me/redemptions", params={"status": "reserved"}, headers=as_sun)
            return r.json()["items"] == []

        await wait_until(both_settled, timeout=60, interval=0.2)
        captured = (await gov.client.get(f"/redemptions/{good['id']}", headers=as_sun)).json()
        released = (await gov.client.get(f"/redemptions/{bad['id']}", headers=as_sun)).json()
        assert captured["status"] == "captured" and captured["ticket_id"]
        assert released["status"] == "released" and "unknown-service-code" in released["release_reason"]
        points = (await gov.client.get("/me/points", headers=as_sun)).json()
        assert (points["balance"], points["reserved"]) == (20, 0)
        # Property's registry told governance the households.
        household = property_demo.household_id(sun.building, sun.unit)

        async def household_known() -> bool:
            r = await gov.client.get(f"/households/{household}/points", headers=as_sun)
            return r.status_code == 200

        await wait_until(household_known, timeout=30, interval=0.2)
        view = (await gov.client.get(f"/households/{household}/points", headers=as_sun)).json()
        assert view["balance"] == 20 and sun.id in {m["resident_id"] for m in view["members"]}
