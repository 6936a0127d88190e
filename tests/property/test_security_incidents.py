"""Security's alarms and device outages become urgent system-filed tickets: once per incident however
many consumers apply the event at once, routed to the building's steward, never shown to a resident,
and an outage's ticket closed when the device is back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from services.kit.envelope import CloudEvent
from services.kit.inbox import EventConsumer
from services.property.consumers import security_consumer
from tests.property.conftest import COMMUNITY, World
from tests.support.harness import RunningService


def security_event(event_type: str, key: str, **data: Any) -> CloudEvent:
    return CloudEvent(type=event_type, source="/services/security", data={"community": COMMUNITY, **data}, key=key)


def replicas(svc: RunningService, n: int) -> list[EventConsumer]:
    """n consumers of the group, as n replicas of property would run (same database, own loops)."""
    return [EventConsumer(security_consumer, settings=svc.settings, sessionmaker=svc.state.sessionmaker) for _ in range(n)]


async def incident_tickets(w: World, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await w.client.get("/tickets", params={"limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    return [t for t in r.json()["items"] if t["source"] == "security"]


async def test_an_alarm_applied_by_many_consumers_at_once_opens_one_urgent_ticket(svc: RunningService, world: World) -> None:
    w = world
    raised = {
        "alarm_id": "al-1",
        "kind": "fire",
        "building_id": w.buildings["B1"],
        "device_id": "dev-1",
        "steward_id": w.stewards["wu"],
        "relative_id": None,
        "raised_at": datetime.now(UTC).isoformat(),
    }
    same = security_event("security.alarm.raised.v1", "al-1", **raised)
    # The same event delivered by four replicas five times each, and two other copies of the
    # incident (another event id: a republish) at the same moment.
    copies = [security_event("security.alarm.raised.v1", "al-1", **raised) for _ in range(2)]
    calls = [c.apply(same) for c in replicas(svc, 4) for _ in range(5)]
    calls += [c.apply(e) for c, e in zip(replicas(svc, 2), copies, strict=True)]
    applied = await asyncio.gather(*calls)
    assert sorted(applied) == [False] * 19 + [True] * 3  # the inbox: the event once, each copy once

    [ticket] = await incident_tickets(w, w.as_admin())
    assert ticket["incident_id"] == "alarm:al-1"
    assert (ticket["priority"], ticket["category"], ticket["building_id"]) == ("urgent", "repair", w.buildings["B1"])
    assert ticket["resident_id"] is None and ticket["household_id"] is None
    assert ticket["assignee_id"] == w.stewards["wu"]  # B1's steward, on duty
    assert "火警" in ticket["description"]

    # The steward has it in their queue; no resident sees it, not even by its id.
    r = await w.client.get("/queue", params={"scope": "mine"}, headers=w.as_steward("wu"))
    assert ticket["id"] in [t["id"] for t in r.json()["items"]]
    for resident in ("wang", "li"):
        assert await incident_tickets(w, w.as_resident(resident)) == []
        r = await w.client.get(f"/tickets/{ticket['id']}", headers=w.as_resident(resident))
        assert r.status_code == 404, r.text
    # The steward works it like any ticket.
    await w.act(ticket["id"], "accept", w.as_steward("wu"))


async def test_an_outage_opens_one_ticket_and_its_end_closes_it_once(svc: RunningService, world: World) -> None:
    w = world
    since = datetime.now(UTC)
    offline = {
        "device_id": "gate-7",
        "building_id": w.buildings["B2"],
        "kind": "gate",
        "steward_id": w.stewards["zheng"],
        "last_seen_at": since.isoformat(),
        "offline_since": since.isoformat(),
    }
    went = security_event("security.device.offline.v1", "gate-7", **offline)
    await asyncio.gather(*(c.apply(went) for c in replicas(svc, 3)))
    [ticket] = await incident_tickets(w, w.as_admin())
    assert ticket["status"] == "assigned" and ticket["assignee_id"] == w.stewards["zheng"]

    back = {
        "device_id": "gate-7",
        "building_id": w.buildings["B2"],
        "kind": "gate",
        "steward_id": w.stewards["zheng"],
        "offline_since": since.isoformat(),
        "back_at": datetime.now(UTC).isoformat(),
    }
    backs = [security_event("security.device.back_online.v1", "gate-7", **back) for _ in range(2)]
    await asyncio.gather(*(c.apply(e) for c, e in zip(replicas(svc, 2), backs, strict=True)))
    [closed] = await incident_tickets(w, w.as_admin())
    assert closed["id"] == ticket["id"] and closed["status"] == "closed"
    r = await w.client.get(f"/tickets/{ticket['id']}/steps", headers=w.as_admin())
    steps = [(s["action"], s["role"], s["to_status"]) for s in r.json()["items"]]
    assert steps == [("submit", "system", "assigned"), ("close", "system", "closed")]  # closed once

    # The next outage of the same device is a new incident: a new ticket.
    later = datetime.now(UTC)
    again = security_event(
        "security.device.offline.v1",
        "gate-7",
        **{**offline, "offline_since": later.isoformat(), "last_seen_at": later.isoformat()},
    )
    await replicas(svc, 1)[0].apply(again)
    assert len(await incident_tickets(w, w.as_admin())) == 2


async def test_an_incident_in_an_unknown_building_opens_nothing(svc: RunningService, world: World) -> None:
    w = world
    event = security_event(
        "security.alarm.raised.v1",
        "al-x",
        alarm_id="al-x",
        kind="smoke",
        building_id=f"b-{uuid.uuid4().hex[:6]}",
        device_id=None,
        raised_at=datetime.now(UTC).isoformat(),
    )
    assert await replicas(svc, 1)[0].apply(event)
    assert await incident_tickets(w, w.as_admin()) == []


async def test_a_security_guard_reads_the_security_tickets_only_and_works_none(svc: RunningService, world: World) -> None:
    w = world
    guard = await w.post("/staff", {"name": "蒋保安", "username": "guard.jiang", "roles": ["security_guard"]}, w.as_admin())
    assert guard["roles"] == ["security_guard"]
    as_guard = w.stack.auth(guard["id"], "security_guard", community=COMMUNITY)
    residents_ticket = await w.submit("wang")
    raised = {
        "alarm_id": "al-g",
        "kind": "smoke",
        "building_id": w.buildings["B1"],
        "device_id": "smoke-1",
        "steward_id": w.stewards["wu"],
        "raised_at": datetime.now(UTC).isoformat(),
    }
    assert await replicas(svc, 1)[0].apply(security_event("security.alarm.raised.v1", "al-g", **raised))
    [alarm_ticket] = await incident_tickets(w, w.as_admin())

    # The guard's list holds the alarm's ticket and nothing of the residents'; so does a filtered one.
    for params in ({}, {"building_id": w.buildings["B1"]}, {"sort": "due_at"}):
        r = await w.client.get("/tickets", params=params, headers=as_guard)
        assert r.status_code == 200, r.text
        assert [t["id"] for t in r.json()["items"]] == [alarm_ticket["id"]]
    r = await w.client.get(f"/tickets/{alarm_ticket['id']}", headers=as_guard)
    assert r.status_code == 200 and r.json()["incident_id"] == "alarm:al-g"
    r = await w.client.get(f"/tickets/{alarm_ticket['id']}/steps", headers=as_guard)
    assert [s["action"] for s in r.json()["items"]] == ["submit"]
    # A resident's ticket is 404 to a guard, by id, steps and payments alike.
    for path in ("", "/steps", "/payments"):
        r = await w.client.get(f"/tickets/{residents_ticket['id']}{path}", headers=as_guard)
        assert r.status_code == 404, (path, r.text)
    # The steward works the alarm's ticket; a guard may not (403), neither it nor a resident's (404).
    for action in ("accept", "cancel", "close"):
        body = {"reason": "误报"} if action in ("cancel", "close") else None
        await w.act(alarm_ticket["id"], action, as_guard, body, status=403)
    await w.act(residents_ticket["id"], "cancel", as_guard, {"reason": "x"}, status=404)
    r = await w.client.get("/queue", headers=as_guard)
    assert r.status_code == 403, r.text
    # Another community's guard sees neither.
    elsewhere = w.stack.auth(guard["id"], "security_guard", community="another-community")
    r = await w.client.get(f"/tickets/{alarm_ticket['id']}", headers=elsewhere)
    assert r.status_code == 404, r.text
    r = await w.client.get("/tickets", headers=elsewhere)
    assert r.status_code == 200 and r.json()["items"] == []
    await w.act(alarm_ticket["id"], "accept", w.as_steward("wu"))
