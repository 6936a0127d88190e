"""Governance refuses malformed input with a 422 problem naming the field, never a 500, and
refuses fields it does not know instead of ignoring them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.governance.conftest import Community
from tests.support.refusals import assert_refused

AWARD = {"resident_id": "r-1", "points": 20, "reason": "参与楼道清扫"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": "清扫\x00楼道"}, "reason"),
        ({"resident_id": "r\x00-1"}, "resident_id"),
        ({"points": True}, "points"),
        ({"points": "20"}, "points"),
        ({"status": "applied"}, "status"),
    ],
)
async def test_an_award_with_nul_text_a_bool_for_points_or_an_unknown_field_is_refused(
    community: Community, change: dict[str, Any], field: str
) -> None:
    r = await community.client.post("/awards", json={**AWARD, **change}, headers=community.worker)
    assert_refused(r, field)
    async with community.svc.state.sessionmaker() as session, session.begin():
        rows = (await session.execute(text("SELECT id FROM gov_awards WHERE community = :c"), {"c": community.id})).all()
    assert rows == []


async def test_a_rule_with_an_unknown_field_is_refused(community: Community) -> None:
    body = {"code": "sorting", "name": "垃圾分类签到", "trigger": "checkin.garbage_sorting", "points": 5, "enabled": True}
    r = await community.client.post("/rules", json={**body, "owner": "someone-else"}, headers=community.worker)
    assert_refused(r, "owner")


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1999-12", "2100-01"])
async def test_a_leaderboard_for_a_month_outside_2000_to_2099_is_refused(community: Community, month: str) -> None:
    r = await community.client.get("/leaderboard", params={"month": month}, headers=community.resident("r-1"))
    assert_refused(r, "month", "query")


@pytest.mark.parametrize("path", ["/residents/r%00-1/points", "/residents/r%00-1/statement", "/households/h%00-1/points"])
async def test_a_person_or_household_id_with_a_nul_is_refused(community: Community, path: str) -> None:
    field = "household_id" if path.startswith("/households") else "resident_id"
    assert_refused(await community.client.get(path, headers=community.worker), field, "path")
