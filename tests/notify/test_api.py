"""Through the real broker and HTTP: events become notifications for the people the table names,
in their language, and each person's inbox is theirs alone."""

from __future__ import annotations

import uuid

from services.notify import inbox
from tests.notify.conftest import Community, now, wait_until


def care_cancelled(c: Community, volunteer: str | None, by: str = "elder-1") -> object:
    return c.event(
        "timebank.care_request.cancelled.v1",
        "req-1",
        request_id=f"req-{uuid.uuid4().hex[:6]}",
        elder_id="elder-1",
        volunteer_id=volunteer,
        service_type="companionship",
        starts_at="2026-12-06T02:00:00+00:00",
        cancelled_by=by,
        cancelled_at=now(),
    )


async def test_a_cancelled_care_request_tells_its_volunteer_not_to_come_and_queues_an_sms(community: Community) -> None:
    await community.register_resident("vol-1", "13812345678")
    await community.publish(care_cancelled(community, "vol-1"))  # type: ignore[arg-type]
    [note] = await community.wait_for_inbox("vol-1", 1)
    assert note["kind"] == "care.cancelled" and note["urgency"] == "urgent"
    assert note["title"] == "护理预约已取消"
    assert "12-06 10:00" in note["body"] and "请不要前往" in note["body"]  # local time (UTC+8)
    assert await community.inbox("elder-1") == []  # who cancelled is not told of their own act
    [delivery] = await community.rows(
        "SELECT d.channel, d.status FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
        "WHERE n.community = :community AND n.recipient_id = 'vol-1'"
    )
    assert (delivery.channel, delivery.status) in {("sms", "pending"), ("sms", "sending"), ("sms", "sent")}


async def test_a_ticket_update_reaches_the_resident_who_filed_it_and_a_breach_every_steward_who_must_act(
    community: Community,
) -> None:
    c = community
    await c.publish(
        c.event(
            "property.building.registered.v1",
            "b1",
            building_id="b1",
            code="1",
            name="1幢",
            steward_id="st-1",
            backup_steward_id="st-2",
        )
    )
    await c.publish(
        c.event(
            "property.staff.registered.v1", "adm", staff_id="adm", name="钱经理", username="admin.qian", roles=["property_admin"]
        )
    )

    async def directory_known() -> bool:
        return (
            len(
                await c.rows(
                    "SELECT 1 FROM buildings WHERE community = :community "
                    "UNION ALL SELECT 1 FROM people WHERE community = :community"
                )
            )
            == 2
        )

    await wait_until(directory_known)  # other keys, other partitions: no order with the ticket's events
    ticket = f"tk-{uuid.uuid4().hex}"
    common = {"ticket_id": ticket, "category": "repair"}
    await c.publish(
        c.event(
            "property.ticket.submitted.v1",
            ticket,
            **common,
            status="assigned",
            service_code=None,
            priority="urgent",
            building_id="b1",
            household_id="h1",
            resident_id="res-1",
            assignee_id="st-1",
            routed_via="building",
            response_due_at=now(),
            resolution_due_at=now(),
            submitted_at=now(),
        )
    )
    [filed] = await c.wait_for_inbox("st-1", 1, "steward")
    assert filed["kind"] == "ticket.filed" and ticket[-6:].upper() in filed["body"] and "报修" in filed["body"]
    status = {"status": "accepted", "from_status": "assigned", "action": "accept", "role": "steward", "at": now()}
    await c.publish(c.event("property.ticket.status_changed.v1", ticket, **common, **status, actor_id="st-1", assignee_id="st-1"))
    [update] = await c.wait_for_inbox("res-1", 1)
    assert update["kind"] == "ticket.status_changed" and "已接单" in update["body"]
    breach = {"status": "accepted", "priority": "urgent", "kind": "resolution", "due_at": now(), "escalated_to": "property_admin"}
    await c.publish(c.event("property.ticket.sla_breached.v1", ticket, **common, **breach, assignee_id="st-1"))
    for person, count in (("st-1", 2), ("st-2", 1), ("adm", 1)):
        notes = await c.wait_for_inbox(person, count, "steward")
        assert notes[0]["kind"] == "ticket.sla_breached" and notes[0]["urgency"] == "urgent", person
    assert len(await c.inbox("res-1")) == 1  # the resident is not told of the breach


async def test_a_person_who_chose_english_is_written_to_in_english(community: Community) -> None:
    r = await community.client.patch("/me/settings", json={"language": "en"}, headers=community.auth("res-2", "resident"))
    assert r.status_code == 200 and r.json()["language"] == "en"
    data = {"grant_id": "g1", "resident_id": "res-2", "points": 12, "source": "award", "trigger": "award", "granted_at": now()}
    await community.publish(community.event("governance.points.granted.v1", "g1", **data))
    [note] = await community.wait_for_inbox("res-2", 1)
    assert (note["title"], note["body"]) == ("Points earned", "You earned 12 points.")


