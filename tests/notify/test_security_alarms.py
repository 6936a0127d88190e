"""An alarm from the security service tells the building's steward and the consenting relative,
urgently, once each, however often the event arrives."""

from __future__ import annotations

import uuid

from tests.notify.conftest import Community, now, wait_until
from tests.support.harness import RunningService


async def test_an_alarm_tells_the_steward_and_the_relative_once_each(community: Community) -> None:
    c = community
    alarm = c.event(
        "security.alarm.raised.v1",
        "al-1",
        alarm_id="al-0000000000abcdef",
        kind="inactivity",
        building_id="b1",
        household_id="h1",
        device_id=None,
        steward_id="st-1",
        relative_id="son-1",
        raised_at=now(),
    )
    await c.publish(alarm)
    await c.publish(alarm)  # redelivered
    await c.publish(
        c.event(
            "governance.points.granted.v1",
            "g1",
            grant_id="g1",
            resident_id="son-1",
            points=1,
            source="award",
            trigger="award",
            granted_at=now(),
        )
    )
    son = await c.wait_for_inbox("son-1", 2)
    steward = await c.wait_for_inbox("st-1", 1, "steward")
    alarms = [n for n in son if n["kind"] == "security.alarm"]
    assert len(alarms) == 1 and len(steward) == 1
    assert alarms[0]["urgency"] == "urgent" and "inactivity（#ABCDEF）" in alarms[0]["body"]
    assert steward[0]["kind"] == "security.alarm"


async def test_a_device_alarm_without_a_relative_tells_the_steward_only(community: Community) -> None:
    c = community
    data = {"alarm_id": "al-2", "kind": "smoke", "building_id": "b2", "household_id": None, "device_id": "smoke-1"}
    await c.publish(c.event("security.alarm.raised.v1", "al-2", steward_id="st-2", relative_id=None, raised_at=now(), **data))
    notes = await c.wait_for_inbox("st-2", 1, "steward")
    assert [n["kind"] for n in notes] == ["security.alarm"]
    rows = await c.rows("SELECT recipient_id FROM notifications WHERE community = :community")
    assert [r.recipient_id for r in rows] == ["st-2"]


async def test_a_device_outage_and_its_end_tell_the_buildings_steward_once_each(community: Community) -> None:
    c = community
    device = {"device_id": "door-b1-east", "building_id": "b1", "kind": "door", "steward_id": "st-3"}
    offline = c.event("security.device.offline.v1", "door-b1-east", last_seen_at=now(), offline_since=now(), **device)
    await c.publish(offline)
    await c.publish(offline)  # redelivered
    await c.publish(c.event("security.device.back_online.v1", "door-b1-east", offline_since=now(), back_at=now(), **device))
    notes = await c.wait_for_inbox("st-3", 2, "steward")
    assert sorted(n["kind"] for n in notes) == ["security.device_back", "security.device_offline"]
    assert all("door-b1-east" in n["body"] for n in notes)


async def test_an_alarm_tells_every_security_guard_of_the_community_once_and_no_one_elses(
    community: Community, notify: RunningService
) -> None:
    c = community
    elsewhere = Community(stack=c.stack, svc=notify, id=f"c-{uuid.uuid4().hex[:10]}")
    staff = [(c, "guard-1", ["security_guard"]), (c, "guard-2", ["security_guard"]), (c, "adm-1", ["property_admin"])]
    staff.append((elsewhere, "guard-9", ["security_guard"]))
    for where, person, roles in staff:
        registered = where.event(
            "property.staff.registered.v1", person, staff_id=person, name="蒋保安", username=person, roles=roles
        )
        await where.publish(registered)

    async def directory_known() -> bool:
        sql = "SELECT person_id FROM people WHERE community IN (:community, :other) AND cardinality(roles) > 0"
        rows = await c.rows(sql, other=elsewhere.id)
        return len(rows) == 4

    await wait_until(directory_known)  # other keys, other partitions: no order with the alarm
    data = {"alarm_id": "al-3", "kind": "door_forced", "building_id": "b1", "household_id": None, "device_id": "door-1"}
    alarm = c.event("security.alarm.raised.v1", "al-3", steward_id="st-4", relative_id=None, raised_at=now(), **data)
    await c.publish(alarm)
    await c.publish(alarm)  # redelivered
    for guard in ("guard-1", "guard-2"):
        notes = await c.wait_for_inbox(guard, 1, "security_guard")
        assert [(n["kind"], n["urgency"]) for n in notes] == [("security.alarm", "urgent")]
    await c.wait_for_inbox("st-4", 1, "steward")
    rows = await c.rows("SELECT recipient_id FROM notifications WHERE community = :community ORDER BY recipient_id")
    assert [r.recipient_id for r in rows] == ["guard-1", "guard-2", "st-4"]
    assert await elsewhere.inbox("guard-9", "security_guard") == []
