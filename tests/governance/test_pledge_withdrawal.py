"""Withdrawing a pledge through HTTP against the real database: only the household's own, only while
the offer is open, and ordered with the pledge that meets the minimum on the offer's row lock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.governance.conftest import Community, problem_type, wait_until
from tests.governance.test_decisions import person
from tests.governance.test_pledges import households, offer, orders, pledge


async def withdraw(c: Community, offer_id: str, who: str) -> Any:
    return await c.client.delete(f"/pledge-offers/{offer_id}/pledges/mine", headers=c.resident(who))


async def seen(c: Community, offer_id: str, who: str) -> dict[str, Any]:
    return dict((await c.client.get(f"/pledge-offers/{offer_id}", headers=c.resident(who))).json())


async def test_a_household_withdraws_its_pledge_until_the_minimum_makes_it_an_order(community: Community) -> None:
    await households(community, 3)
    await person(community, "r0-spouse", "h0", owner=False)
    offer_id = await offer(community, minimum=3)
    for who in ("r0", "r1"):
        assert (await pledge(community, offer_id, who)).status_code == 201
    # Another member of the household withdraws the household's pledge.
    assert (await withdraw(community, offer_id, "r0-spouse")).status_code == 204
    assert (await seen(community, offer_id, "r0"))["households"] == 1
    assert (await seen(community, offer_id, "r0"))["my_household_pledged"] is False
    r = await withdraw(community, offer_id, "r0")
    assert r.status_code == 404 and problem_type(r) == "governance/pledge-not-found"
    assert (await pledge(community, offer_id, "r0")).status_code == 201
    assert (await pledge(community, offer_id, "r2")).status_code == 201
    assert sorted(e["household_id"] for e in await orders(community, offer_id)) == ["h0", "h1", "h2"]
    r = await withdraw(community, offer_id, "r1")
    assert r.status_code == 409 and problem_type(r) == "governance/pledge-ordered"
    assert (await seen(community, offer_id, "r1"))["households"] == 3


async def test_only_my_households_pledge_in_my_community_is_withdrawn(community: Community) -> None:
    await households(community, 2)
    offer_id = await offer(community, minimum=3)
    assert (await pledge(community, offer_id, "r0")).status_code == 201
    other = Community(stack=community.stack, svc=community.svc, id=f"c-{uuid.uuid4().hex[:10]}")
    await person(other, "r0", "h0", owner=True)
    r = await withdraw(other, offer_id, "r0")
    assert r.status_code == 404 and problem_type(r) == "governance/pledge-offer-not-found"
    r = await withdraw(community, offer_id, "r1")  # another household of the community: it has no pledge
    assert r.status_code == 404 and problem_type(r) == "governance/pledge-not-found"
    r = await withdraw(community, offer_id, "no-household")
    assert r.status_code == 403 and problem_type(r) == "governance/no-household"
    assert (await seen(community, offer_id, "r0"))["my_household_pledged"] is True


async def test_a_pledge_is_not_withdrawn_after_the_deadline(community: Community) -> None:
    await households(community, 1)
    offer_id = await offer(community, minimum=2, deadline_in=2)
    assert (await pledge(community, offer_id, "r0")).status_code == 201

    async def past_deadline() -> bool:
        return datetime.now(UTC) >= datetime.fromisoformat((await seen(community, offer_id, "r0"))["deadline"])

    await wait_until(past_deadline)
    r = await withdraw(community, offer_id, "r0")
    assert r.status_code == 409 and problem_type(r) == "governance/pledge-offer-closed"


async def test_a_withdrawal_racing_the_last_place_either_comes_first_or_is_refused(community: Community) -> None:
    """A household withdraws (on two phones) as the pledge that would meet the minimum arrives. Either
    the withdrawal came first (the offer stays open, two pledges, no order) or the minimum did (the
    withdrawal is refused, and every pledging household, the withdrawer too, has its order)."""
    for _ in range(4):
        await households(community, 3)
        offer_id = await offer(community, minimum=3)
        for who in ("r0", "r1"):
            assert (await pledge(community, offer_id, who)).status_code == 201
        last, *withdrawals = await asyncio.gather(
            pledge(community, offer_id, "r2"), withdraw(community, offer_id, "r0"), withdraw(community, offer_id, "r0")
        )
        assert last.status_code == 201
        ordered = sorted(e["household_id"] for e in await orders(community, offer_id))
        state = await seen(community, offer_id, "r1")
        codes = sorted(w.status_code for w in withdrawals)
        if state["status"] == "reached":
            assert codes == [409, 409] and ordered == ["h0", "h1", "h2"] and state["households"] == 3
        else:
            # One phone withdrew, the other found no pledge left; the last pledge then counted without it.
            assert codes == [204, 404] and ordered == [] and state["households"] == 2
