"""Governance's lists are cursor pages: each walks page by page while items are added, without an
item twice or one that existed before the walk missed; a forged cursor is the invalid-cursor
problem. The active-reward filter runs in SQL, so a resident's page is full of active rewards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from tests.governance.conftest import Community
from tests.governance.test_decisions import opened, person, unit, vote
from tests.governance.test_pledges import offer
from tests.support.pages import assert_cursor_refused, assert_whole, walk


async def test_rules_and_rewards_page_by_code_while_more_are_made(community: Community) -> None:
    c = community
    before = {(await c.rule(code=f"r-{n:02}"))["id"] for n in range(5)}
    made = count(5)

    async def one_more_rule() -> None:
        await c.rule(code=f"r-{next(made):02}")

    walked, pages = await walk(c.client, "/rules", c.worker, meanwhile=one_more_rule)
    assert pages >= 3
    assert_whole(walked, before)
    assert [r["code"] for r in walked] == sorted(r["code"] for r in walked)
    await assert_cursor_refused(c.client, "/rules", c.worker)

    # Inactive rewards sit between active ones: a resident's pages hold only active ones, none lost.
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    active = {(await c.reward(code=f"w-{n:02}"))["id"] for n in range(0, 10, 2)}
    inactive = {(await c.reward(code=f"w-{n:02}", active_from=later))["id"] for n in range(1, 10, 2)}

    more_rewards = count(10)

    async def one_more_reward() -> None:
        await c.reward(code=f"w-{next(more_rewards):02}")

    walked, pages = await walk(c.client, "/rewards", c.resident("res-1"), meanwhile=one_more_reward)
    ids = assert_whole(walked, active)
    assert not inactive & set(ids)
    first = (await c.client.get("/rewards", params={"limit": 3}, headers=c.resident("res-1"))).json()
    assert len(first["items"]) == 3 and first["next_cursor"] and not inactive & {w["id"] for w in first["items"]}
    staff_walk, _ = await walk(c.client, "/rewards", c.worker, params={"include_inactive": "true"})
    assert_whole(staff_walk, active | inactive)
    await assert_cursor_refused(c.client, "/rewards", c.worker)


async def test_my_lots_page_in_spending_order_while_points_arrive(community: Community) -> None:
    c = community
    await c.fund(10_000)
    for _ in range(5):
        await c.give("res-l", 10)
    lots, _ = await walk(c.client, "/me/lots", c.resident("res-l"), limit=200)
    before = {str(lot["id"]) for lot in lots}
    assert len(before) == 5

    async def more() -> None:
        await c.give("res-l", 10)

    walked, pages = await walk(c.client, "/me/lots", c.resident("res-l"), meanwhile=more)
    assert pages >= 3
    assert_whole(walked, before)
    await assert_cursor_refused(c.client, "/me/lots", c.resident("res-l"))


async def test_decisions_mine_and_named_ballots_page_while_more_come(community: Community) -> None:
    c = community
    for n in range(8):
        await unit(c, f"h{n}", 1000)
        await person(c, f"o{n}", f"h{n}", owner=True)
    before = {await opened(c, closes_in=3600 + n) for n in range(4)}

    async def open_one() -> None:
        await opened(c, closes_in=7200)

    walked, pages = await walk(c.client, "/decisions", c.worker, meanwhile=open_one)
    assert pages >= 2
    assert_whole(walked, before)
    await assert_cursor_refused(c.client, "/decisions", c.worker)

    walked, pages = await walk(c.client, "/me/decisions", c.resident("o1"), meanwhile=open_one)
    assert pages >= 2
    assert_whole(walked, before)
    await assert_cursor_refused(c.client, "/me/decisions", c.resident("o1"))

    named = await opened(c, ballots_by_name=True)
    for n in range(4):
        assert (await vote(c, named, f"o{n}", "yes")).status_code == 201
    voters = count(4)

    async def cast() -> None:
        n = next(voters)
        if n < 8:
            assert (await vote(c, named, f"o{n}", "no")).status_code == 201

    path = f"/decisions/{named}/ballots"
    walked, pages = await walk(c.client, path, c.worker, meanwhile=cast)
    assert pages >= 2
    households = assert_whole(walked, {f"h{n}" for n in range(4)}, key="household_id")
    assert households == sorted(households)
    await assert_cursor_refused(c.client, path, c.worker)


async def test_pledge_offers_page_newest_first_while_more_are_posted(community: Community) -> None:
    c = community
    before = {await offer(c, minimum=2) for _ in range(5)}

    async def post() -> None:
        await offer(c, minimum=2)

    walked, pages = await walk(c.client, "/pledge-offers", c.resident("r0"), meanwhile=post)
    assert pages >= 3
    assert_whole(walked, before)
    await assert_cursor_refused(c.client, "/pledge-offers", c.worker)
