"""A member's relatives are a cursor page: the list walks page by page while more relatives are
verified, with no relative twice or missed; a forged cursor is the invalid-cursor problem."""

from __future__ import annotations

from tests.support.pages import assert_cursor_refused, assert_whole, walk
from tests.timebank.community import WORKER, Community


async def test_a_members_relatives_page_by_id_while_more_are_verified(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True)
    for n in range(12):
        await c.enrol(f"kin-{n:02}", volunteer=True)
    for n in range(0, 10, 2):
        await c.relatives("elder", f"kin-{n:02}")
    before = {f"kin-{n:02}" for n in range(0, 10, 2)}
    later = iter([1, 3, 11, 5, 7, 9])

    async def verify_one() -> None:
        n = next(later, None)
        if n is not None:
            await c.relatives("elder", f"kin-{n:02}")

    walked, pages = await walk(c.client, "/members/elder/relatives", c.h("elder"), meanwhile=verify_one)
    assert pages >= 3
    ids = assert_whole(walked, before, key="relative_id")
    assert ids == sorted(ids)
    # Staff read it too; anyone else is told the member does not exist.
    staff_walk, _ = await walk(c.client, "/members/elder/relatives", c.h(WORKER), limit=200)
    assert {r["relative_id"] for r in staff_walk} >= set(ids)
    assert (await c.client.get("/members/elder/relatives", headers=c.h("kin-00"))).status_code == 404
    await assert_cursor_refused(c.client, "/members/elder/relatives", c.h("elder"))
