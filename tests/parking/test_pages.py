"""Parking's lists that were arrays are cursor pages: a spot's windows and the gate devices walk page
by page while more are published or registered, with no item twice or missed; a forged cursor is
the invalid-cursor problem."""

from __future__ import annotations

import uuid
from datetime import timedelta
from itertools import count

from tests.parking.conftest import Community, next_half_hour
from tests.support.pages import assert_cursor_refused, assert_whole, walk

H = timedelta(hours=1)


async def test_a_spots_windows_page_oldest_first_while_more_are_published(community: Community) -> None:
    c = community
    spot = await c.spot()
    start = next_half_hour(timedelta(days=1))
    before = {(await c.window(spot, start + 2 * n * H, start + (2 * n + 1) * H))["id"] for n in range(5)}
    later = count(5)

    async def publish() -> None:
        n = next(later)
        await c.window(spot, start + 2 * n * H, start + (2 * n + 1) * H)

    path = f"/spots/{spot}/windows"
    walked, pages = await walk(c.svc.client, path, c.owner_h, meanwhile=publish)
    assert pages >= 3
    ids = assert_whole(walked, before)
    assert [w["id"] for w in walked[:5]] == [i for i in ids if i in before]
    await assert_cursor_refused(c.svc.client, path, c.owner_h)
    # To anyone but the owner and staff, the spot does not exist.
    r = await c.svc.client.get(path, headers=c.booker_h)
    assert r.status_code == 404


async def test_the_gate_devices_page_by_id_while_more_are_registered(community: Community) -> None:
    c = community

    async def register(n: int) -> str:
        device = f"gate-{c.id}-{n:02}-{uuid.uuid4().hex[:4]}"
        r = await c.svc.client.post("/gate-devices", json={"id": device, "name": f"门{n}"}, headers=c.steward_h)
        assert r.status_code == 201, r.text
        return device

    before = {await register(n) for n in range(5)}
    later = count(5)

    async def one_more() -> None:
        await register(next(later))

    walked, pages = await walk(c.svc.client, "/gate-devices", c.steward_h, meanwhile=one_more)
    assert pages >= 3
    ids = assert_whole(walked, before)
    assert ids == sorted(ids)
    await assert_cursor_refused(c.svc.client, "/gate-devices", c.steward_h)
