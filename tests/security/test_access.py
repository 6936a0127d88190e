"""Access events: stored once per device event id however often a device retries, published
without who, purged past the retention once across replicas, read by household and by door."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from services.security import access as access_use_cases
from tests.security.conftest import Community, access, community_on
from tests.support.harness import RunningService
from tests.support.stack import TestStack


async def test_a_burst_of_1000_duplicate_events_stores_each_once(community: Community) -> None:
    c = community
    door = await c.device("door-1")
    batch = {"events": [access(f"e-{i}", credential_id="card-1") for i in range(100)]}
    # Ten retries of the same 100 events, all at once: 1,000 reports.
    answers = await asyncio.gather(*(c.client.post("/access-events", json=batch, headers=door) for _ in range(10)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert sum(r.json()["stored"] for r in answers) == 100
    assert sum(r.json()["received"] for r in answers) == 1000
    stored = await c.rows("SELECT count(*) AS n FROM access_events WHERE community = :community")
    published = await c.rows(
        "SELECT data FROM kit_outbox WHERE type = 'security.access.recorded.v1' AND key = :k", k=c.dev("door-1")
    )
    assert stored[0].n == 100
    # Each access is published once, in the batch event of whichever request stored it.
    assert sum(len(p.data["entries"]) for p in published) == 100


async def test_duplicates_inside_one_batch_are_stored_once(community: Community) -> None:
    c = community
    door = await c.device("door-1")
    r = await c.client.post("/access-events", json={"events": [access("same")] * 5}, headers=door)
    assert r.json() == {"received": 5, "stored": 1}


async def test_published_access_events_carry_no_credential_plate_or_household(community: Community) -> None:
    c = community
    gate = await c.device("gate-1", kind="gate")
    await c.client.post("/credentials", json={"credential_id": "face-77", "household_id": "h1"}, headers=c.admin)
    events = [
        access("e1", credential_kind="face", credential_id="face-77"),
        access("e2", credential_kind="plate", plate="浙K12345"),
    ]
    assert (await c.client.post("/access-events", json={"events": events}, headers=gate)).json()["stored"] == 2
    rows = await c.rows("SELECT data FROM kit_outbox WHERE type = 'security.access.recorded.v1' AND key = :k", k=c.dev("gate-1"))
    text = json.dumps([r.data for r in rows], ensure_ascii=False)
    assert len(rows) == 1 and "face-77" not in text and "浙K12345" not in text and "h1" not in text
    assert set(rows[0].data) == {"community", "device_id", "building_id", "entries", "in_count", "out_count", "activity_count"}
    assert (rows[0].data["in_count"], rows[0].data["out_count"], rows[0].data["activity_count"]) == (2, 0, 0)
    assert [set(e) for e in rows[0].data["entries"]] == [{"direction", "credential_kind", "occurred_at"}] * 2


async def test_residents_read_their_households_events_and_no_one_elses(community: Community) -> None:
    c = community
    mine = await c.resident("r1", household_id="h1")
    neighbour = await c.resident("r2", household_id="h2")
    door = await c.device("door-1")
    for cred, household in (("card-a", "h1"), ("card-b", "h2")):
        await c.client.post("/credentials", json={"credential_id": cred, "household_id": household}, headers=c.admin)
    visitor = await c.issue(mine)
    events = [
        access("e1", credential_id="card-a"),
        access("e2", credential_id="card-b"),
        access("e3", credential_kind="pass", pass_id=visitor["id"]),
    ]
    await c.client.post("/access-events", json={"events": events}, headers=door)
    seen = (await c.client.get("/access-events/mine", headers=mine)).json()["items"]
    assert sorted(e["credential_kind"] for e in seen) == ["card", "pass"]
    assert len((await c.client.get("/access-events/mine", headers=neighbour)).json()["items"]) == 1
    other = community_on(c.stack, c.svc)
    stranger = await other.resident("r1", household_id="h1")  # same ids, another community
    assert (await c.client.get("/access-events/mine", headers=stranger)).json()["items"] == []


async def test_staff_search_one_door_by_time_and_another_communitys_door_is_404(community: Community) -> None:
    c = community
    door = await c.device("door-1")
    base = datetime.now(UTC) - timedelta(hours=5)
    events = [access(f"e{i}", at=base + timedelta(hours=i)) for i in range(5)]
    await c.client.post("/access-events", json={"events": events}, headers=door)
    window = {
        "device_id": c.dev("door-1"),
        "since": (base + timedelta(minutes=30)).isoformat(),
        "until": (base + timedelta(hours=3, minutes=30)).isoformat(),
    }
    first = (await c.client.get("/access-events", params={**window, "limit": 2}, headers=c.staff)).json()
    rest = (
        await c.client.get("/access-events", params={**window, "limit": 2, "cursor": first["next_cursor"]}, headers=c.staff)
    ).json()
    times = [e["occurred_at"] for e in first["items"] + rest["items"]]
    assert len(times) == 3 and times == sorted(times, reverse=True) and rest["next_cursor"] is None
    other = community_on(c.stack, c.svc)
    r = await c.client.get("/access-events", params=window, headers=other.auth("steward-9", "steward"))
    assert r.status_code == 404


async def test_an_unregistered_device_cannot_report(community: Community) -> None:
    c = community
    r = await c.client.post("/access-events", json={"events": [access("e1")]}, headers=c.auth("rogue", "gate_device"))
    assert r.status_code == 403 and r.json()["type"].endswith("security/unknown-device")


async def test_events_past_the_retention_are_purged_once_across_replicas(
    stack: TestStack, replicas: tuple[RunningService, RunningService]
) -> None:
    one, two = replicas
    c = community_on(stack, one)
    door = await c.device("door-1")
    old = datetime.now(UTC) - timedelta(days=91)
    events = [access(f"old-{i}", at=old) for i in range(30)] + [access(f"new-{i}") for i in range(5)]
    await c.client.post("/access-events", json={"events": events}, headers=door)

    async def purge(svc: RunningService) -> int | None:
        async with svc.state.sessionmaker() as session:
            return await access_use_cases.purge(session, 90)

    results = await asyncio.gather(*(purge(svc) for svc in (one, two, one, two)))
    # Whichever replicas overlapped were turned away (None); those that ran deleted 30 between them.
    assert sum(r or 0 for r in results) == 30 and any(r == 30 for r in results)
    left = await c.rows("SELECT device_event_id FROM access_events WHERE community = :community ORDER BY device_event_id")
    assert [r.device_event_id for r in left] == [f"new-{i}" for i in range(5)]
