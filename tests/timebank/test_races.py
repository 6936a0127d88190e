"""Races decided by the database: row locks and conditional updates, many concurrent HTTP requests."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import date

from tests.timebank.community import WORKER, Community, assert_ledger_invariants


async def test_200_withdrawals_against_a_balance_for_37(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=date(1948, 5, 1))
    await c.grant("elder", 37 * 15, "elder")

    async def withdraw() -> int:
        r = await c.client.post(
            "/transfers/spend", json={"id": str(uuid.uuid4()), "minutes": 15, "service_type": "meal"}, headers=c.h("elder")
        )
        assert r.status_code in (201, 409), r.text
        if r.status_code == 409:
            assert r.json()["type"].endswith("timebank/insufficient-balance")
        return r.status_code

    codes = Counter(await asyncio.gather(*(withdraw() for _ in range(200))))
    assert codes == {201: 37, 409: 163}
    assert await c.balance("elder") == {
        "posted_minutes": 0,
        "available_minutes": 0,
        "pending_in_minutes": 0,
        "pending_out_minutes": 0,
    }
    spent = await c.sql("SELECT count(*), sum(amount_minutes) FROM tb_transfers WHERE kind = 'spend'")
    assert spent == [(37, 37 * 15)]
    assert await c.sql("SELECT count(*) FROM tb_failed_transfers") == [(163,)]
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_50_volunteers_accept_one_request(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True)
    volunteers = [f"vol-{i}" for i in range(50)]
    for v in volunteers:
        await c.enrol(v, volunteer=True)
    rid = await c.care_request("elder")

    async def accept(v: str) -> tuple[str, int]:
        r = await c.client.post(f"/care-requests/{rid}/accept", headers=c.h(v))
        return v, r.status_code

    results = await asyncio.gather(*(accept(v) for v in volunteers))
    winners = [v for v, code in results if code == 200]
    assert len(winners) == 1
    assert Counter(code for _, code in results) == {200: 1, 409: 49}
    r = await c.client.get(f"/care-requests/{rid}", headers=c.h("elder"))
    assert r.json()["volunteer_id"] == winners[0] and r.json()["status"] == "accepted"


async def test_racing_confirm_and_dispute_resolve_once(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=date(1948, 5, 1))
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 100, "elder")
    _, pending = await c.serve("elder", "vol", 60)

    async def resolve(i: int) -> int:
        if i % 2:
            r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
        else:
            r = await c.client.post(
                f"/transfers/{pending}/dispute", json={"id": str(uuid.uuid4()), "reason": "x"}, headers=c.h(WORKER)
            )
        return r.status_code

    codes = Counter(await asyncio.gather(*(resolve(i) for i in range(20))))
    assert codes == {201: 1, 409: 19}
    assert await c.sql("SELECT count(*) FROM tb_transfers WHERE pending_id = :p", p=uuid.UUID(pending)) == [(1,)]
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_opposite_gifts_do_not_deadlock(community: Community) -> None:
    c = community
    await c.enrol("a", volunteer=True)
    await c.enrol("b", volunteer=True)
    await c.relatives("a", "b")
    await c.enrol("elder", elder=True)
    await c.grant("a", 500, "elder")
    await c.grant("b", 500, "elder")

    async def give(src: str, dst: str) -> int:
        r = await c.client.post(
            "/transfers/gift", json={"id": str(uuid.uuid4()), "to_member_id": dst, "minutes": 7}, headers=c.h(src)
        )
        return r.status_code

    codes = await asyncio.gather(*(give("a", "b") if i % 2 else give("b", "a") for i in range(60)))
    assert set(codes) == {201}
    assert (await c.balance("a"))["posted_minutes"] + (await c.balance("b"))["posted_minutes"] == 1000
    await assert_ledger_invariants(c.svc.state.sessionmaker)
