"""Property through HTTP against the real database: registry, routing, the table, pricing, photos, limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.kit.tables import outbox
from services.property.domain import Action, Role, Status, Step, replay
from tests.property.conftest import COMMUNITY, World
from tests.property.transition_table import DECISIONS
from tests.support.harness import RunningService

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


async def events(svc: RunningService, event_type: str) -> list[dict[str, Any]]:
    async with svc.state.engine.connect() as conn:
        rows = (await conn.execute(outbox.select().where(outbox.c.type == event_type).order_by(outbox.c.id))).all()
    return [dict(r.data) for r in rows]


async def count(svc: RunningService, sql: str, **params: Any) -> int:
    async with svc.state.engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def steps_replay(world: World, ticket_id: str, headers: dict[str, str]) -> Status:
    r = await world.client.get(f"/tickets/{ticket_id}/steps", params={"limit": 200}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    trail = [
        Step(Action(s["action"]), Role(s["role"]), Status(s["from_status"]) if s["from_status"] else None, Status(s["to_status"]))
        for s in r.json()["items"]
    ]
    return replay(trail)


# --- registry --------------------------------------------------------------------------------------------


async def test_registry_changes_are_published_with_the_phone(world: World, svc: RunningService) -> None:
    registered = await events(svc, "property.resident.registered.v1")
    wang = next(e for e in registered if e["resident_id"] == world.residents["wang"])
    assert wang["phone"] == "17000000001"
    assert wang["household_id"] == world.households["101"] and wang["building_id"] == world.buildings["B1"]
    assert len(await events(svc, "property.household.registered.v1")) == 2
    staff = await events(svc, "property.staff.registered.v1")
    assert {s["username"] for s in staff} == {"steward.wu", "steward.zheng"}


async def test_unknown_building_is_refused_and_nothing_written(world: World, svc: RunningService) -> None:
    r = await world.client.post(
        "/households", json={"building_id": "00000000-0000-0000-0000-000000000001", "unit": "999"}, headers=world.as_admin()
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:community:problem:property/unknown-building"
    assert await count(svc, "SELECT count(*) FROM households WHERE unit = '999'") == 0


async def test_duplicate_phone_is_a_conflict(world: World) -> None:
    r = await world.client.post(
        "/residents",
        json={"household_id": world.households["101"], "name": "x", "phone": "17000000001"},
        headers=world.as_admin(),
    )
    assert r.status_code == 409
    assert r.json()["type"] == "urn:community:problem:property/already-registered"


async def test_only_admins_register(world: World) -> None:
    r = await world.client.post("/buildings", json={"code": "B9", "name": "9幢"}, headers=world.as_resident("wang"))
    assert r.status_code == 403


# --- submitting and routing ----------------------------------------------------------------------------------


async def test_routing_steward_then_backup_then_queue(world: World) -> None:
    t = await world.submit("wang")
    assert (t["status"], t["assignee_id"]) == ("assigned", world.stewards["wu"])
    # wu goes off duty: B1's backup (zheng) gets the next one.
    await world.client.put(f"/staff/{world.stewards['wu']}/roster", json={"shifts": []}, headers=world.as_admin())
    t = await world.submit("wang")
    assert (t["status"], t["assignee_id"]) == ("assigned", world.stewards["zheng"])
    # Nobody on duty: the community queue.
    await world.client.put(f"/staff/{world.stewards['zheng']}/roster", json={"shifts": []}, headers=world.as_admin())
    t = await world.submit("wang")
    assert (t["status"], t["assignee_id"]) == ("queued", None)


async def test_a_filing_writes_its_ticket_step_and_event_together(world: World, svc: RunningService) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {**world.as_resident("wang"), "traceparent": f"00-{trace}-b7ad6b7169203331-01"}
    r = await world.client.post("/tickets", json={"category": "repair", "description": "水管漏水"}, headers=headers)
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["due_at"] == t["response_due_at"] and t["source"] == "resident" and t["photo_ids"] == []
    async with svc.state.engine.connect() as conn:
        row = (await conn.execute(outbox.select().where(outbox.c.key == t["id"]))).one()
        step = (await conn.execute(text("SELECT * FROM ticket_steps WHERE ticket_id = :t"), {"t": t["id"]})).one()
    assert row.type == "property.ticket.submitted.v1" and row.traceparent.split("-")[1] == trace
    assert row.data == {
        "ticket_id": t["id"],
        "community": COMMUNITY,
        "category": "repair",
        "status": "assigned",
        "service_code": None,
        "priority": "normal",
        "building_id": t["building_id"],
        "household_id": t["household_id"],
        "resident_id": t["resident_id"],
        "source": "resident",
        "assignee_id": world.stewards["wu"],
        "routed_via": "steward",
        "response_due_at": row.data["response_due_at"],
        "resolution_due_at": row.data["resolution_due_at"],
        "submitted_at": row.data["submitted_at"],
    }
    assert (step.action, step.role, step.actor_id, step.to_status, step.data) == (
        "submit",
        "resident",
        t["resident_id"],
        "assigned",
        {"routed_via": "steward"},
    )


async def test_unknown_category_and_service_are_refused(world: World, svc: RunningService) -> None:
    r = await world.client.post("/tickets", json={"category": "plumbing", "description": "x"}, headers=world.as_resident("wang"))
    assert r.status_code == 422 and r.json()["type"] == "urn:community:problem:validation-error"
    r = await world.client.post(
        "/tickets", json={"category": "service", "service_code": "nope", "description": "x"}, headers=world.as_resident("wang")
    )
    assert r.status_code == 422 and r.json()["type"] == "urn:community:problem:property/unknown-service"
    assert await count(svc, "SELECT count(*) FROM tickets") == 0


async def test_unregistered_caller_cannot_submit(world: World, stack: Any) -> None:
    headers = stack.auth("00000000-0000-0000-0000-0000000000aa", "resident", community=COMMUNITY)
    r = await world.client.post("/tickets", json={"category": "repair", "description": "x"}, headers=headers)
    assert r.status_code == 403
    assert r.json()["type"] == "urn:community:problem:property/resident-not-registered"


async def test_idempotency_key_returns_the_first_ticket(world: World, svc: RunningService) -> None:
    headers = {**world.as_resident("wang"), "Idempotency-Key": "t-1"}
    body = {"category": "repair", "description": "灯坏了"}
    first, second = await asyncio.gather(*(world.client.post("/tickets", json=body, headers=headers) for _ in range(2)))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert await count(svc, "SELECT count(*) FROM tickets") == 1


async def test_daily_limit_holds_under_a_flood(world: World, svc: RunningService) -> None:
    limit = svc.settings.daily_ticket_limit  # type: ignore[attr-defined]
    results = await asyncio.gather(
        *(
            world.client.post("/tickets", json={"category": "cleaning", "description": "x"}, headers=world.as_resident("li"))
            for _ in range(limit + 6)
        )
    )
    codes = [r.status_code for r in results]
    assert codes.count(201) == limit
    assert codes.count(429) == 6
    assert {r.json()["type"] for r in results if r.status_code == 429} == {"urn:community:problem:property/daily-limit-reached"}


# --- visibility ----------------------------------------------------------------------------------------------


async def test_other_household_gets_404_same_household_sees_it(world: World) -> None:
    t = await world.submit("wang")
    r = await world.client.get(f"/tickets/{t['id']}", headers=world.as_resident("li"))
    assert r.status_code == 404
    r = await world.client.post(f"/tickets/{t['id']}/cancel", json={}, headers=world.as_resident("li"))
    assert r.status_code == 404
    r = await world.client.get(f"/tickets/{t['id']}", headers=world.as_resident("wang-son"))
    assert r.status_code == 200
    mine = (await world.client.get("/tickets", headers=world.as_resident("li"))).json()
    assert mine["items"] == []


# --- the transition table over HTTP -------------------------------------------------------------------------


async def test_refused_transition_names_status_action_and_role(world: World) -> None:
    t = await world.submit("wang")
    body = await world.act(t["id"], "complete", world.as_steward("wu"), status=409)
    assert body["type"] == "urn:community:problem:property/transition-not-allowed"
    assert (body["ticket_status"], body["action"], body["role"]) == ("assigned", "complete", "steward")
    body = await world.act(t["id"], "accept", world.as_resident("wang"), status=403)
    assert body["type"] == "urn:community:problem:property/action-not-permitted"
    assert (body["ticket_status"], body["action"], body["role"]) == ("assigned", "accept", "resident")


ACTION_BODIES: dict[Action, dict[str, Any]] = {
    Action.quote: {"amount_fen": 1000},
    Action.pause: {"waiting_on": "parts"},
    Action.rate: {"overall": 4, "speed": 4},
    Action.follow_up: {"note": "ok"},
    Action.hand_over: {"to_staff_id": "00000000-0000-0000-0000-000000000000", "reason": "r"},
    Action.reassign: {"to_staff_id": "00000000-0000-0000-0000-000000000000", "reason": "r"},
}
REFUSAL_TYPES = {403: "action-not-permitted", 409: "transition-not-allowed"}


async def test_refusals_over_http_answer_the_documented_table(world: World, svc: RunningService) -> None:
    """Every refused (action, role) on an assigned and an in-progress ticket: 403 or 409 as docs/property.md says."""
    callers = {
        Role.resident: world.as_resident("wang"),
        Role.steward: world.as_steward("wu"),
        Role.property_admin: world.as_admin(),
    }
    assigned = await world.submit("wang")
    working = await world.submit("wang")
    await world.act(working["id"], "accept", callers[Role.steward])
    await world.act(working["id"], "start", callers[Role.steward])
    routed = [a for a in Action if a not in (Action.submit, Action.escalate)]
    for ticket, status in ((assigned, Status.assigned), (working, Status.in_progress)):
        for action in routed:
            for role, headers in callers.items():
                expected = DECISIONS.get((status, action, role), "403")
                if expected not in ("403", "409"):
                    continue
                path = f"/tickets/{ticket['id']}/{action.value.replace('_', '-')}"
                r = await world.client.post(path, json=ACTION_BODIES.get(action, {}), headers=headers)
                assert r.status_code == int(expected), (status, action, role, r.text)
                assert r.json()["type"] == f"urn:community:problem:property/{REFUSAL_TYPES[r.status_code]}"
        assert (await world.client.get(f"/tickets/{ticket['id']}", headers=callers[Role.resident])).json()["status"] == status
    # A resident of another household learns nothing: 404 whatever the action.
    r = await world.client.post(f"/tickets/{assigned['id']}/accept", json={}, headers=world.as_resident("li"))
    assert r.status_code == 404


async def test_another_steward_cannot_work_a_ticket_not_theirs(world: World) -> None:
    t = await world.submit("wang")
    body = await world.act(t["id"], "accept", world.as_steward("zheng"), status=403)
    assert body["type"] == "urn:community:problem:property/not-assignee"


async def test_basic_lifecycle_with_pause_rating_and_follow_up(world: World, svc: RunningService) -> None:
    wu, wang = world.as_steward("wu"), world.as_resident("wang")
    t = await world.submit("wang")
    await world.act(t["id"], "accept", wu)
    await world.act(t["id"], "start", wu)
    paused = await world.act(t["id"], "pause", wu, {"waiting_on": "parts", "reason": "等配件"})
    assert paused["status"] == "paused"
    resumed = await world.act(t["id"], "resume", wu)
    assert resumed["resolution_due_at"] >= t["resolution_due_at"]
    await world.act(t["id"], "complete", wu)
    returned = await world.act(t["id"], "return-work", wang, {"reason": "还在漏"})
    assert returned["status"] == "in_progress"
    await world.act(t["id"], "complete", wu)
    await world.act(t["id"], "confirm", wang)
    rated = await world.act(t["id"], "rate", wang, {"overall": 5, "speed": 4, "comment": "很快"})
    assert (rated["rating_overall"], rated["rating_speed"]) == (5, 4)
    again = await world.act(t["id"], "rate", wang, {"overall": 1, "speed": 1}, status=409)
    assert again["type"] == "urn:community:problem:property/already-rated"
    await world.act(t["id"], "follow-up", wu, {"note": "回访满意"})
    closed = await world.act(t["id"], "close", world.as_admin(), {})
    assert closed["status"] == "closed"
    assert await steps_replay(world, t["id"], wang) == Status.closed
    assert len(await events(svc, "property.ticket.completed.v1")) == 2
    changes = await events(svc, "property.ticket.status_changed.v1")
    assert [c["action"] for c in changes][:3] == ["accept", "start", "pause"]


async def test_hand_over_and_reassign(world: World, svc: RunningService) -> None:
    t = await world.submit("wang")
    await world.act(t["id"], "accept", world.as_steward("wu"))
    handed = await world.act(
        t["id"], "hand-over", world.as_steward("wu"), {"to_staff_id": world.stewards["zheng"], "reason": "休假"}
    )
    assert handed["assignee_id"] == world.stewards["zheng"]
    await world.act(t["id"], "start", world.as_steward("wu"), status=403)
    back = await world.act(t["id"], "reassign", world.as_admin(), {"to_staff_id": world.stewards["wu"], "reason": "回来了"})
    assert back["assignee_id"] == world.stewards["wu"]
    bad = await world.act(
        t["id"], "reassign", world.as_admin(), {"to_staff_id": world.residents["li"], "reason": "x"}, status=422
    )
    assert bad["type"] == "urn:community:problem:property/unknown-staff"
    # Each change of hands names the steward now holding the ticket (notify tells them); the refused one, nobody.
    moves = [e for e in await events(svc, "property.ticket.reassigned.v1") if e["ticket_id"] == t["id"]]
    wu, zheng = world.stewards["wu"], world.stewards["zheng"]
    assert [(e["from_assignee_id"], e["assignee_id"], e["actor_id"]) for e in moves] == [
        (wu, zheng, wu),
        (zheng, wu, world.admin),
    ]
    assert moves[0]["priority"] == t["priority"] and moves[0]["category"] == t["category"]


async def test_hurry_is_rate_limited(world: World) -> None:
    t = await world.submit("wang")
    hurried = await world.act(t["id"], "hurry", world.as_resident("wang"))
    assert hurried["hurry_count"] == 1
    body = await world.act(t["id"], "hurry", world.as_resident("wang"), status=429)
    assert body["type"] == "urn:community:problem:property/hurry-too-soon"


# --- pricing ---------------------------------------------------------------------------------------------------


async def test_basic_ticket_never_carries_a_charge(world: World, svc: RunningService) -> None:
    wu = world.as_steward("wu")
    t = await world.submit("wang")
    await world.act(t["id"], "accept", wu)
    body = await world.act(t["id"], "quote", wu, {"amount_fen": 5000}, status=409)
    assert body["type"] == "urn:community:problem:property/basic-service-is-free"
    r = await world.client.post(f"/tickets/{t['id']}/payments", json={"method": "money"}, headers=world.as_resident("wang"))
    assert r.status_code == 409 and r.json()["type"] == "urn:community:problem:property/basic-service-is-free"
    # And the database refuses it too, whatever code tries.
    with pytest.raises(IntegrityError):
        async with svc.state.engine.begin() as conn:
            await conn.execute(text("UPDATE tickets SET quote_fen = 100 WHERE id = :id"), {"id": t["id"]})
    with pytest.raises(IntegrityError):
        async with svc.state.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO payment_orders (id, community, ticket_id, ticket_category, resident_id, method, amount_fen,"
                    " status) VALUES (gen_random_uuid()::text, :c, :t, 'repair', 'r', 'money', 100, 'paid')"
                ),
                {"c": COMMUNITY, "t": t["id"]},
            )
    assert await count(svc, "SELECT count(*) FROM payment_orders") == 0


async def _catalogue(world: World, code: str, price_fen: int | None) -> None:
    body: dict[str, Any] = {"code": code, "name": "家电清洗"}
    if price_fen is not None:
        body["price_fen"] = price_fen
    await world.post("/catalogue", body, world.as_admin())


async def test_paid_work_needs_an_approved_quote(world: World, svc: RunningService) -> None:
    wu, wang = world.as_steward("wu"), world.as_resident("wang")
    await _catalogue(world, "aircon-clean", None)
    t = await world.submit("wang", "service", service_code="aircon-clean")
    await world.act(t["id"], "accept", wu)
    body = await world.act(t["id"], "start", wu, status=409)
    assert body["type"] == "urn:community:problem:property/quote-not-approved"
    with pytest.raises(IntegrityError):
        async with svc.state.engine.begin() as conn:
            await conn.execute(text("UPDATE tickets SET status = 'in_progress' WHERE id = :id"), {"id": t["id"]})
    await world.act(t["id"], "quote", wu, {"amount_fen": 8800})
    rejected = await world.act(t["id"], "reject-quote", wang, {"reason": "太贵"})
    assert (rejected["status"], rejected["quote_fen"]) == ("accepted", None)
    await world.act(t["id"], "quote", wu, {"amount_fen": 6800})
    approved = await world.act(t["id"], "approve-quote", wang)
    assert approved["status"] == "approved" and approved["quote_approved_at"] is not None
    started = await world.act(t["id"], "start", wu)
    assert started["status"] == "in_progress"
    r = await world.client.post(f"/tickets/{t['id']}/payments", json={"method": "money"}, headers=wang)
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["amount_fen"]) == ("paid", 6800)
    r = await world.client.post(f"/tickets/{t['id']}/payments", json={"method": "money"}, headers=wang)
    assert r.status_code == 409 and r.json()["type"] == "urn:community:problem:property/nothing-to-pay"
    assert (await world.client.get(f"/tickets/{t['id']}", headers=wang)).json()["payment_status"] == "paid"


async def test_catalogue_price_counts_as_approved(world: World) -> None:
    await _catalogue(world, "sofa-clean", 12000)
    t = await world.submit("wang", "service", service_code="sofa-clean")
    assert (t["quote_fen"], t["quote_approved_at"] is not None) == (12000, True)
    await world.act(t["id"], "accept", world.as_steward("wu"))
    assert (await world.act(t["id"], "start", world.as_steward("wu")))["status"] == "in_progress"


# --- photos ----------------------------------------------------------------------------------------------------


async def test_photos_checked_by_content_and_size(world: World, svc: RunningService) -> None:
    wang = world.as_resident("wang")
    r = await world.client.post("/photos", content=b"GIF89a" + b"\x00" * 100, headers={**wang, "Content-Type": "image/png"})
    assert r.status_code == 415 and r.json()["type"] == "urn:community:problem:property/photo-not-image"
    r = await world.client.post(
        "/photos", content=b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024), headers={**wang, "Content-Type": "image/jpeg"}
    )
    assert r.status_code == 413 and r.json()["type"] == "urn:community:problem:property/photo-too-large"
    assert await count(svc, "SELECT count(*) FROM photos") == 0
    r = await world.client.post("/photos", content=PNG, headers={**wang, "Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    photo = r.json()
    assert photo["media_type"] == "image/png"
    t = await world.submit("wang", photo_ids=[photo["id"]])
    assert t["photo_ids"] == [photo["id"]]
    # A photo is attached once, and only by its uploader.
    body = await world.submit("wang", photo_ids=[photo["id"]], status=422)
    assert body["type"] == "urn:community:problem:property/photo-unavailable"
    r = await world.client.get(f"/photos/{photo['id']}", headers=world.as_steward("wu"))
    assert r.status_code == 200 and r.content == PNG
    r = await world.client.get(f"/photos/{photo['id']}", headers=world.as_resident("li"))
    assert r.status_code == 404


async def test_ticket_lists_page_by_cursor_newest_first_with_each_tickets_photos(world: World) -> None:
    wang = world.as_resident("wang")
    photo = (await world.client.post("/photos", content=PNG, headers={**wang, "Content-Type": "image/png"})).json()
    first = await world.submit("wang", photo_ids=[photo["id"]])
    second = await world.submit("wang-son")
    third = await world.submit("li")
    staff_pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await world.client.get("/tickets", params=params, headers=world.as_admin())).json()
        staff_pages.append([t["id"] for t in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert staff_pages == [[third["id"], second["id"]], [first["id"]]]
    household = (await world.client.get("/tickets", params={"limit": 1}, headers=wang)).json()
    assert [t["id"] for t in household["items"]] == [second["id"]]
    rest = (await world.client.get("/tickets", params={"cursor": household["next_cursor"]}, headers=wang)).json()
    assert [(t["id"], t["photo_ids"]) for t in rest["items"]] == [(first["id"], [photo["id"]])]
    assert rest["next_cursor"] is None
    by_status = (await world.client.get("/tickets", params={"status": "cancelled"}, headers=world.as_admin())).json()
    assert by_status["items"] == []


# --- races -------------------------------------------------------------------------------------------------------


async def test_two_stewards_accepting_a_queue_ticket_exactly_one_wins(world: World, svc: RunningService) -> None:
    for name in ("wu", "zheng"):
        await world.client.put(f"/staff/{world.stewards[name]}/roster", json={"shifts": []}, headers=world.as_admin())
    extra = [await world.steward(f"s{i}", [], [], on_duty=False) for i in range(6)]
    stewards = [world.stewards["wu"], world.stewards["zheng"], *extra]
    for _ in range(3):
        t = await world.submit("wang")
        assert t["status"] == "queued"
        results = await asyncio.gather(
            *(
                world.client.post(f"/tickets/{t['id']}/accept", headers=world.stack.auth(s, "steward", community=COMMUNITY))
                for s in stewards
            )
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [200] + [409] * (len(stewards) - 1)
        winner = next(r.json() for r in results if r.status_code == 200)
        assert await count(svc, "SELECT count(*) FROM ticket_steps WHERE ticket_id = :t AND action = 'accept'", t=t["id"]) == 1
        final = (await world.client.get(f"/tickets/{t['id']}", headers=world.as_admin())).json()
        assert final["assignee_id"] == winner["assignee_id"]


# --- queue, lists and figures ----------------------------------------------------------------------------------


async def test_steward_queue_sorted_by_deadline_and_paged(world: World) -> None:
    r = await world.client.put(
        "/sla-policies/repair/urgent", json={"response_minutes": 5, "resolution_minutes": 60}, headers=world.as_admin()
    )
    assert r.status_code == 200, r.text
    normal = [await world.submit("wang") for _ in range(3)]
    urgent = await world.submit("wang", priority="urgent")
    page1 = (await world.client.get("/queue?limit=2", headers=world.as_steward("wu"))).json()
    assert page1["items"][0]["id"] == urgent["id"]
    page2 = (
        await world.client.get("/queue", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=world.as_steward("wu"))
    ).json()
    ids = [t["id"] for t in page1["items"] + page2["items"]]
    assert ids == [urgent["id"]] + [t["id"] for t in normal]
    assert page2["next_cursor"] is None
    dues = [t["due_at"] for t in page1["items"] + page2["items"]]
    assert dues == sorted(dues)
    assert (await world.client.get("/queue", headers=world.as_steward("zheng"))).json()["items"] == []
    r = await world.client.get("/queue", headers=world.as_resident("wang"))
    assert r.status_code == 403


async def test_monthly_figures_per_steward(world: World) -> None:
    wu, wang = world.as_steward("wu"), world.as_resident("wang")
    for overall in (5, 3):
        t = await world.submit("wang")
        for action in ("accept", "start", "complete"):
            await world.act(t["id"], action, wu)
        await world.act(t["id"], "confirm", wang)
        await world.act(t["id"], "rate", wang, {"overall": overall, "speed": 4})
    await world.submit("wang")
    month = t["created_at"][:7]
    figures = (
        await world.client.get(f"/staff/{world.stewards['wu']}/figures", params={"month": month}, headers=world.as_admin())
    ).json()
    assert (figures["tickets"], figures["completed"], figures["on_time"], figures["rated"]) == (3, 2, 2, 2)
    assert figures["on_time_rate"] == 1.0 and figures["average_rating"] == 4.0
    r = await world.client.get(
        f"/staff/{world.stewards['wu']}/figures", params={"month": month}, headers=world.as_steward("zheng")
    )
    assert r.status_code == 403
