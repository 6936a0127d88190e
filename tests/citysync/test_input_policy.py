"""citysync refuses malformed input with a 422 problem naming the field, never a 500."""

from __future__ import annotations

import pytest

from services.kit.pagination import encode_cursor
from tests.citysync.conftest import Community
from tests.support.refusals import assert_refused


async def test_a_consumer_named_with_a_nul_or_a_number_is_refused(community: Community) -> None:
    client, worker = community.svc.client, community.worker
    assert_refused(await client.post("/consumers", json={"id": "lishui-data", "name": "丽水\x00平台"}, headers=worker), "name")
    assert_refused(await client.post("/consumers", json={"id": "lishui-data", "name": 42}, headers=worker), "name")
    assert (await client.get("/consumers", headers=worker)).json()["items"] == []


async def test_pulls_filtered_by_a_consumer_id_with_a_nul_are_refused(community: Community) -> None:
    r = await community.svc.client.get("/pulls", params={"consumer_id": "lishui\x00data"}, headers=community.worker)
    assert_refused(r, "consumer_id", "query")


async def test_a_cursor_carrying_a_nul_is_an_invalid_cursor(community: Community) -> None:
    r = await community.svc.client.get(
        "/consumers", params={"cursor": encode_cursor(["lishui\x00data"])}, headers=community.worker
    )
    assert r.status_code == 400 and r.json()["type"].endswith("invalid-cursor"), r.text


@pytest.mark.parametrize(
    ("method", "path", "field"), [("GET", "/consumers/lishui%00data", "consumer_id"), ("GET", "/feeds/time%00bank", "scene")]
)
async def test_a_consumer_id_or_scene_with_a_nul_in_the_path_is_refused(
    community: Community, method: str, path: str, field: str
) -> None:
    headers = community.consumer_auth("lishui-data") if path.startswith("/feeds") else community.worker
    assert_refused(await community.svc.client.request(method, path, headers=headers), field, "path")
