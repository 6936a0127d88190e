"""A member's relatives and the members awaiting verification are cursor pages: each list walks page
by page while it changes, with no item twice or missed; a forged cursor is the invalid-cursor
problem."""

from __future__ import annotations

from datetime import date

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


async def test_members_awaiting_verification_page_oldest_first_while_members_enrol_and_are_verified(
    community: Community,
) -> None:
    c = community
    for n in range(10):
        await c.enrol(f"new-{n:02}", elder=n % 2 == 0, volunteer=n % 2 == 1)
    for n in range(3):
        await c.enrol(f"seen-{n}", elder=True, birth=date(1944, 5, 6))
    # Another community's unverified member is not this community's to see.
    other = Community(c.stack, c.svc, name="other-community")
    await other.enrol("elsewhere", elder=True)
    verified_meanwhile = ["new-09", "new-08"]
    steady = {f"new-{n:02}" for n in range(8)}
    later = iter([("enrol", "late-0"), ("verify", "new-09"), ("enrol", "late-1"), ("verify", "new-08")])

    async def change_one() -> None:
        step = next(later, None)
        if step is None:
            return
        what, who = step
        if what == "enrol":
            await c.enrol(who, elder=True)
        else:
            r = await c.client.post(f"/members/{who}/verification", json={"birth_date": "1950-01-01"}, headers=c.h(WORKER))
            assert r.status_code == 200, r.text

    walked, pages = await walk(c.client, "/members/awaiting-verification", c.h(WORKER), meanwhile=change_one)
    assert pages >= 4
    ids = assert_whole(walked, steady, key="member_id")
    assert not any(i.startswith("seen-") or i == "elsewhere" for i in ids), ids
    keys = [(m["enrolled_at"], m["member_id"]) for m in walked]
    assert keys == sorted(keys), "oldest enrolment first"
    assert set(walked[0]) == {"member_id", "is_volunteer", "is_elder", "enrolled_at"}

    for _ in range(4):  # the changes a short walk left undone
        await change_one()
    # Once verified, a member leaves the list; the elder filter narrows it.
    now, _ = await walk(c.client, "/members/awaiting-verification", c.h(WORKER), limit=200)
    assert {m["member_id"] for m in now} == steady | {"late-0", "late-1"}
    assert not set(verified_meanwhile) & {m["member_id"] for m in now}
    elders, _ = await walk(c.client, "/members/awaiting-verification", c.h(WORKER), params={"elder": "true"})
    assert {m["member_id"] for m in elders} == {f"new-{n:02}" for n in range(0, 8, 2)} | {"late-0", "late-1"}
    others, _ = await walk(c.client, "/members/awaiting-verification", c.h(WORKER), params={"elder": "false"})
    assert {m["member_id"] for m in others} == {f"new-{n:02}" for n in range(1, 8, 2)}

    # Workers only; an undeclared filter is refused, not ignored.
    c.roles["a-steward"] = ("steward",)
    for who in ("a-steward", "new-00"):
        r = await c.client.get("/members/awaiting-verification", headers=c.h(who))
        assert r.status_code == 403, (who, r.text)
    r = await c.client.get("/members/awaiting-verification", params={"sort": "member_id"}, headers=c.h(WORKER))
    assert r.status_code == 422, r.text
    await assert_cursor_refused(c.client, "/members/awaiting-verification", c.h(WORKER))
