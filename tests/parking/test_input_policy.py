"""Parking refuses malformed input with a 422 problem naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.parking.conftest import Community
from tests.support.refusals import assert_refused


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"location": "B1\x00地下一层"}, "location"),
        ({"code": "B1-\x1b[31m"}, "code"),
        ({"has_charger": 1}, "has_charger"),
        ({"owner_id": "someone-else"}, "owner_id"),
    ],
)
async def test_a_spot_with_nul_text_a_number_for_a_flag_or_an_unknown_field_is_refused(
    community: Community, change: dict[str, Any], field: str
) -> None:
    body = {"kind": "private", "code": "B1-023", "location": "B1 地下一层", **change}
    r = await community.svc.client.post("/spots", json=body, headers=community.owner_h)
    assert_refused(r, field)
    async with community.svc.state.sessionmaker() as session, session.begin():
        rows = (await session.execute(text("SELECT id FROM spots WHERE community = :c"), {"c": community.id})).all()
    assert rows == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"starts_at": "0001-01-01T07:00:00+08:00", "ends_at": "2026-03-01T10:00:00+08:00"}, "starts_at"),
        ({"starts_at": "2026-03-01T09:00:00+08:00", "ends_at": "9999-12-31T23:59:59-12:00"}, "ends_at"),
    ],
)
async def test_a_search_for_free_spots_outside_2000_to_2100_is_refused(
    community: Community, params: dict[str, str], field: str
) -> None:
    assert_refused(await community.svc.client.get("/free-spots", params=params, headers=community.booker_h), field, "query")


async def test_occupancy_for_a_day_outside_2000_to_2099_is_refused(community: Community) -> None:
    r = await community.svc.client.get("/occupancy", params={"day": "0001-01-01"}, headers=community.steward_h)
    assert_refused(r, "day", "query")
