"""SLA escalation by concurrent replicas, the redemption saga and points payments with governance, and
random action sequences over HTTP that must follow the table and replay from the audit trail."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.kit.envelope import CloudEvent
from services.kit.redelivery import publish_raw
from services.property import sla
from services.property.domain import TRANSITIONS, Action, Role, Status
from services.property.events import GOVERNANCE_TOPIC
from tests.property.conftest import COMMUNITY, World
from tests.property.test_api import count, events, steps_replay
from tests.support.harness import RunningService


async def wait_for(predicate: Any, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def overdue(svc: RunningService, sql: str, **params: Any) -> None:
    async with svc.state.engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_sla_job_in_three_replicas_escalates_each_breach_once(world: World, svc: RunningService) -> None:
    wu = world.as_steward("wu")
    late_response = [await world.submit("wang") for _ in range(5)]
    late_resolution = [await world.submit("wang") for _ in range(3)]
    paused = await world.submit("wang")
    on_time = await world.submit("wang")
    for t in late_resolution:
        await world.act(t["id"], "accept", wu)
    for action in ("accept", "start"):
        await world.act(paused["id"], action, wu)
    await world.act(paused["id"], "pause", wu, {"waiting_on": "resident"})
    await overdue(
        svc,
        "UPDATE tickets SET response_due_at = now() - interval '1 minute' WHERE id = ANY(:ids)",
        ids=[t["id"] for t in late_response],
    )
    await overdue(
        svc,
        "UPDATE tickets SET resolution_due_at = now() - interval '1 minute' WHERE id = ANY(:ids)",
        ids=[t["id"] for t in [*late_resolution, paused]],
    )

    async def replica() -> int:
        async with svc.state.sessionmaker() as session:
            return await sla.escalate_breaches(session, batch=2)

    async def replica_until_done() -> int:
        total = 0
        while (n := await replica()) > 0:
            total += n
        return total

    results = await asyncio.gather(*(replica_until_done() for _ in range(3)))
    assert sum(results) == 8
    breaches = await events(svc, "property.ticket.sla_breached.v1")
    assert sorted((b["ticket_id"], b["kind"]) for b in breaches) == sorted(
        [(t["id"], "response") for t in late_response] + [(t["id"], "resolution") for t in late_resolution]
    )
    assert paused["id"] not in {b["ticket_id"] for b in breaches}
    assert on_time["id"] not in {b["ticket_id"] for b in breaches}
    assert await count(svc, "SELECT count(*) FROM ticket_steps WHERE action = 'escalate'") == 8
    assert sum(await asyncio.gather(*(replica() for _ in range(3)))) == 0
    escalated = (await world.client.get("/tickets", params={"breached": "true", "limit": 50}, headers=world.as_admin())).json()
    assert len(escalated["items"]) == 8
    assert await steps_replay(world, late_response[0]["id"], world.as_admin()) == Status.assigned


async def _consumers_ready(svc: RunningService) -> None:
    for consumer in svc.state.consumers:
        await asyncio.wait_for(consumer.ready.wait(), 30)


async def _from_governance(svc: RunningService, event_type: str, key: str, data: dict[str, Any]) -> None:
    await publish_raw(
        svc.settings,
        svc.settings.kafka_namespace + GOVERNANCE_TOPIC,
        CloudEvent(type=event_type, source="/services/governance", key=key, data=data),
    )


async def test_redemption_is_fulfilled_by_a_prepaid_ticket(world: World, svc: RunningService) -> None:
    await world.post("/catalogue", {"code": "haircut", "name": "上门理发", "price_fen": 3000}, world.as_admin())
    await _consumers_ready(svc)
    ok, bad, other = (str(uuid.uuid4()) for _ in range(3))
    base = {"community": COMMUNITY, "resident_id": world.residents["wang"], "reward_id": "r1", "points": 300}
    await _from_governance(
        svc,
        "governance.redemption.reserved.v1",
        ok,
        {**base, "redemption_id": ok, "fulfilment": "property", "service_code": "haircut", "quantity": 2, "unknown_field": True},
    )
    await _from_governance(
        svc,
        "governance.redemption.reserved.v1",
        bad,
        {**base, "redemption_id": bad, "fulfilment": "property", "service_code": "nope"},
    )
    await _from_governance(
        svc,
        "governance.redemption.reserved.v1",
        other,
        {**base, "redemption_id": other, "fulfilment": "parking", "service_code": "x"},
    )

    async def both_answered() -> bool:
        answered = await events(svc, "property.redemption.fulfilled.v1") + await events(svc, "property.redemption.failed.v1")
        return len(answered) >= 2

    await wait_for(both_answered)
    fulfilled = await events(svc, "property.redemption.fulfilled.v1")
    assert [f["redemption_id"] for f in fulfilled] == [ok]
    failed = await events(svc, "property.redemption.failed.v1")
    assert [(f["redemption_id"], f["reason"]) for f in failed] == [(bad, "unknown-service-code")]
    ticket = (await world.client.get(f"/tickets/{fulfilled[0]['ticket_id']}", headers=world.as_resident("wang"))).json()
    assert (ticket["category"], ticket["quantity"], ticket["quote_fen"], ticket["payment_status"]) == ("service", 2, 6000, "paid")
    assert ticket["assignee_id"] == world.stewards["wu"]
    # Prepaid by points: the steward may start once accepted.
    for action in ("accept", "start"):
        await world.act(ticket["id"], action, world.as_steward("wu"))
    assert await count(svc, "SELECT count(*) FROM tickets WHERE redemption_id IS NOT NULL") == 1


async def test_points_payment_goes_through_governance(world: World, svc: RunningService) -> None:
    await world.post("/catalogue", {"code": "window-clean", "name": "擦窗", "price_fen": 5005}, world.as_admin())
    await _consumers_ready(svc)
    wang = world.as_resident("wang")
    paid_ticket = await world.submit("wang", "service", service_code="window-clean")
    rejected_ticket = await world.submit("wang", "service", service_code="window-clean")
    orders = []
    for t in (paid_ticket, rejected_ticket):
        r = await world.client.post(f"/tickets/{t['id']}/payments", json={"method": "points"}, headers=wang)
        assert r.status_code == 201, r.text
        assert (r.json()["status"], r.json()["points"]) == ("pending", 501)
        orders.append(r.json())
    requested = await events(svc, "property.points_payment.requested.v1")
    assert {(e["payment_id"], e["order_id"], e["points"]) for e in requested} == {
        (orders[0]["id"], paid_ticket["id"], 501),
        (orders[1]["id"], rejected_ticket["id"], 501),
    }
    await _from_governance(
        svc,
        "governance.points_payment.settled.v1",
        orders[0]["id"],
        {"payment_id": orders[0]["id"], "community": COMMUNITY, "status": "captured"},
    )
    await _from_governance(
        svc,
        "governance.points_payment.settled.v1",
        orders[1]["id"],
        {"payment_id": orders[1]["id"], "community": COMMUNITY, "status": "rejected", "reason": "insufficient-points"},
    )

    async def settled() -> bool:
        return await count(svc, "SELECT count(*) FROM payment_orders WHERE status <> 'pending'") == 2

    await wait_for(settled)
    first = (await world.client.get(f"/tickets/{paid_ticket['id']}", headers=wang)).json()
    second = (await world.client.get(f"/tickets/{rejected_ticket['id']}", headers=wang)).json()
    assert (first["payment_status"], second["payment_status"]) == ("paid", "rejected")
    # A rejected points payment may be retried with money.
    r = await world.client.post(f"/tickets/{rejected_ticket['id']}/payments", json={"method": "money"}, headers=wang)
    assert r.status_code == 201 and r.json()["status"] == "paid"


# --- random sequences over HTTP ----------------------------------------------------------------------------

BODIES: dict[Action, dict[str, Any] | None] = {
    Action.quote: {"amount_fen": 1000},
    Action.pause: {"waiting_on": "parts"},
    Action.rate: {"overall": 4, "speed": 4},
    Action.follow_up: {"note": "ok"},
    Action.cancel: {},
    Action.reject_quote: {},
    Action.return_work: {},
    Action.close: {},
}
HTTP_ACTIONS = [a for a in Action if a not in (Action.submit, Action.escalate, Action.hand_over, Action.reassign, Action.hurry)]
HTTP_ROLES = [Role.resident, Role.steward, Role.property_admin]


async def test_random_http_sequences_follow_the_table(world: World, svc: RunningService) -> None:
    await world.post("/catalogue", {"code": "quote-me", "name": "定制服务"}, world.as_admin())
    headers = {
        Role.resident: world.as_resident("wang"),
        Role.steward: world.as_steward("wu"),
        Role.property_admin: world.as_admin(),
    }
    loop_errors: list[BaseException] = []

    async def run(category: str, attempts: list[tuple[Action, Role]]) -> None:
        extra = {"service_code": "quote-me"} if category == "service" else {}
        # The daily flood limit is not what this test is about.
        await overdue(svc, "DELETE FROM daily_ticket_counts")
        t = await world.submit("wang", category, **extra)
        status = Status(t["status"])
        for action, role in attempts:
            r = await world.client.post(
                f"/tickets/{t['id']}/{action.value.replace('_', '-')}", json=BODIES.get(action), headers=headers[role]
            )
            if r.status_code == 200:
                after = Status(r.json()["status"])
                assert TRANSITIONS[status, action, role] == after
                status = after
            else:
                assert r.status_code in (403, 409, 429), r.text
                if r.json()["type"].endswith(("transition-not-allowed", "action-not-permitted")):
                    assert (status, action, role) not in TRANSITIONS
        assert await steps_replay(world, t["id"], headers[Role.resident]) == status
        current = (await world.client.get(f"/tickets/{t['id']}", headers=headers[Role.resident])).json()
        assert current["status"] == status

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        st.sampled_from(["repair", "service"]),
        st.lists(st.tuples(st.sampled_from(HTTP_ACTIONS), st.sampled_from(HTTP_ROLES)), max_size=12),
    )
    def check(category: str, attempts: list[tuple[Action, Role]]) -> None:
        future = asyncio.run_coroutine_threadsafe(run(category, attempts), loop)
        try:
            future.result(timeout=60)
        except BaseException as exc:
            loop_errors.append(exc)
            raise

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)
    assert not loop_errors
