"""Service pledges end to end with the real property service (both apps, one broker namespace): an
offer meeting its minimum becomes a catalogue item in property and one order per household, paid on
the paid-service path; a redelivered order opens nothing more."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from deploy.local.demo_community import COMMUNITY, resident, staff
from services.governance.app import create_app
from services.governance.settings import Settings
from services.property import demo as property_demo
from services.property import pledges as property_pledges
from services.property.app import create_app as create_property_app
from services.property.events import PledgeOrdered
from services.property.models import TICKETS
from services.property.settings import Settings as PropertySettings
from tests.governance.conftest import consumers_ready, wait_until
from tests.support.harness import run_service
from tests.support.stack import TestStack, new_namespace


async def test_a_reached_offer_opens_one_paid_order_per_household_in_property(stack: TestStack) -> None:
    namespace = new_namespace()

    def headers(subject: str, roles: list[str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {stack.token(subject, *roles, community=COMMUNITY)}"}

    async with (
        run_service(stack, "property", create_property_app, PropertySettings, namespace=namespace) as prop,
        run_service(stack, "governance", create_app, Settings, namespace=namespace) as gov,
    ):
        await asyncio.gather(consumers_ready(prop), consumers_ready(gov))
        await property_demo.seed_demo(prop.client, lambda s, r: stack.token(s, *r, community=COMMUNITY))
        worker = headers(staff("worker.feng").id, ["community_worker"])
        code = f"meal-{uuid.uuid4().hex[:8]}"
        body = {
            "title": "老年助餐 午餐",
            "provider": "邻里食堂",
            "service_code": code,
            "price_fen": 1500,
            "min_households": 2,
            "deadline": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }
        r = await gov.client.post("/pledge-offers", json=body, headers=worker)
        assert r.status_code == 201, r.text
        offer_id = r.json()["id"]
        sun, zhou = resident("孙丽"), resident("周杰")
        as_sun, as_zhou = headers(sun.id, list(sun.roles)), headers(zhou.id, list(zhou.roles))

        def pledged(who: dict[str, str]) -> Any:
            async def done() -> bool:
                # 403 no-household until governance has learnt the resident from property's events.
                r = await gov.client.post(f"/pledge-offers/{offer_id}/pledges", headers=who)
                return r.status_code == 201

            return done

        await wait_until(pledged(as_sun), timeout=30, interval=0.2)
        await wait_until(pledged(as_zhou), timeout=30, interval=0.2)

        async def service_tickets(who: dict[str, str]) -> list[dict[str, Any]]:
            items = (await prop.client.get("/tickets", headers=who)).json()["items"]
            return [t for t in items if t.get("service_code") == code]

        async def both_ordered() -> bool:
            return len(await service_tickets(as_sun)) == 1 and len(await service_tickets(as_zhou)) == 1

        await wait_until(both_ordered, timeout=60, interval=0.2)
        catalogue = (await prop.client.get("/catalogue", headers=as_sun)).json()
        items = catalogue["items"] if isinstance(catalogue, dict) else catalogue
        assert [(i["code"], i["price_fen"]) for i in items if i["code"] == code] == [(code, 1500)]
        [order] = await service_tickets(as_sun)
        assert order["quote_fen"] == 1500
        # Paid on the existing path, by money here (points go through governance as for any order).
        r = await prop.client.post(
            f"/tickets/{order['id']}/payments",
            json={"method": "money"},
            headers={**as_sun, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code in (200, 201), r.text

        # A redelivered order (same pledge) opens nothing more.
        household = property_demo.household_id(sun.building, sun.unit)
        again = PledgeOrdered(
            pledge_id=f"{offer_id}:{household}",
            offer_id=offer_id,
            community=COMMUNITY,
            household_id=household,
            resident_id=sun.id,
            service_code=code,
            title=body["title"],
            provider=body["provider"],
            price_fen=1500,
        )
        async with prop.state.sessionmaker() as session, session.begin():
            await property_pledges.open_pledge_order(session, again)
        async with prop.state.sessionmaker() as session, session.begin():
            count = await session.scalar(select(func.count()).select_from(TICKETS).where(TICKETS.c.service_code == code))
        assert count == 2
