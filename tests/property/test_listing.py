"""The ticket lists a dashboard asks: filters, unit search and sorts, declared and validated, paged
by a cursor that belongs to its sort."""

from __future__ import annotations

from typing import Any

from tests.property.conftest import World


async def _all_pages(world: World, path: str, params: dict[str, Any], headers: dict[str, str]) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        r = await world.client.get(path, params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert r.status_code == 200, r.text
        ids += [t["id"] for t in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids


async def test_filters_by_building_category_and_unit_each_narrow_the_list(world: World) -> None:
    admin = world.as_admin()
    b1 = [await world.submit("wang"), await world.submit("wang", category="cleaning")]
    b2 = [await world.submit("li"), await world.submit("li", category="cleaning")]
    newest_first = [t["id"] for t in reversed(b1 + b2)]
    assert await _all_pages(world, "/tickets", {}, admin) == newest_first
    by_building = await _all_pages(world, "/tickets", {"building_id": world.buildings["B2"]}, admin)
    assert by_building == [b2[1]["id"], b2[0]["id"]]
    cleaning = await _all_pages(world, "/tickets", {"category": "cleaning"}, admin)
    assert cleaning == [b2[1]["id"], b1[1]["id"]]
    assert await _all_pages(world, "/tickets", {"unit": "10"}, admin) == [b1[1]["id"], b1[0]["id"]]
    assert await _all_pages(world, "/tickets", {"unit": "201", "category": "repair"}, admin) == [b2[0]["id"]]
    # LIKE's own characters are searched for, not used as wildcards.
    assert await _all_pages(world, "/tickets", {"unit": "%"}, admin) == []
    assert await _all_pages(world, "/tickets", {"assignee_id": world.stewards["zheng"]}, admin) == by_building
    assert await _all_pages(world, "/tickets", {"breached": "true"}, admin) == []


async def test_sorts_page_in_their_own_order_and_a_cursor_belongs_to_its_sort(world: World) -> None:
    admin = world.as_admin()
    r = await world.client.put(
        "/sla-policies/repair/urgent", json={"response_minutes": 5, "resolution_minutes": 60}, headers=admin
    )
    assert r.status_code == 200, r.text
    normal = [await world.submit("wang") for _ in range(2)]
    urgent = await world.submit("wang", priority="urgent")
    assert await _all_pages(world, "/tickets", {"sort": "created_at"}, admin) == [t["id"] for t in [*normal, urgent]]
    assert await _all_pages(world, "/tickets", {"sort": "due_at"}, admin) == [t["id"] for t in [urgent, *normal]]
    assert await _all_pages(world, "/tickets", {"sort": "-due_at"}, admin) == [t["id"] for t in [normal[1], normal[0], urgent]]
    first = (await world.client.get("/tickets", params={"limit": 1, "sort": "due_at"}, headers=admin)).json()
    r = await world.client.get("/tickets", params={"cursor": first["next_cursor"], "sort": "created_at"}, headers=admin)
    assert r.status_code == 400
    assert r.json()["type"].endswith("invalid-cursor")


async def test_the_queue_takes_the_same_filters_and_sorts(world: World) -> None:
    wu = world.as_steward("wu")
    repair, cleaning = await world.submit("wang"), await world.submit("wang", category="cleaning")
    assert await _all_pages(world, "/queue", {}, wu) == [repair["id"], cleaning["id"]]
    assert await _all_pages(world, "/queue", {"category": "cleaning"}, wu) == [cleaning["id"]]
    assert await _all_pages(world, "/queue", {"sort": "-created_at"}, wu) == [cleaning["id"], repair["id"]]
    assert await _all_pages(world, "/queue", {"unit": "201"}, wu) == []
    everything = await _all_pages(world, "/queue", {"scope": "all", "building_id": world.buildings["B1"]}, world.as_admin())
    assert everything == [repair["id"], cleaning["id"]]


async def test_an_unknown_filter_sort_key_or_value_is_a_422_problem_naming_it(world: World) -> None:
    admin = world.as_admin()
    cases = [
        ("/tickets", {"stauts": "queued"}, "stauts"),
        ("/tickets", {"sort": "priority"}, "sort"),
        ("/tickets", {"category": "gardening"}, "category"),
        ("/queue", {"sort": "due"}, "sort"),
        ("/queue", {"order": "due_at"}, "order"),
        ("/tickets", {"unit": "x" * 33}, "unit"),
    ]
    for path, params, field in cases:
        r = await world.client.get(path, params=params, headers=admin)
        assert r.status_code == 422, (path, params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [(e["in"], e["field"]) for e in r.json()["errors"]] == [("query", field)], r.text
