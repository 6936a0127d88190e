"""Smart security (智慧安防) across the real broker, through the gateway: an alarm a device raises
becomes one urgent property ticket in its building, routed to the steward, read (not worked) by the
security guard and told to both; a visitor pass with a plate lets the car through parking's gate
without a booking until it is revoked; and a guard, logged in by password like any staff member,
does the watch's work and opens nothing of the residents' anywhere else.

Security, property, parking and notify run their real consumers on one Kafka namespace; the tests
wait on each service's state (its API, or its own table where no API shows it), never on time.
"""

from __future__ import annotations

import importlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from deploy.local import demo_community as demo
from gateway import demo as gateway_demo
from tests.e2e.conftest import (
    Community,
    Person,
    Platform,
    StaffMember,
    bearer,
    served_community,
    start_platform,
    wait_until,
)
from tests.gateway.conftest import gateway_template  # noqa: F401 (fixture)
from tests.support.stack import TestStack

SERVICES = ("property", "timebank", "parking", "governance", "notify", "security")
ALL_WEEK = [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(7)]


@pytest.fixture(scope="module")
async def platform(
    stack: TestStack,
    gateway_template: str,  # noqa: F811 (the imported fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    """The services these flows cross (citysync is not one of them), behind the gateway."""
    async with start_platform(stack, gateway_template, tmp_path_factory, SERVICES) as started:
        yield started


async def rows(community: Community, service: str, sql: str, **params: Any) -> list[Any]:
    """A service's own table, for a wait on state no route shows (parking's view of a pass)."""
    svc = community.platform.services[service]
    async with svc.state.sessionmaker() as session, session.begin():
        return list((await session.execute(text(sql), {"community": community.id, **params})).all())


async def on_duty_steward(community: Community) -> StaffMember:
    """The building's steward, on duty all week, whom security knows as the building's steward."""
    steward = await community.staff("steward", buildings=[community.building_id])
    await community.call("PUT", f"/api/property/staff/{steward.id}/roster", community.admin, {"shifts": ALL_WEEK})

    async def security_knows() -> bool:
        sql = "SELECT 1 FROM buildings WHERE community = :community AND building_id = :b AND steward_id = :s"
        return bool(await rows(community, "security", sql, b=community.building_id, s=steward.id))

    await wait_until(security_knows, what="security learning the building's steward from property")
    return steward


async def known_to_security(community: Community, person: Person) -> None:
    async def known() -> bool:
        sql = "SELECT 1 FROM residents WHERE community = :community AND resident_id = :r"
        return bool(await rows(community, "security", sql, r=person.id))

    await wait_until(known, what=f"security learning {person.name} from property")


async def kinds_told(community: Community, who: StaffMember) -> list[str]:
    page = await community.call("GET", "/api/notify/notifications", who.auth)
    return [str(n["kind"]) for n in page["items"]]


async def test_an_alarm_becomes_one_urgent_ticket_for_the_steward_that_the_guard_reads(community: Community) -> None:
    await community.building("B1")
    steward = await on_duty_steward(community)
    guard = await community.staff("security_guard")  # the gateway issues the role from property's registry
    device_id, device = await community.machine(f"smoke-{uuid.uuid4().hex[:8]}", "gate_device")
    await community.call(
        "POST",
        "/api/security/devices",
        community.admin,
        {"id": device_id, "building_id": community.building_id, "kind": "smoke", "name": "1幢楼梯间烟感"},
        expected=(201,),
    )

    # The sensor reports the incident, and again (a device retries): one alarm.
    report = {"incident_id": "stair-smoke-1", "kind": "smoke"}
    alarm = await community.call("POST", "/api/security/alarms", device, report)
    assert (await community.call("POST", "/api/security/alarms", device, report))["id"] == alarm["id"]

    async def security_tickets(who: dict[str, str]) -> list[dict[str, Any]]:
        page = await community.call("GET", "/api/property/tickets", who)
        return [t for t in page["items"] if t["source"] == "security"]

    async def ticket_opened() -> bool:
        return bool(await security_tickets(community.admin))

    await wait_until(ticket_opened, what="property opening the alarm's ticket from security's event")

    # Notify tells the steward and the guard (the same event, another consumer group).
    async def both_told() -> bool:
        return "security.alarm" in await kinds_told(community, steward) and "security.alarm" in await kinds_told(community, guard)

    await wait_until(both_told, what="notify telling the steward and the guard of the alarm")
    [ticket] = await security_tickets(community.admin)
    assert ticket["incident_id"] == f"alarm:{alarm['id']}"
    assert (ticket["priority"], ticket["building_id"], ticket["assignee_id"]) == ("urgent", community.building_id, steward.id)
    assert ticket["resident_id"] is None and ticket["household_id"] is None
    queue = await community.call("GET", "/api/property/queue", steward.auth, params={"scope": "mine"})
    assert [t["id"] for t in queue["items"]] == [ticket["id"]]

    # The guard reads it (list and id), answers the alarm in security, and cannot work the ticket.
    assert [t["id"] for t in await security_tickets(guard.auth)] == [ticket["id"]]
    assert (await community.call("GET", f"/api/property/tickets/{ticket['id']}", guard.auth))["id"] == ticket["id"]
    await community.call("POST", f"/api/property/tickets/{ticket['id']}/accept", guard.auth, expected=(403,))
    answered = await community.call("POST", f"/api/security/alarms/{alarm['id']}/acknowledge", guard.auth)
    assert answered["acknowledged_by"] == guard.id and answered["acknowledged_at"]
    await community.call("POST", f"/api/property/tickets/{ticket['id']}/accept", steward.auth)
    assert len(await security_tickets(community.admin)) == 1


async def test_a_visitor_pass_with_a_plate_opens_parkings_gate_until_it_is_revoked(community: Community) -> None:
    await community.building("B1")
    host = await community.resident("林访客主人")
    steward = await community.staff("steward")
    gate_id, gate = await community.machine(f"gate-{uuid.uuid4().hex[:8]}", "gate_device")
    await community.call("POST", "/api/parking/gate-devices", steward.auth, {"id": gate_id, "name": "北门道闸"}, expected=(201,))
    plate = "浙K" + "".join(random.choices("0123456789", k=5))

    # No booking and no pass: the gate refuses the car (there is no public spot either).
    refused = await community.call("POST", "/api/parking/gate/entries", gate, {"plate": plate})
    assert (refused["decision"], refused["visitor_pass_id"]) == ("refused", None)

    await known_to_security(community, host)
    start = datetime.now(UTC) - timedelta(minutes=5)
    window = {"valid_from": start.isoformat(), "valid_until": (start + timedelta(hours=4)).isoformat()}
    issued = await community.call(
        "POST", "/api/security/passes", host.auth, {**window, "plate": plate, "max_entries": 2}, expected=(201,)
    )
    pass_id = str(issued["id"])

    async def parking_allows() -> bool:
        sql = "SELECT 1 FROM visitor_plates WHERE community = :community AND pass_id = :p"
        return bool(await rows(community, "parking", sql, p=pass_id))

    await wait_until(parking_allows, what="parking learning the pass's plate from security.pass.car_allowed")
    entered = await community.call("POST", "/api/parking/gate/entries", gate, {"plate": plate})
    assert (entered["decision"], entered["reason"], entered["visitor_pass_id"]) == ("open", "visitor-pass", pass_id)
    assert entered["booking_id"] is None
    left = await community.call("POST", "/api/parking/gate/exits", gate, {"plate": plate})
    assert (left["decision"], left["visitor_pass_id"]) == ("open", pass_id)

    # The host revokes the pass: once parking has heard, the same car is refused.
    revoked = await community.call("POST", f"/api/security/passes/{pass_id}/revoke", host.auth)
    assert revoked["revoked_at"]

    async def parking_revoked() -> bool:
        sql = "SELECT 1 FROM visitor_plates WHERE community = :community AND pass_id = :p AND revoked_at IS NOT NULL"
        return bool(await rows(community, "parking", sql, p=pass_id))

    await wait_until(parking_revoked, what="parking learning the revocation from security.pass.revoked")
    again = await community.call("POST", "/api/parking/gate/entries", gate, {"plate": plate})
    assert (again["decision"], again["visitor_pass_id"]) == ("refused", None)


async def test_a_guard_opens_nothing_of_the_residents_and_nothing_in_another_community(
    community: Community, platform: Platform
) -> None:
    await community.building("B1")
    resident = await community.resident("钱居民", "elder")
    worker = await community.staff("community_worker")
    guard = await community.staff("security_guard")
    await community.call("POST", "/api/timebank/members", resident.auth, {"elder": True}, expected=(201,))
    ticket = await community.call(
        "POST", "/api/property/tickets", resident.auth, {"category": "repair", "description": "水管漏水"}, expected=(201,)
    )
    await community.call("POST", "/api/governance/budget/fundings", worker.auth, {"points": 100})
    await community.call(
        "POST",
        "/api/governance/awards",
        worker.auth,
        {"resident_id": resident.id, "points": 10, "reason": "垃圾分类督导"},
        expected=(201,),
    )
    await known_to_security(community, resident)
    start = datetime.now(UTC) - timedelta(minutes=5)
    window = {"valid_from": start.isoformat(), "valid_until": (start + timedelta(hours=2)).isoformat(), "max_entries": 1}
    issued = await community.call("POST", "/api/security/passes", resident.auth, window, expected=(201,))
    pass_id = str(issued["id"])

    # The watch's work: today's expected visitors, devices, alarms.
    visitors = await community.call("GET", "/api/security/expected-visitors", guard.auth)
    assert [(v["pass_id"], v["building_id"]) for v in visitors["items"]] == [(pass_id, community.building_id)]
    await community.call("GET", "/api/security/devices", guard.auth)
    await community.call("GET", "/api/security/alarms", guard.auth)

    # The resident's own objects are 404 to a guard (as to a neighbour), in every service...
    not_found = [
        f"/api/timebank/members/{resident.id}",
        f"/api/timebank/members/{resident.id}/passbook",
        f"/api/property/residents/{resident.id}",
        f"/api/property/tickets/{ticket['id']}",
        f"/api/property/tickets/{ticket['id']}/steps",
    ]
    # ...and the staff-wide reads of points, the time bank's pool and the ticket queue are 403.
    forbidden = [
        f"/api/governance/residents/{resident.id}/points",
        f"/api/governance/residents/{resident.id}/statement",
        "/api/governance/budget",
        "/api/timebank/pool",
        "/api/property/queue",
        "/api/parking/occupancy",
        "/api/security/passes",
        f"/api/security/passes/{pass_id}",
        "/api/security/access-events/mine",
    ]
    for path in not_found:
        r = await community.client.get(path, headers=guard.auth)
        assert r.status_code == 404, (path, r.status_code, r.text[:300])
    for path in forbidden:
        r = await community.client.get(path, headers=guard.auth)
        assert r.status_code == 403, (path, r.status_code, r.text[:300])
    page = await community.call("GET", "/api/property/tickets", guard.auth)
    assert ticket["id"] not in [t["id"] for t in page["items"]]

    # Another community's guard sees none of this community's visitors or tickets.
    other = await served_community(platform)
    stranger = await other.staff("security_guard")
    assert (await other.call("GET", "/api/security/expected-visitors", stranger.auth))["items"] == []
    r = await other.client.get(f"/api/property/tickets/{ticket['id']}", headers=stranger.auth)
    assert r.status_code == 404


async def test_the_demo_visitor_car_is_let_in_by_the_demo_gate_and_the_demo_guard_logs_in(platform: Platform) -> None:
    def token_for(subject: str, roles: list[str], community: str = demo.COMMUNITY) -> str:
        return platform.stack.token(subject, *roles, community=community)

    await gateway_demo.seed_community(platform.client, token_for)
    base = str(platform.client.base_url).rstrip("/")
    for name in ("property", "parking", "security"):
        module = importlib.import_module(f"services.{name}.demo")
        async with httpx.AsyncClient(base_url=f"{base}/api/{name}", timeout=30) as client:
            await module.seed_demo(client, token_for)
    await gateway_demo.seed_demo(platform.client, token_for)
    seeded = Community(platform, id=demo.COMMUNITY)

    async def parking_allows_the_car() -> bool:
        sql = "SELECT 1 FROM visitor_plates WHERE community = :community AND plate = :plate AND revoked_at IS NULL"
        return bool(await rows(seeded, "parking", sql, plate=demo.VISITOR_PLATE))

    await wait_until(parking_allows_the_car, what="parking learning the demo visitor's plate")
    gate_id = demo.GATE_DEVICES[0][0]
    login = {
        "grant_type": "client_credentials",
        "community": demo.COMMUNITY,
        "client_id": gate_id,
        "client_secret": gateway_demo.client_secret(gate_id),
    }
    gate = bearer((await seeded.call("POST", "/auth/token", {}, login))["access_token"])
    entered = await seeded.call("POST", "/api/parking/gate/entries", gate, {"plate": demo.VISITOR_PLATE})
    assert (entered["decision"], entered["reason"], entered["booking_id"]) == ("open", "visitor-pass", None)

    guard = demo.staff("guard.jiang")
    login = {"grant_type": "password", "community": demo.COMMUNITY, "username": guard.username, "password": guard.password}
    tokens = await seeded.call("POST", "/auth/token", {}, login)
    assert tokens["roles"] == ["security_guard"]
    week = await seeded.call("GET", "/api/security/expected-visitors", bearer(tokens["access_token"]))
    b3 = next(b.id for b in demo.BUILDINGS if b.code == "B3")
    assert [v["building_id"] for v in week["items"] if v["has_plate"]] == [b3]  # the car's week overlaps today
    alarms = await seeded.call("GET", "/api/security/alarms", bearer(tokens["access_token"]))
    assert alarms["items"] == []
