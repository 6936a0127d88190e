"""`make run`'s demo community, seeded through the gateway into the whole platform, then used by its
demo people and machines the way the README tells a newcomer to: codes, passwords, client secrets."""

from __future__ import annotations

import importlib
from typing import Any

import httpx

from deploy.local.demo_community import CITY_SYNC_CLIENTS, COMMUNITY, GATE_DEVICES, resident, staff
from gateway import demo as gateway_demo
from tests.e2e.conftest import Platform, bearer, expect, wait_until

SEED_ORDER = ("property", "timebank", "parking", "governance", "citysync")


async def test_the_demo_community_is_seeded_and_usable_through_the_gateway(platform: Platform) -> None:
    def token_for(subject: str, roles: list[str], community: str = COMMUNITY) -> str:
        return platform.stack.token(subject, *roles, community=community)

    # The gateway serves no community its database does not hold: the platform administrator's first.
    await gateway_demo.seed_community(platform.client, token_for)
    base = str(platform.client.base_url).rstrip("/")
    for name in SEED_ORDER:
        module = importlib.import_module(f"services.{name}.demo")
        async with httpx.AsyncClient(base_url=f"{base}/api/{name}", timeout=30) as client:
            await module.seed_demo(client, token_for)
    await gateway_demo.seed_demo(platform.client, token_for)
    client = platform.client

    # A demo elder logs in by code and finds her time-bank membership and her household's ticket.
    wang = resident("王秀英")
    expect(await client.post("/auth/otp", json={"community": COMMUNITY, "phone": wang.phone}), 202)
    code = platform.sender.sent[wang.phone][-1]
    tokens = expect(
        await client.post("/auth/token", json={"grant_type": "otp", "community": COMMUNITY, "phone": wang.phone, "code": code}),
        200,
    )
    as_wang = bearer(tokens["access_token"])
    member = expect(await client.get("/api/timebank/members/me", headers=as_wang), 200)
    assert (member["member_id"], member["is_elder"], member["priority_elder"]) == (wang.id, True, True)
    tickets = expect(await client.get("/api/property/tickets", headers=as_wang), 200)
    assert tickets["items"] and {t["resident_id"] for t in tickets["items"]} == {wang.id}

    # A steward logs in with the demo password and sees the queue of their buildings.
    wu = staff("steward.wu")
    tokens = expect(
        await client.post(
            "/auth/token",
            json={"grant_type": "password", "community": COMMUNITY, "username": wu.username, "password": wu.password},
        ),
        200,
    )
    queue = expect(await client.get("/api/property/queue", params={"scope": "mine"}, headers=bearer(tokens["access_token"])), 200)
    assert queue["items"] and {t["assignee_id"] for t in queue["items"]} == {wu.id}

    # The demo gate camera logs in with its client secret and is known to parking.
    gate_id = GATE_DEVICES[0][0]
    tokens = expect(
        await client.post(
            "/auth/token",
            json={
                "grant_type": "client_credentials",
                "community": COMMUNITY,
                "client_id": gate_id,
                "client_secret": gateway_demo.client_secret(gate_id),
            },
        ),
        200,
    )
    entry = await client.post("/api/parking/gate/entries", json={"plate": "浙K9E771"}, headers=bearer(tokens["access_token"]))
    assert entry.status_code == 200, entry.text
    assert entry.json()["decision"] in ("open", "refused")

    # The demo city client logs in with its client secret and pulls every granted feed.
    city_id = CITY_SYNC_CLIENTS[0][0]
    tokens = expect(
        await client.post(
            "/auth/token",
            json={
                "grant_type": "client_credentials",
                "community": COMMUNITY,
                "client_id": city_id,
                "client_secret": gateway_demo.client_secret(city_id),
            },
        ),
        200,
    )
    as_city = bearer(tokens["access_token"])

    async def feed(scene: str) -> dict[str, Any]:
        found: dict[str, Any] = expect(await client.get(f"/city/v1/feeds/{scene}", headers=as_city), 200)
        return found

    async def timebank_feed_filled() -> bool:
        return len((await feed("timebank"))["records"]) >= 5  # the demo's five confirmed services

    await wait_until(timebank_feed_filled, what="the demo's services in the city's time-bank feed")
    listed = expect(await client.get("/city/v1/feeds", headers=as_city), 200)
    assert {"timebank", "parking", "property", "governance"} <= {f["scene"] for f in listed["items"]}
    assert wang.phone not in str(await feed("property")) and wang.name not in str(await feed("property"))
