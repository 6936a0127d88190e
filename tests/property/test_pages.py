"""Property's lists that were arrays are cursor pages: a ticket's steps and payments walk page by
page while rows are added, with no row twice or missed (rows made in one instant are told apart by
their id); the SLA policies page through their fixed set; a forged cursor is the invalid-cursor
problem."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count
from typing import Any

from sqlalchemy import text

from services.property import domain
from tests.property.conftest import COMMUNITY, World
from tests.support.harness import RunningService
from tests.support.pages import assert_cursor_refused, assert_whole, walk

_FAILED_ORDER = text("""
    INSERT INTO payment_orders (id, community, ticket_id, ticket_category, resident_id, method, amount_fen,
                                status, created_at)
    VALUES (:id, :community, :ticket, 'service', :resident, 'money', 100, 'failed', :at)""")
_STEP = text("""
    INSERT INTO ticket_steps (ticket_id, actor_id, role, action, from_status, to_status, note)
    VALUES (:ticket, :actor, 'steward', 'note', 'accepted', 'accepted', :note)""")


async def _run(svc: RunningService, statement: Any, **params: Any) -> None:
    async with svc.state.engine.begin() as conn:
        await conn.execute(statement, params)


async def test_a_tickets_payments_page_oldest_first_while_orders_are_added(world: World, svc: RunningService) -> None:
    await world.post("/catalogue", {"code": "sofa-clean", "name": "家电清洗", "price_fen": 12000}, world.as_admin())
    t = await world.submit("wang", "service", service_code="sofa-clean")
    wang = world.as_resident("wang")
    params = {"community": COMMUNITY, "ticket": t["id"], "resident": world.residents["wang"]}
    one_instant = datetime.now(UTC)
    before = {f"po-{n}" for n in range(5)}
    for order in sorted(before):
        await _run(svc, _FAILED_ORDER, id=order, at=one_instant, **params)
    added = count(5)

    async def add_order() -> None:
        await _run(svc, _FAILED_ORDER, id=f"po-{next(added)}", at=datetime.now(UTC), **params)

    walked, pages = await walk(world.client, f"/tickets/{t['id']}/payments", wang, meanwhile=add_order)
    assert pages >= 3
    ids = assert_whole(walked, before)
    assert ids[:5] == sorted(before)  # one instant: by id
    await assert_cursor_refused(world.client, f"/tickets/{t['id']}/payments", wang)


async def test_a_tickets_steps_page_in_the_order_taken_while_steps_are_added(world: World, svc: RunningService) -> None:
    t = await world.submit("wang", "repair")
    wu, wang = world.as_steward("wu"), world.as_resident("wang")
    await world.act(t["id"], "accept", wu)
    for n in range(4):
        await _run(svc, _STEP, ticket=t["id"], actor=world.stewards["wu"], note=f"n{n}")
    first, _ = await walk(world.client, f"/tickets/{t['id']}/steps", wang, limit=200)
    before = {str(s["at"]) + s["action"] + str(s.get("note")) for s in first}
    assert len(first) == 6
    added = count()

    async def add_step() -> None:
        await _run(svc, _STEP, ticket=t["id"], actor=world.stewards["wu"], note=f"m{next(added)}")

    walked, pages = await walk(world.client, f"/tickets/{t['id']}/steps", wang, meanwhile=add_step)
    assert pages >= 3
    keys = [str(s["at"]) + s["action"] + str(s.get("note")) for s in walked]
    assert len(keys) == len(set(keys)) and before <= set(keys)
    assert [s["action"] for s in walked[:2]] == ["submit", "accept"]
    await assert_cursor_refused(world.client, f"/tickets/{t['id']}/steps", wang)


async def test_the_sla_policies_page_through_every_category_and_priority(world: World) -> None:
    admin = world.as_admin()
    r = await world.client.put(
        "/sla-policies/repair/urgent", json={"response_minutes": 7, "resolution_minutes": 70}, headers=admin
    )
    assert r.status_code == 200, r.text
    walked, pages = await walk(world.client, "/sla-policies", admin, limit=3)
    pairs = [(p["category"], p["priority"]) for p in walked]
    assert pages >= 2 and len(pairs) == len(set(pairs)) == len(domain.DEFAULT_SLA)
    assert pairs == sorted(pairs)
    assert ("repair", "urgent", 7) in {(p["category"], p["priority"], p["response_minutes"]) for p in walked}
    await assert_cursor_refused(world.client, "/sla-policies", admin)
