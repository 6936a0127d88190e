"""The time bank refuses malformed input with a 422 problem naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.refusals import assert_refused
from tests.timebank.community import WORKER, Community

CARE = {"service_type": "companionship", "starts_at": "2026-03-01T09:00:00+08:00", "place": "3栋501", "minutes_estimated": 60}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"place": "3栋\x00501"}, "place"),
        ({"note": "bring\x00tea"}, "note"),
        ({"starts_at": "0001-01-01T07:00:00+08:00"}, "starts_at"),
        ({"starts_at": "0001-01-01T00:00:00"}, "starts_at"),
        ({"starts_at": "9999-12-31T23:59:59-12:00"}, "starts_at"),
        ({"minutes_estimated": True}, "minutes_estimated"),
    ],
)
async def test_a_care_request_with_nul_text_a_far_off_start_or_a_bool_for_minutes_is_refused(
    community: Community, change: dict[str, Any], field: str
) -> None:
    await community.enrol("elder", elder=True)
    r = await community.client.post("/care-requests", json={**CARE, **change}, headers=community.h("elder"))
    assert_refused(r, field)
    assert await community.sql("SELECT id FROM tb_care_requests") == []


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "1999-12", "2026-13"])
async def test_a_summary_for_a_month_outside_2000_to_2099_is_refused(community: Community, month: str) -> None:
    r = await community.client.get("/summary", params={"month": month}, headers=community.h(WORKER))
    assert_refused(r, "month", "query")
