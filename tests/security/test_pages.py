"""Security's lists are cursor pages: each walks page by page while items are added, without an item
twice or one that existed before the walk missed; a forged cursor is the invalid-cursor problem."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

from tests.security.conftest import Community
from tests.support.pages import assert_cursor_refused, assert_whole, walk


async def test_the_device_list_pages_by_building_while_devices_are_registered(community: Community) -> None:
    c = community
    for n in range(5):
        await c.device(f"d{n}", building_id=f"b{n % 2}")
    before = {c.dev(f"d{n}") for n in range(5)}
    added = iter(range(5, 20))

    async def register() -> None:
        n = next(added)
        await c.device(f"d{n}", building_id=f"b{n % 3}")

    walked, pages = await walk(c.client, "/devices", c.staff, meanwhile=register)
    assert pages >= 3
    assert_whole(walked, before)
    assert [(d["building_id"], d["id"]) for d in walked] == sorted((d["building_id"], d["id"]) for d in walked)
    await assert_cursor_refused(c.client, "/devices", c.staff)


async def test_alarms_page_newest_first_while_alarms_are_raised(community: Community) -> None:
    c = community
    door = await c.device("door-1")
    now = datetime.now(UTC)

    async def raise_alarm(n: int, at: datetime) -> str:
        r = await c.client.post("/alarms", json={"incident_id": f"i-{n}", "kind": "smoke", "at": at.isoformat()}, headers=door)
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    # Two pairs raised at one instant: the id breaks the tie.
    before = {await raise_alarm(n, now - timedelta(minutes=n // 2)) for n in range(6)}
    added = iter(range(6, 20))

    async def raise_more() -> None:
        await raise_alarm(next(added), datetime.now(UTC))

    walked, pages = await walk(c.client, "/alarms", c.staff, meanwhile=raise_more)
    assert pages >= 3
    assert_whole(walked, before)
    keys = [(a["raised_at"], a["id"]) for a in walked if a["id"] in before]
    assert keys == sorted(keys, reverse=True)
    await assert_cursor_refused(c.client, "/alarms", c.staff)


async def test_a_relative_pages_through_the_watches_naming_them(community: Community) -> None:
    c = community
    elders = [await c.resident(f"elder-{n}", household_id=f"h{n}") for n in range(5)]
    before = set()
    for elder in elders[:4]:
        r = await c.client.post("/watches", json={"relative_id": "son-1"}, headers=elder)
        assert r.status_code == 201, r.text
        before.add(r.json()["id"])
    son = c.auth("son-1", "resident")

    async def one_more() -> None:
        await c.client.post("/watches", json={"relative_id": "son-1"}, headers=elders[4])

    walked, pages = await walk(c.client, "/watches", son, meanwhile=one_more)
    assert pages >= 2
    assert_whole(walked, before)
    await assert_cursor_refused(c.client, "/watches", son)


async def test_my_passes_and_the_expected_visitors_page_while_passes_are_issued(community: Community) -> None:
    c = community
    resident = await c.resident("r1")
    before = {(await c.issue(resident, starts_in=-0.1 + n / 100))["id"] for n in range(5)}

    async def issue() -> None:
        await c.issue(resident)

    walked, pages = await walk(c.client, "/passes", resident, meanwhile=issue)
    assert pages >= 3
    assert_whole(walked, before)
    await assert_cursor_refused(c.client, "/passes", resident)

    walked, pages = await walk(c.client, "/expected-visitors", c.staff, meanwhile=issue)
    assert pages >= 3
    assert_whole(walked, before, key="pass_id")
    keys = [(v["building_id"], v["valid_from"], v["pass_id"]) for v in walked if v["pass_id"] in before]
    assert keys == sorted(keys)
    await assert_cursor_refused(c.client, "/expected-visitors", c.staff)


async def test_a_door_misses_no_pass_issued_or_revoked_while_it_pages_and_resumes(community: Community) -> None:
    """Passes are issued and revoked concurrently while a door pages with a small page size; the
    door then resumes from the last number it kept. Every pass issued reaches it once, and every
    revocation once: the numbers commit in order, so a late commit never lands behind the door."""
    c = community
    residents = [await c.resident(f"r{n}", household_id=f"h{n}") for n in range(3)]
    door = await c.device("door-1")
    issued = [await c.issue(residents[n % 3]) for n in range(6)]
    during_passes, during_revocations = iter(range(3)), iter(range(3, 6))

    async def issue_and_revoke(batches: Iterator[int]) -> None:
        batch = next(batches, None)
        if batch is None:
            return
        victim, owner = issued[batch], residents[batch % 3]
        news = asyncio.gather(*(c.issue(residents[(batch + n) % 3]) for n in range(3)))
        fresh, revoked = await asyncio.gather(news, c.client.post(f"/passes/{victim['id']}/revoke", headers=owner))
        assert revoked.status_code == 200, revoked.text
        issued.extend(fresh)

    seen_passes, _ = await walk(c.client, "/devices/me/passes", door, meanwhile=partial(issue_and_revoke, during_passes))
    seen_revocations, _ = await walk(
        c.client, "/devices/me/revocations", door, meanwhile=partial(issue_and_revoke, during_revocations)
    )
    # The next sync resumes after the last number kept.
    last_issued = max(p["issued_seq"] for p in seen_passes)
    last_revoked = max((r["revoked_seq"] for r in seen_revocations), default=0)
    more_passes, _ = await walk(c.client, "/devices/me/passes", door, params={"after": last_issued})
    more_revocations, _ = await walk(c.client, "/devices/me/revocations", door, params={"after": last_revoked})

    revoked = {row.id for row in await c.rows("SELECT id FROM passes WHERE community = :community AND revoked_at IS NOT NULL")}
    all_issued = {p["id"] for p in issued}
    passes = assert_whole(seen_passes + more_passes, set(), key="pass_id")
    revocations = assert_whole(seen_revocations + more_revocations, revoked, key="pass_id")
    # Every pass issued reached the door, unless it was revoked before the door read its page.
    assert all_issued - revoked <= set(passes)
    assert set(revocations) == revoked and len(revoked) >= 4
    seqs = [p["issued_seq"] for p in seen_passes + more_passes]
    assert seqs == sorted(seqs)
    await assert_cursor_refused(c.client, "/devices/me/passes", door)
    await assert_cursor_refused(c.client, "/devices/me/revocations", door)
