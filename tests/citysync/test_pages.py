"""The feeds a consumer may pull (`GET /feeds`, the city's `/city/v1/feeds`) are a cursor page by
scene: a consumer walks them page by page while more scenes are granted, with none twice or
missed; a forged cursor is the invalid-cursor problem."""

from __future__ import annotations

from tests.citysync.conftest import Community
from tests.support.pages import assert_cursor_refused, assert_whole, walk


async def test_the_feeds_page_by_scene_while_more_are_granted(community: Community) -> None:
    c = community
    city = await c.register("city-p", scenes=["parking", "property", "timebank"])
    to_grant = iter(["governance", "stats"])

    async def grant() -> None:
        scene = next(to_grant, None)
        if scene is not None:
            r = await c.svc.client.post("/consumers/city-p/grants", json={"scene": scene}, headers=c.worker)
            assert r.status_code == 201, r.text

    walked, pages = await walk(c.svc.client, "/feeds", city, limit=1, meanwhile=grant)
    assert pages >= 3
    scenes = assert_whole(walked, {"parking", "property", "timebank"}, key="scene")
    assert scenes == sorted(scenes)
    await assert_cursor_refused(c.svc.client, "/feeds", city)
