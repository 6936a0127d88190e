"""The registry's part of the voting roll: areas, sales, buyer keys and owners, published as events."""

from __future__ import annotations

from tests.property.conftest import COMMUNITY, World
from tests.property.test_api import events
from tests.support.harness import RunningService


async def test_a_unit_registers_with_its_area_and_a_change_publishes_its_whole_roll_entry(
    world: World, svc: RunningService
) -> None:
    body = {"building_id": world.buildings["B1"], "unit": "102", "exclusive_area": 8950, "sold": False}
    unit = await world.post("/households", body, world.as_admin())
    assert (unit["exclusive_area"], unit["sold"], unit["buyer_key"]) == (8950, False, None)
    registered = [e for e in await events(svc, "property.household.registered.v1") if e["household_id"] == unit["id"]]
    assert [(e["exclusive_area"], e["sold"]) for e in registered] == [(8950, False)]

    r = await world.client.patch(f"/households/{unit['id']}", json={"sold": True, "buyer_key": "zhang"}, headers=world.as_admin())
    assert r.status_code == 200, r.text
    assert (r.json()["exclusive_area"], r.json()["sold"], r.json()["buyer_key"]) == (8950, True, "zhang")
    r = await world.client.patch(f"/households/{unit['id']}", json={"buyer_key": None}, headers=world.as_admin())
    assert r.json()["buyer_key"] is None
    changed = [e for e in await events(svc, "property.household.roll_changed.v1") if e["household_id"] == unit["id"]]
    assert [(e["exclusive_area"], e["sold"], e["buyer_key"]) for e in changed] == [(8950, True, "zhang"), (8950, True, None)]


async def test_a_roll_change_refuses_a_negative_area_unknown_fields_and_other_communities(world: World) -> None:
    unit = world.households["101"]
    r = await world.client.patch(f"/households/{unit}", json={"exclusive_area": -1}, headers=world.as_admin())
    assert r.status_code == 422
    r = await world.client.patch(f"/households/{unit}", json={"unit": "999"}, headers=world.as_admin())
    assert r.status_code == 422
    elsewhere = world.stack.auth(world.admin, "property_admin", community=COMMUNITY + "-other")
    r = await world.client.patch(f"/households/{unit}", json={"exclusive_area": 1}, headers=elsewhere)
    assert r.status_code == 404
    r = await world.client.patch(f"/households/{unit}", json={"exclusive_area": 1}, headers=world.as_resident("wang"))
    assert r.status_code == 403


async def test_a_resident_registers_as_owner_or_tenant_and_the_event_says_which(world: World, svc: RunningService) -> None:
    body = {"household_id": world.households["201"], "name": "租客", "phone": "17000000009"}
    tenant = await world.post("/residents", body, world.as_admin())
    owner = await world.post("/residents", {**body, "name": "业主", "phone": "17000000010", "owner": True}, world.as_admin())
    assert (tenant["owner"], owner["owner"]) == (False, True)
    published = {e["resident_id"]: e["owner"] for e in await events(svc, "property.resident.registered.v1")}
    assert (published[tenant["id"]], published[owner["id"]]) == (False, True)


async def test_an_owner_flag_change_publishes_once_and_stays_in_its_community(world: World, svc: RunningService) -> None:
    body = {"household_id": world.households["201"], "name": "租客", "phone": "17000000011"}
    tenant = await world.post("/residents", body, world.as_admin())
    path = f"/residents/{tenant['id']}"
    r = await world.client.patch(path, json={"owner": True}, headers=world.as_admin())
    assert r.status_code == 200 and r.json()["owner"] is True
    # Setting what is already set publishes nothing.
    assert (await world.client.patch(path, json={"owner": True}, headers=world.as_admin())).status_code == 200
    assert (await world.client.patch(path, json={"owner": False}, headers=world.as_admin())).json()["owner"] is False
    changed = [e for e in await events(svc, "property.resident.owner_changed.v1") if e["resident_id"] == tenant["id"]]
    assert [(e["household_id"], e["owner"]) for e in changed] == [
        (world.households["201"], True),
        (world.households["201"], False),
    ]
    elsewhere = world.stack.auth(world.admin, "property_admin", community=COMMUNITY + "-other")
    assert (await world.client.patch(path, json={"owner": True}, headers=elsewhere)).status_code == 404
    assert (await world.client.patch(path, json={"owner": True}, headers=world.as_resident("wang"))).status_code == 403
    assert (await world.client.patch(path, json={"owner": "yes"}, headers=world.as_admin())).status_code == 422
