"""Devices go offline once and come back once; alarms are raised once per incident, even when two
replicas see the same incident at the same moment; the inactivity watch fires only for an elder who
opted in with a relative's consent, once per silence, and clears on the next activity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.security import alarms, devices
from tests.security.conftest import Community, access, community_on, wait_until
from tests.support.harness import RunningService
from tests.support.stack import TestStack


async def outbox(c: Community, type_: str) -> list[dict[str, object]]:
    rows = await c.rows("SELECT data FROM kit_outbox WHERE type = :t AND data->>'community' = :community ORDER BY id", t=type_)
    return [dict(r.data) for r in rows]


async def test_a_silent_device_goes_offline_once_and_back_once(
    stack: TestStack, replicas: tuple[RunningService, RunningService]
) -> None:
    one, two = replicas
    c = community_on(stack, one)
    door = await c.device("door-1", heartbeat_s=10)
    later = datetime.now(UTC) + timedelta(seconds=31)

    async def sweep(svc: RunningService) -> int:
        async with svc.state.sessionmaker() as session:
            return await devices.sweep_offline(session, 3, now=later)

    assert sum(await asyncio.gather(*(sweep(svc) for svc in (one, two, one, two)))) == 1
    assert [d["device_id"] for d in await outbox(c, "security.device.offline.v1")] == [c.dev("door-1")]
    listed = (await c.client.get("/devices", params={"offline": "true"}, headers=c.staff)).json()["items"]
    assert [d["id"] for d in listed] == [c.dev("door-1")]
    beats = await asyncio.gather(*(svc.client.post("/devices/me/heartbeat", headers=door) for svc in (one, two, one)))
    assert sorted(b.json()["was_offline"] for b in beats) == [False, False, True]
    assert len(await outbox(c, "security.device.back_online.v1")) == 1
    assert (await c.client.get("/devices", params={"offline": "true"}, headers=c.staff)).json()["items"] == []


async def test_a_device_within_its_allowance_stays_online(community: Community) -> None:
    c = community
    await c.device("door-1", heartbeat_s=60)
    async with c.svc.state.sessionmaker() as session:
        await devices.sweep_offline(session, 3, now=datetime.now(UTC) + timedelta(seconds=170))
    assert await outbox(c, "security.device.offline.v1") == []


async def test_an_alarm_seen_by_two_replicas_at_once_is_raised_once(
    stack: TestStack, replicas: tuple[RunningService, RunningService]
) -> None:
    one, two = replicas
    c = community_on(stack, one)
    await c.publish_property(
        "property.building.registered.v1", "b1", building_id="b1", code="1", name="1幢", steward_id="st-1", backup_steward_id=None
    )

    async def steward_known() -> bool:
        return bool(await c.rows("SELECT 1 FROM buildings WHERE community = :community AND steward_id = 'st-1'"))

    await wait_until(steward_known)
    smoke = await c.device("smoke-1", kind="smoke")
    body = {"incident_id": "inc-42", "kind": "smoke"}
    answers = await asyncio.gather(*(svc.client.post("/alarms", json=body, headers=smoke) for svc in (one, two) * 5))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    raised = await outbox(c, "security.alarm.raised.v1")
    assert len(raised) == 1 and raised[0]["steward_id"] == "st-1" and raised[0]["kind"] == "smoke"
    other = await c.client.post("/alarms", json={"incident_id": "inc-43", "kind": "door_forced"}, headers=smoke)
    assert other.json()["id"] != answers[0].json()["id"] and len(await outbox(c, "security.alarm.raised.v1")) == 2
    refused = await c.client.post("/alarms", json={"incident_id": "x", "kind": "inactivity"}, headers=smoke)
    assert refused.status_code == 422


async def watched_elder(c: Community, consent: bool = True) -> tuple[dict[str, str], str]:
    elder = await c.resident("elder-1", household_id="h-elder")
    r = await c.client.post("/watches", json={"relative_id": "son-1", "hours": 24}, headers=elder)
    assert r.status_code == 201, r.text
    watch_id = str(r.json()["id"])
    if consent:
        assert (await c.client.post(f"/watches/{watch_id}/consent", headers=c.auth("elder-1", "resident"))).status_code == 404
        ok = await c.client.post(f"/watches/{watch_id}/consent", headers=c.auth("son-1", "resident"))
        assert ok.status_code == 200 and ok.json()["consented_at"]
    return elder, watch_id


async def sweep_at(svc: RunningService, at: datetime) -> int:
    async with svc.state.sessionmaker() as session:
        return await alarms.sweep_inactivity(session, now=at)


async def test_inactivity_fires_once_per_silence_and_clears_on_the_next_activity(
    stack: TestStack, replicas: tuple[RunningService, RunningService]
) -> None:
    one, two = replicas
    c = community_on(stack, one)
    _, watch_id = await watched_elder(c)
    silent = datetime.now(UTC) + timedelta(hours=25)
    assert sum(await asyncio.gather(*(sweep_at(svc, silent) for svc in (one, two, one, two)))) == 1
    assert await sweep_at(one, silent + timedelta(hours=30)) == 0  # the same silence, later: still one alarm
    raised = await outbox(c, "security.alarm.raised.v1")
    assert [(a["kind"], a["relative_id"]) for a in raised] == [("inactivity", "son-1")]
    alarm = await c.rows("SELECT household_id FROM alarms WHERE id = :id", id=raised[0]["alarm_id"])
    assert alarm[0].household_id == "h-elder"  # kept inside the service, not published
    sensor = await c.device("pir-1", kind="sensor", household_id="h-elder")
    await c.client.post(
        "/access-events", json={"events": [access("m1", direction="activity", credential_kind="card")]}, headers=sensor
    )
    cleared = await outbox(c, "security.alarm.cleared.v1")
    assert [x["alarm_id"] for x in cleared] == [raised[0]["alarm_id"]]
    assert (await c.client.get("/alarms", params={"open": "true"}, headers=c.staff)).json()["items"] == []
    # A new silence is a new incident.
    assert await sweep_at(one, datetime.now(UTC) + timedelta(hours=25)) == 1
    assert len(await outbox(c, "security.alarm.raised.v1")) == 2
    assert watch_id


async def test_no_alarm_for_an_elder_who_has_not_opted_in_or_whose_relative_has_not_consented(community: Community) -> None:
    c = community
    await c.resident("elder-2", household_id="h-2")  # never opted in
    await watched_elder(c, consent=False)
    assert await sweep_at(c.svc, datetime.now(UTC) + timedelta(days=5)) == 0
    assert await outbox(c, "security.alarm.raised.v1") == []


async def test_a_visitors_pass_is_no_sign_of_life_for_the_elder(community: Community) -> None:
    c = community
    elder, _ = await watched_elder(c)
    door = await c.device("door-1")
    visitor = await c.issue(elder)
    await c.client.post(
        "/access-events", json={"events": [access("v1", credential_kind="pass", pass_id=visitor["id"])]}, headers=door
    )
    assert await sweep_at(c.svc, datetime.now(UTC) + timedelta(hours=25)) == 1


async def test_a_watch_is_visible_only_to_the_elder_and_the_relative(community: Community) -> None:
    c = community
    _, watch_id = await watched_elder(c)
    assert [w["id"] for w in (await c.client.get("/watches", headers=c.auth("son-1", "resident"))).json()["items"]] == [watch_id]
    assert (await c.client.get("/watches", headers=c.auth("someone", "resident"))).json()["items"] == []
    assert (await c.client.delete(f"/watches/{watch_id}", headers=c.auth("someone", "resident"))).status_code == 404
    assert (await c.client.delete(f"/watches/{watch_id}", headers=c.auth("elder-1", "elder"))).status_code == 204


async def test_an_outage_names_the_buildings_steward_for_notify(community: Community) -> None:
    c = community
    building = {"building_id": "b9", "code": "9", "name": "9幢", "steward_id": "st-9", "backup_steward_id": None}
    await c.publish_property("property.building.registered.v1", "b9", **building)

    async def known() -> bool:
        return bool(await c.rows("SELECT 1 FROM buildings WHERE community = :community AND building_id = 'b9'"))

    await wait_until(known)
    door = await c.device("door-9", building_id="b9", heartbeat_s=10)
    async with c.svc.state.sessionmaker() as session:
        assert await devices.sweep_offline(session, 3, now=datetime.now(UTC) + timedelta(seconds=31)) >= 1
    assert [e["steward_id"] for e in await outbox(c, "security.device.offline.v1")] == ["st-9"]
    assert (await c.client.post("/devices/me/heartbeat", headers=door)).json()["was_offline"] is True
    assert [e["steward_id"] for e in await outbox(c, "security.device.back_online.v1")] == ["st-9"]


async def test_an_alarm_is_answered_once_when_staff_answer_at_once(
    stack: TestStack, replicas: tuple[RunningService, RunningService]
) -> None:
    one, two = replicas
    c = community_on(stack, one)
    fire = await c.device("fire-1", kind="smoke")
    alarm = (await c.client.post("/alarms", json={"incident_id": "inc-7", "kind": "fire"}, headers=fire)).json()
    stewards = [c.auth(f"st-{i}", "steward") for i in range(6)]
    path = f"/alarms/{alarm['id']}/acknowledge"
    answers = await asyncio.gather(*(svc.client.post(path, headers=h) for svc, h in zip((one, two) * 3, stewards, strict=True)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert len({(r.json()["acknowledged_at"], r.json()["acknowledged_by"]) for r in answers}) == 1  # the first answer stays
    [answered] = await outbox(c, "security.alarm.acknowledged.v1")
    assert answered["alarm_id"] == alarm["id"] and answered["acknowledged_by"] == answers[0].json()["acknowledged_by"]
    raised = datetime.fromisoformat(alarm["raised_at"])
    acked = datetime.fromisoformat(str(answered["acknowledged_at"]))
    assert answered["response_s"] == int((acked - raised).total_seconds())

    # Another community's alarm is not there; a resident may not answer; an unknown id is 404.
    other = await c.client.post(
        f"/alarms/{alarm['id']}/acknowledge", headers=stack.auth("st-y", "steward", community="another-community")
    )
    assert other.status_code == 404, other.text
    assert (await c.client.post("/alarms/al-nope/acknowledge", headers=c.staff)).status_code == 404
    assert (await c.client.post(f"/alarms/{alarm['id']}/acknowledge", headers=c.auth("r-1", "resident"))).status_code == 403
