"""Service pledges through HTTP against the real database: the minimum met once, one order per
household (also when two households take the last place at once), a lapse charges nobody."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.governance import pledges
from tests.governance.conftest import Community, problem_type, wait_until
from tests.governance.test_decisions import person


async def offer(c: Community, *, minimum: int, deadline_in: float = 3600) -> str:
    body = {
        "title": "老年助餐 午餐",
        "provider": "邻里食堂",
        "service_code": f"meal-{uuid.uuid4().hex[:8]}",
        "price_fen": 1500,
        "min_households": minimum,
        "deadline": (datetime.now(UTC) + timedelta(seconds=deadline_in)).isoformat(),
    }
    r = await c.client.post("/pledge-offers", json=body, headers=c.worker)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def pledge(c: Community, offer_id: str, who: str) -> Any:
    return await c.client.post(f"/pledge-offers/{offer_id}/pledges", headers=c.resident(who))


async def households(c: Community, n: int) -> None:
    for i in range(n):
        await person(c, f"r{i}", f"h{i}", owner=i % 2 == 0)


async def orders(c: Community, offer_id: str) -> list[dict[str, Any]]:
    return [e for e in await c.outbox_events("governance.pledge.ordered.v1") if e["offer_id"] == offer_id]


async def settled(c: Community, offer_id: str) -> list[dict[str, Any]]:
    return [e for e in await c.outbox_events("governance.pledge_offer.settled.v1") if e["offer_id"] == offer_id]


async def test_the_pledge_meeting_the_minimum_orders_for_every_household_once_and_later_ones_get_theirs(
    community: Community,
) -> None:
    await households(community, 4)
    await person(community, "r0-spouse", "h0", owner=False)
    offer_id = await offer(community, minimum=3)
    for who in ("r0", "r1"):
        assert (await pledge(community, offer_id, who)).status_code == 201
    # Another member of a household that pledged, and a retry, answer the household's one pledge.
    again = await pledge(community, offer_id, "r0-spouse")
    assert again.status_code == 201 and again.json()["resident_id"] == "r0"
    assert await orders(community, offer_id) == []
    assert (await pledge(community, offer_id, "r2")).status_code == 201
    assert sorted(e["household_id"] for e in await orders(community, offer_id)) == ["h0", "h1", "h2"]
    [outcome] = await settled(community, offer_id)
    assert (outcome["outcome"], outcome["households"], outcome["min_households"]) == ("reached", 3, 3)
    assert (await pledge(community, offer_id, "r3")).status_code == 201
    assert (await pledge(community, offer_id, "r3")).status_code == 201
    assert sorted(e["household_id"] for e in await orders(community, offer_id)) == ["h0", "h1", "h2", "h3"]
    assert len(await settled(community, offer_id)) == 1
    seen = (await community.client.get(f"/pledge-offers/{offer_id}", headers=community.resident("r1"))).json()
    assert (seen["status"], seen["households"], seen["my_household_pledged"]) == ("reached", 4, True)


async def test_two_households_taking_the_last_place_at_once_make_one_order_each(community: Community) -> None:
    for _ in range(3):
        await households(community, 6)
        offer_id = await offer(community, minimum=5)
        for who in ("r0", "r1", "r2", "r3"):
            assert (await pledge(community, offer_id, who)).status_code == 201
        # The two last households each on two phones.
        answers = await asyncio.gather(*(pledge(community, offer_id, who) for who in ("r4", "r5", "r4", "r5")))
        assert [a.status_code for a in answers] == [201] * 4
        ordered = [e["household_id"] for e in await orders(community, offer_id)]
        assert sorted(ordered) == [f"h{i}" for i in range(6)]
        [outcome] = await settled(community, offer_id)
        assert outcome["outcome"] == "reached" and outcome["households"] == 5


async def test_an_offer_short_of_its_minimum_lapses_at_the_deadline_and_charges_nobody(community: Community) -> None:
    await households(community, 3)
    offer_id = await offer(community, minimum=3, deadline_in=2)
    for who in ("r0", "r1"):
        assert (await pledge(community, offer_id, who)).status_code == 201

    async def past_deadline() -> bool:
        seen = (await community.client.get(f"/pledge-offers/{offer_id}", headers=community.worker)).json()
        return datetime.now(UTC) >= datetime.fromisoformat(seen["deadline"])

    await wait_until(past_deadline)
    r = await pledge(community, offer_id, "r2")
    assert r.status_code == 409 and problem_type(r) == "governance/pledge-offer-closed"

    async def lapse_job() -> int:
        async with community.svc.state.sessionmaker() as session:
            return await pledges.lapse_due(session)

    await asyncio.gather(*(lapse_job() for _ in range(4)))
    await asyncio.gather(*(lapse_job() for _ in range(4)))
    [outcome] = await settled(community, offer_id)
    assert (outcome["outcome"], outcome["households"]) == ("lapsed", 2)
    assert await orders(community, offer_id) == []
    seen = (await community.client.get(f"/pledge-offers/{offer_id}", headers=community.resident("r0"))).json()
    assert seen["status"] == "lapsed"


async def test_offers_are_the_communitys_and_only_households_pledge(community: Community) -> None:
    await households(community, 1)
    offer_id = await offer(community, minimum=2)
    other = Community(stack=community.stack, svc=community.svc, id=f"c-{uuid.uuid4().hex[:10]}")
    await person(other, "r0", "h0", owner=True)
    assert (await community.client.get(f"/pledge-offers/{offer_id}", headers=other.resident("r0"))).status_code == 404
    assert (await community.client.get(f"/pledge-offers/{offer_id}", headers=other.worker)).status_code == 404
    r = await pledge(other, offer_id, "r0")
    assert r.status_code == 404 and problem_type(r) == "governance/pledge-offer-not-found"
    assert (await community.client.get("/pledge-offers", headers=other.worker)).json()["items"] == []
    r = await pledge(community, offer_id, "no-household")
    assert r.status_code == 403 and problem_type(r) == "governance/no-household"
    # Another resident of the same community sees the offer, but not as pledged by their household.
    await pledge(community, offer_id, "r0")
    await person(community, "r9", "h9", owner=False)
    seen = (await community.client.get(f"/pledge-offers/{offer_id}", headers=community.resident("r9"))).json()
    assert (seen["households"], seen["my_household_pledged"]) == (1, False)
    r = await community.client.post(
        "/pledge-offers",
        json={
            "title": "x",
            "provider": "y",
            "service_code": "z-1",
            "price_fen": 0,
            "min_households": 1,
            "deadline": "2030-01-01T00:00:00Z",
        },
        headers=community.worker,
    )
    assert r.status_code == 422
    assert (await community.client.post("/pledge-offers", json={}, headers=community.resident("r0"))).status_code in (403, 422)
