"""Property refuses malformed input with a 422 problem naming the field, never a 500, and refuses
fields it does not know instead of ignoring them (a new ticket cannot arrive `closed`)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.property.conftest import World
from tests.support.harness import RunningService
from tests.support.refusals import assert_refused, post_json


async def row_count(svc: RunningService, table: str) -> int:
    async with svc.state.sessionmaker() as session, session.begin():
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": "水管\x00漏水"}, "description"),
        ({"description": "水管\ud800漏水"}, "description"),
        ({"status": "closed"}, "status"),
        ({"preferred_time": "0001-01-01T07:00:00+08:00"}, "preferred_time"),
        ({"photo_ids": ["4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b\x00"]}, "photo_ids"),
    ],
)
async def test_a_ticket_with_nul_text_or_an_unknown_field_is_refused(
    world: World, svc: RunningService, change: dict[str, Any], field: str
) -> None:
    body = {"category": "repair", "description": "水管漏水", **change}
    r = await post_json(world.client, "/tickets", body, world.as_resident("wang"))
    assert r.status_code == 422
    named = [e["field"] for e in r.json()["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in named), named
    assert await row_count(svc, "tickets") == 0


async def test_a_building_with_a_nul_in_its_name_is_refused(world: World, svc: RunningService) -> None:
    before = await row_count(svc, "buildings")
    r = await world.client.post("/buildings", json={"code": "B9", "name": "九\x00幢"}, headers=world.as_admin())
    assert_refused(r, "name")
    assert await row_count(svc, "buildings") == before


@pytest.mark.parametrize(
    ("change", "field"),
    [({"overall": True}, "overall"), ({"speed": True}, "speed"), ({"overall": 4.5}, "overall"), ({"speed": "5"}, "speed")],
)
async def test_a_rating_takes_numbers_only(world: World, change: dict[str, Any], field: str) -> None:
    body = {"overall": 5, "speed": 5, **change}
    r = await world.client.post(
        "/tickets/4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b/rate", json=body, headers=world.as_resident("wang")
    )
    assert_refused(r, field)


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "2100-01"])
async def test_steward_figures_for_a_month_outside_2000_to_2099_are_refused(world: World, month: str) -> None:
    r = await world.client.get(
        "/staff/4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b/figures", params={"month": month}, headers=world.as_admin()
    )
    assert_refused(r, "month", "query")
