"""The feeds and the register through HTTP: grants, revocation, hashes per consumer, duplicates,
the daily statistics, and a restart of the service in the middle of a consumer's reading."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from services.citysync import feeds, statistics, topics
from services.citysync.app import create_app
from services.citysync.settings import Settings
from services.kit.envelope import CloudEvent
from tests.citysync import factory
from tests.citysync.conftest import Community, ingest_all, keys_of, wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


def registered(community: str, people: list[factory.Resident]) -> list[CloudEvent]:
    return [
        factory.event(
            "property.resident.registered.v1",
            {
                "resident_id": p.id,
                "community": community,
                "household_id": p.household_id,
                "building_id": p.building_id,
                "name": p.name,
                "phone": p.phone,
                "roles": ["resident"],
            },
            p.id,
            "/services/property",
            datetime.now(UTC),
        )
        for p in people
    ]


async def test_ungranted_feed_is_404_and_unknown_scene_too(community: Community) -> None:
    headers = await community.register("city-a", scenes=["timebank"])
    assert (await community.svc.client.get("/feeds/timebank", headers=headers)).status_code == 200
    for scene in ("parking", "stats", "nonsense"):
        r = await community.svc.client.get(f"/feeds/{scene}", headers=headers)
        assert r.status_code == 404
        assert r.json()["type"] == "urn:community:problem:citysync/feed-not-found"


async def test_revoked_grant_is_404_at_once_and_revoked_consumer_is_403(community: Community) -> None:
    headers = await community.register("city-b", scenes=["timebank", "parking"])
    client = community.svc.client
    assert (await client.get("/feeds/parking", headers=headers)).status_code == 200
    r = await client.delete("/consumers/city-b/grants/parking", headers=community.worker)
    assert r.status_code == 200 and r.json()["revoked_by"] == community.worker_id
    assert (await client.get("/feeds/parking", headers=headers)).status_code == 404
    assert (await client.delete("/consumers/city-b/grants/parking", headers=community.worker)).status_code == 404
    assert (await client.get("/feeds/timebank", headers=headers)).status_code == 200

    r = await client.post("/consumers/city-b/revocation", headers=community.worker)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await client.get("/feeds/timebank", headers=headers)
    assert r.status_code == 403
    assert r.json()["type"] == "urn:community:problem:citysync/consumer-revoked"
    # A revoked consumer gets no new grants either.
    g = await client.post("/consumers/city-b/grants", json={"scene": "stats"}, headers=community.worker)
    assert g.status_code == 409


async def test_unregistered_client_and_other_roles_are_refused(community: Community) -> None:
    client = community.svc.client
    r = await client.get("/feeds/timebank", headers=community.consumer_auth("never-registered"))
    assert r.status_code == 403 and r.json()["type"] == "urn:community:problem:citysync/consumer-unknown"
    resident = community.stack.auth(str(uuid.uuid4()), "resident", community=community.id)
    assert (await client.get("/feeds/timebank", headers=resident)).status_code == 403
    assert (await client.get("/consumers", headers=resident)).status_code == 403
    # The same client id registered in another community is another consumer.
    await community.register("city-c", scenes=["timebank"])
    elsewhere = community.stack.auth("city-c", "city_sync", community="another-community")
    assert (await client.get("/feeds/timebank", headers=elsewhere)).status_code == 403


async def test_two_consumers_hashes_differ_and_each_is_stable(community: Community) -> None:
    people = factory.residents(20, seed=5)
    await ingest_all(community.svc, registered(community.id, people))
    first = await community.register("city-one", scenes=["property"])
    second = await community.register("city-two", scenes=["property"])
    a1 = await community.pull_all(first, "property", limit=7)
    a2 = await community.pull_all(first, "property", limit=3)
    b = await community.pull_all(second, "property")
    assert [r["seq"] for r in a1] == [r["seq"] for r in b] == list(range(1, 21))
    phones_a = [r["data"]["phone"] for r in a1]
    assert phones_a == [r["data"]["phone"] for r in a2]  # stable across pulls
    phones_b = [r["data"]["phone"] for r in b]
    assert len(set(phones_a)) == 20 and not set(phones_a) & set(phones_b)  # unjoinable across consumers
    residents_a = {r["data"]["resident_id"] for r in a1}
    assert not residents_a & {r["data"]["resident_id"] for r in b}
    assert not residents_a & {p.id for p in people}
    # Same person, same hash, wherever it appears for one consumer: a resident registering twice
    # (another household) joins up for that consumer.
    again = registered(community.id, people[:1])
    await ingest_all(community.svc, again)
    latest = (await community.svc.client.get("/feeds/property", params={"after": "20"}, headers=first)).json()
    assert latest["records"][0]["data"]["phone"] == phones_a[0]


async def test_duplicate_and_late_copies_make_no_second_record(community: Community) -> None:
    event = registered(community.id, factory.residents(1, seed=9))[0]
    assert len(await ingest_all(community.svc, [event, event])) == 1
    await ingest_all(community.svc, registered(community.id, factory.residents(2, seed=10)))
    assert await ingest_all(community.svc, [event]) == []  # a late re-publish
    headers = await community.register("city-d", scenes=["property"])
    assert [r["seq"] for r in await community.pull_all(headers, "property")] == [1, 2, 3]


async def test_register_lists_consumers_grants_and_every_pull(community: Community) -> None:
    client = community.svc.client
    await ingest_all(community.svc, registered(community.id, factory.residents(5, seed=11)))
    headers = await community.register("city-e", scenes=["property", "stats"])
    await community.register("city-f", scenes=[])
    pages = [
        (await client.get("/feeds/property", params={"after": after, "limit": 2}, headers=headers)).json()
        for after in ("0", "2", "4", "5")
    ]
    assert [p["next_cursor"] for p in pages] == ["2", "4", "5", "5"]
    assert [p["has_more"] for p in pages] == [True, True, False, False]

    listed = (await client.get("/consumers", params={"limit": 1}, headers=community.worker)).json()
    assert [c["id"] for c in listed["items"]] == ["city-e"] and listed["next_cursor"]
    rest = (await client.get("/consumers", params={"cursor": listed["next_cursor"]}, headers=community.worker)).json()
    assert [c["id"] for c in rest["items"]] == ["city-f"] and rest["next_cursor"] is None
    one = (await client.get("/consumers/city-e", headers=community.worker)).json()
    assert sorted(g["scene"] for g in one["grants"]) == ["property", "stats"] and "hash_key" not in one
    assert (await client.get("/consumers/nobody", headers=community.worker)).status_code == 404

    pulls = (await client.get("/pulls", params={"consumer_id": "city-e"}, headers=community.worker)).json()["items"]
    assert [(p["scene"], p["after_seq"], p["last_seq"], p["record_count"]) for p in pulls] == [
        ("property", 5, 5, 0),
        ("property", 4, 5, 1),
        ("property", 2, 4, 2),
        ("property", 0, 2, 2),
    ]
    feeds = (await client.get("/feeds", headers=headers)).json()
    assert feeds == {"items": [{"scene": "property", "last_seq": 5}, {"scene": "stats", "last_seq": 0}], "next_cursor": None}


async def test_concurrent_grants_make_exactly_one(community: Community) -> None:
    await community.register("city-g", scenes=[])
    results = await asyncio.gather(
        *(
            community.svc.client.post("/consumers/city-g/grants", json={"scene": "parking"}, headers=community.worker)
            for _ in range(20)
        )
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 19
    again = await community.svc.client.post("/consumers", json={"id": "city-g", "name": "x"}, headers=community.worker)
    assert again.status_code == 409


async def test_bad_input_is_rejected(community: Community) -> None:
    client = community.svc.client
    headers = await community.register("city-h", scenes=["timebank"])
    assert (await client.get("/feeds/timebank", params={"after": "-1"}, headers=headers)).status_code == 400
    assert (await client.get("/feeds/timebank", params={"limit": 1001}, headers=headers)).status_code == 422
    bad = await client.post("/consumers", json={"id": "A B", "name": "x"}, headers=community.worker)
    assert bad.status_code == 422
    bad = await client.post("/consumers/city-h/grants", json={"scene": "weather"}, headers=community.worker)
    assert bad.status_code == 422


async def test_concurrent_builders_leave_no_gap_a_reader_could_skip(community: Community) -> None:
    """Many transactions append at once while a reader pulls: the reader never sees seq n+1 before n."""
    headers = await community.register("city-i", scenes=["property"])
    events = registered(community.id, factory.residents(120, seed=12))
    keys = keys_of(community.svc)

    async def append(event: CloudEvent) -> int | None:
        async with community.svc.state.sessionmaker() as session:
            return await feeds.ingest(session, keys, event)

    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        after = "0"
        while True:
            finished = done.is_set()
            page = (
                await community.svc.client.get("/feeds/property", params={"after": after, "limit": 17}, headers=headers)
            ).json()
            seen.extend(r["seq"] for r in page["records"])
            after = page["next_cursor"]
            if finished and not page["has_more"]:
                return

    read = asyncio.create_task(reader())
    seqs = await asyncio.gather(*(append(e) for e in events))
    done.set()
    await read
    assert sorted(s for s in seqs if s is not None) == list(range(1, 121))
    assert seen == list(range(1, 121))


async def test_daily_statistics_are_published_for_closed_days_and_revised(community: Community) -> None:
    people = factory.residents(40, seed=13)
    day = datetime.now(UTC) - timedelta(days=3)
    await ingest_all(community.svc, factory.community_events(community.id, people, start=day.replace(hour=1)))
    headers = await community.register("city-j", scenes=["stats"])
    async with community.svc.state.sessionmaker() as session:
        assert await statistics.publish_daily_statistics(session, now=datetime.now(UTC), grace=timedelta(hours=1)) >= 1
        # Nothing changed: nothing more to publish.
        assert await statistics.publish_daily_statistics(session, now=datetime.now(UTC), grace=timedelta(hours=1)) == 0
    records = await community.pull_all(headers, "stats")
    figures = {r["data"]["day"]: r["data"] for r in records}
    total = {
        k: sum(f[k] for f in figures.values())
        for k in (
            "services_confirmed",
            "bookings_completed",
            "tickets_submitted",
            "tickets_completed",
            "redemptions_released",
            "minutes_served",
            "points_granted",
        )
    }
    assert total["services_confirmed"] == total["bookings_completed"] == total["tickets_submitted"] == 10
    assert total["tickets_completed"] == 10 and total["redemptions_released"] == 10
    assert total["points_granted"] == 10 * 60
    by_type = [f["minutes_by_service_type"] for f in figures.values()]
    assert sum(sum(t.values()) for t in by_type) == total["minutes_served"] > 0
    assert all(f["occupancy_permille"] == 2 * 60 * 1000 // 1440 for f in figures.values() if f["spots_used"])
    assert all(r["record_type"] == "daily_statistics" and r["data"]["revision"] >= 1 for r in records)

    # A late service confirmation for the first day revises it: a new record, a higher revision.
    first_day = min(figures)
    when = datetime.fromisoformat(first_day + "T12:00:00+08:00")
    late = factory.event(
        "timebank.service.confirmed.v1",
        {
            "transfer_id": str(uuid.uuid4()),
            "community": community.id,
            "volunteer_id": people[0].id,
            "elder_id": people[1].id,
            "minutes": 45,
            "service_type": "meal",
            "confirmed_at": when.isoformat(),
        },
        "late",
        "/services/timebank",
        datetime.now(UTC),
    )
    await ingest_all(community.svc, [late])
    async with community.svc.state.sessionmaker() as session:
        assert await statistics.publish_daily_statistics(session, now=datetime.now(UTC), grace=timedelta(hours=1)) == 1
    revised = (await community.pull_all(headers, "stats"))[-1]["data"]
    assert revised["day"] == first_day and revised["revision"] > figures[first_day]["revision"]
    assert revised["minutes_served"] == figures[first_day]["minutes_served"] + 45


async def test_a_rolled_back_batch_adds_nothing_to_the_day_and_its_retry_adds_it_once(community: Community) -> None:
    """A transaction's statistics are written at its commit (one row update per community and day):
    a batch that fails leaves no trace in them, and the same events applied again count once."""
    people = factory.residents(9, seed=17)
    events = factory.community_events(community.id, people, start=datetime.now(UTC) - timedelta(days=2))
    keys = keys_of(community.svc)

    class Abandoned(Exception):
        pass

    try:
        async with community.svc.state.sessionmaker() as session, session.begin():
            for event in events:
                await feeds.ingest(session, keys, event)
            raise Abandoned
    except Abandoned:
        pass

    async def totals() -> tuple[int, int, int]:
        async with community.svc.state.sessionmaker() as session, session.begin():
            row = (
                await session.execute(
                    text(
                        "SELECT coalesce(sum(services_confirmed), 0), coalesce(sum(bookings_completed), 0), "
                        "coalesce(sum(spots_used), 0) FROM daily_stats WHERE community = :c"
                    ),
                    {"c": community.id},
                )
            ).one()
            return int(row[0]), int(row[1]), int(row[2])

    assert await totals() == (0, 0, 0)
    await ingest_all(community.svc, events, chunk=4)
    await ingest_all(community.svc, events)  # the re-publish command: every copy is dropped
    confirmed, booked, spots = await totals()
    expected = sum(1 for e in events if e.type == "timebank.service.confirmed.v1")
    assert confirmed == expected > 0
    assert booked == sum(1 for e in events if e.type == "parking.booking.completed.v1") > 0
    assert spots > 0


async def test_records_queued_for_the_commit_equal_records_made_one_by_one(stack: TestStack, citysync: RunningService) -> None:
    """The consumer's path (`ingest_later`: a batch's records written in one statement at commit)
    makes the same feeds, numbers and day figures as `ingest`, copies included; a reversal finds
    the service type of a confirmation queued in the same batch."""
    one_by_one, queued = Community(stack, citysync), Community(stack, citysync)
    people = factory.residents(10, seed=31)
    keys = keys_of(citysync)

    events = factory.community_events(one_by_one.id, people, start=datetime.now(UTC) - timedelta(days=2))
    confirmed = next(e for e in events if e.type == "timebank.service.confirmed.v1")
    events.append(
        factory.event(
            "timebank.transfer.reversed.v1",
            {
                "transfer_id": str(uuid.uuid4()),
                "community": one_by_one.id,
                "reverses_transfer_id": confirmed.data["transfer_id"],
                "minutes": confirmed.data["minutes"],
            },
            "reversal",
            "/services/timebank",
            confirmed.time + timedelta(minutes=5),
        )
    )
    events += [events[0], events[3]]  # copies of events already seen

    def events_of(community: Community) -> list[CloudEvent]:
        """The same events for `community`: their own ids (a source event makes one record in all)."""
        return [
            dataclasses.replace(
                e, id=str(uuid.uuid5(uuid.NAMESPACE_URL, community.id + e.id)), data={**e.data, "community": community.id}
            )
            for e in events
        ]

    # The queued community first: its reversal can only find the confirmation in its own batch.
    queued_events = events_of(queued)
    for chunk in (queued_events, queued_events[:5]):  # one batch, then nothing but copies
        async with citysync.state.sessionmaker() as session, session.begin():
            for event in chunk:
                await feeds.ingest_later(session, keys, event)
    await ingest_all(citysync, events_of(one_by_one), chunk=7)

    async def feeds_and_days(community: Community) -> tuple[list[Any], list[Any]]:
        async with citysync.state.sessionmaker() as session, session.begin():
            records = (
                await session.execute(
                    text(
                        "SELECT scene, seq, record_type, schema_version, event_time, subject_id, payload - 'community' "
                        "FROM feed_records WHERE community = :c ORDER BY scene, seq"
                    ),
                    {"c": community.id},
                )
            ).all()
            days = (
                await session.execute(
                    text(
                        "SELECT day, services_confirmed, minutes_served, minutes_reversed, bookings_completed, "
                        "tickets_submitted, tickets_completed, redemptions_released, spots_used, minutes_by_type "
                        "FROM daily_stats WHERE community = :c ORDER BY day"
                    ),
                    {"c": community.id},
                )
            ).all()
            return [tuple(r) for r in records], [tuple(d) for d in days]

    made, days = await feeds_and_days(queued)
    assert (made, days) == await feeds_and_days(one_by_one)
    assert len(made) == len(events) - 2 and sum(d[3] for d in days) > 0  # a reversal was counted
    # The reversal was taken off its confirmation's service type (found queued in the same batch).
    assert sum(sum(d[9].values()) for d in days) == sum(d[2] for d in days)


async def test_a_consumer_resumes_after_the_service_restarts(stack: TestStack) -> None:
    url = await stack.fresh_database("citysync")
    community_id = f"c-{uuid.uuid4().hex[:8]}"
    try:
        async with run_service(stack, "citysync", create_app, Settings, database_url=url) as svc:
            c = Community(stack, svc, id=community_id)
            await ingest_all(svc, registered(community_id, factory.residents(30, seed=14)))
            headers = await c.register("city-k", scenes=["property"])
            first = (await svc.client.get("/feeds/property", params={"limit": 12}, headers=headers)).json()
        cursor = first["next_cursor"]
        async with run_service(stack, "citysync", create_app, Settings, database_url=url) as svc:
            await ingest_all(svc, registered(community_id, factory.residents(5, seed=15)))
            rest = await Community(stack, svc, id=community_id).pull_all(headers, "property", limit=7, after=cursor)
            async with svc.state.sessionmaker() as session, session.begin():
                pulls = (await session.execute(text("SELECT count(*) FROM pulls"))).scalar_one()
        assert [r["seq"] for r in first["records"]] + [r["seq"] for r in rest] == list(range(1, 36))
        assert pulls >= 2
    finally:
        await stack.drop_database(url)


async def test_concurrent_registrations_make_exactly_one(community: Community) -> None:
    results = await asyncio.gather(
        *(
            community.svc.client.post("/consumers", json={"id": "city-race", "name": "并发"}, headers=community.worker)
            for _ in range(20)
        )
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 19


async def test_pulls_racing_a_revocation_are_recorded_exactly_when_served(community: Community) -> None:
    """Pulls in flight when a grant is revoked either finish before it (200, recorded) or see it (404,
    not recorded); every pull after the revocation returns is refused."""
    await ingest_all(community.svc, registered(community.id, factory.residents(30, seed=16)))
    headers = await community.register("city-l", scenes=["property"])
    client = community.svc.client

    async def pull() -> int:
        return (await client.get("/feeds/property", params={"limit": 10}, headers=headers)).status_code

    pulls = [asyncio.create_task(pull()) for _ in range(30)]
    revoked = await client.delete("/consumers/city-l/grants/property", headers=community.worker)
    assert revoked.status_code == 200
    after = await asyncio.gather(*(pull() for _ in range(10)))
    statuses = await asyncio.gather(*pulls)
    assert set(statuses) <= {200, 404} and after == [404] * 10
    register = (await client.get("/pulls", params={"consumer_id": "city-l", "limit": 100}, headers=community.worker)).json()[
        "items"
    ]
    assert len(register) == statuses.count(200)


async def test_concurrent_topic_writers_copy_each_record_once_in_order(stack: TestStack, citysync: RunningService) -> None:
    """Several replicas' city-topics jobs at once: every record reaches its topic's outbox once, in seq order."""
    communities = [Community(stack, citysync) for _ in range(3)]
    for i, c in enumerate(communities):
        await ingest_all(citysync, registered(c.id, factory.residents(100, seed=40 + i)))
    keys = keys_of(citysync)

    async def writer() -> int:
        total = 0
        async with citysync.state.sessionmaker() as session:
            while n := await topics.publish_city_topics(session, keys, batch=37):
                total += n
        return total

    await asyncio.gather(*(writer() for _ in range(6)))
    async with citysync.state.sessionmaker() as session, session.begin():
        rows = (
            await session.execute(
                text("SELECT key, subject FROM kit_outbox WHERE key = ANY(:keys) ORDER BY id"),
                {"keys": [c.id for c in communities]},
            )
        ).all()
    for c in communities:
        subjects = [s for k, s in rows if k == c.id]
        assert subjects == [f"{c.id}/property/{n}" for n in range(1, 101)]


async def test_a_pull_still_running_when_a_revocation_returns_is_refused(community: Community) -> None:
    """Once revoking a grant has returned, no pull of that feed is served, even one that had started.

    A pull is held up mid-way (another transaction locks the pull register, which every pull writes)
    while the grant is revoked; when it resumes it must be refused (404), with nothing recorded. The
    grant check, the page and the register row are one statement, so there is no moment in which the
    grant has been checked and let go but the page not yet read.
    """
    await ingest_all(community.svc, registered(community.id, factory.residents(10, seed=17)))
    headers = await community.register("city-h", scenes=["property"])
    client = community.svc.client
    async with community.svc.state.sessionmaker() as blocker, blocker.begin():
        await blocker.execute(text("LOCK TABLE pulls IN EXCLUSIVE MODE"))
        held = asyncio.create_task(client.get("/feeds/property", params={"limit": 5}, headers=headers))

        async def pull_is_waiting() -> bool:
            async with community.svc.state.sessionmaker() as session, session.begin():
                waiting = await session.execute(
                    text("SELECT count(*) FROM pg_locks WHERE relation = 'pulls'::regclass AND NOT granted")
                )
                return bool(waiting.scalar_one())

        await wait_until(pull_is_waiting, timeout=10, interval=0.02)
        revoked = await asyncio.wait_for(client.delete("/consumers/city-h/grants/property", headers=community.worker), timeout=10)
        assert revoked.status_code == 200
        assert not held.done()
    r = await held
    assert r.status_code == 404, r.text
    register = (await client.get("/pulls", params={"consumer_id": "city-h"}, headers=community.worker)).json()
    assert register["items"] == []