async def test_the_inbox_lists_counts_marks_and_deletes_only_the_callers_own(community: Community) -> None:
    c = community
    for i in range(5):
        data = {
            "grant_id": f"g{i}",
            "resident_id": "res-3",
            "points": i + 1,
            "source": "award",
            "trigger": "award",
            "granted_at": now(),
        }
        await c.publish(c.event("governance.points.granted.v1", f"g{i}", **data))
    await c.wait_for_inbox("res-3", 5)
    me = c.auth("res-3", "resident")
    first = await c.client.get("/notifications", params={"limit": 2}, headers=me)
    page1 = first.json()
    assert [n["seq"] for n in page1["items"]] == [5, 4] and page1["next_cursor"]
    second = await c.client.get("/notifications", params={"limit": 10, "cursor": page1["next_cursor"]}, headers=me)
    assert [n["seq"] for n in second.json()["items"]] == [3, 2, 1] and second.json()["next_cursor"] is None
    assert (await c.client.get("/notifications/unread-count", headers=me)).json() == {"unread": 5}
    target = page1["items"][0]["id"]

    # Another resident of the same community, and the same subject in another community: not found.
    for stranger in (c.auth("res-4", "resident"), c.stack.auth("res-3", "resident", community="c-other")):
        assert (await c.client.post(f"/notifications/{target}/read", headers=stranger)).status_code == 404
        assert (await c.client.delete(f"/notifications/{target}", headers=stranger)).status_code == 404
        assert (await c.client.get("/notifications", headers=stranger)).json()["items"] == []
        assert (await c.client.post("/notifications/read-all", headers=stranger)).json() == {"marked": 0}
    assert (await c.client.get("/notifications/unread-count", headers=me)).json() == {"unread": 5}

    read = await c.client.post(f"/notifications/{target}/read", headers=me)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert (await c.client.get("/notifications/unread-count", headers=me)).json() == {"unread": 4}
    assert [n["seq"] for n in (await c.client.get("/notifications", params={"unread": "false"}, headers=me)).json()["items"]] == [
        5
    ]
    assert (await c.client.post("/notifications/read-all", headers=me)).json() == {"marked": 4}
    assert (await c.client.delete(f"/notifications/{target}", headers=me)).status_code == 204
    assert (await c.client.delete(f"/notifications/{target}", headers=me)).status_code == 404
    assert [n["seq"] for n in await c.inbox("res-3")] == [4, 3, 2, 1]
    assert (await c.client.get("/notifications", headers={})).status_code == 401


async def test_the_trim_keeps_180_days_and_deletes_what_is_older(community: Community) -> None:
    c = community
    for i in range(3):
        data = {
            "grant_id": f"t{i}",
            "resident_id": "res-5",
            "points": 1,
            "source": "award",
            "trigger": "award",
            "granted_at": now(),
        }
        await c.publish(c.event("governance.points.granted.v1", f"t{i}", **data))
    await c.wait_for_inbox("res-5", 3)
    await c.rows(
        "UPDATE notifications SET created_at = now() - make_interval(days => 181) "
        "WHERE community = :community AND recipient_id = 'res-5' AND seq <= 2 RETURNING id"
    )
    async with c.svc.state.sessionmaker() as session:
        assert await inbox.trim(session, 180) == 2
    assert [n["seq"] for n in await c.inbox("res-5")] == [3]


async def test_a_volunteer_who_turned_sms_off_gets_the_in_app_copy_only(community: Community) -> None:
    c = community
    await c.register_resident("vol-2", "13900001111")
    r = await c.client.put(
        "/me/preferences", json={"category": "timebank", "channel": "sms", "enabled": False}, headers=c.auth("vol-2", "volunteer")
    )
    assert r.status_code == 200 and r.json()["switched_off"] == [{"category": "timebank", "channel": "sms"}]
    await c.publish(care_cancelled(c, "vol-2"))  # type: ignore[arg-type]
    await c.wait_for_inbox("vol-2", 1)
    assert (
        await c.rows(
            "SELECT d.id FROM deliveries d JOIN notifications n ON n.id = d.notification_id WHERE n.community = :community"
        )
        == []
    )


async def test_events_no_row_names_are_applied_and_tell_no_one(community: Community) -> None:
    c = community
    ev = c.event("property.household.registered.v1", "h9", household_id="h9", building_id="b1", unit="101")
    await c.publish(ev)

    async def applied() -> bool:
        return bool(await c.rows("SELECT 1 FROM kit_inbox WHERE event_id = :id", id=ev.id))

    await wait_until(applied)
    assert await c.rows("SELECT id FROM notifications WHERE community = :community") == []
