"""The event backbone against real servers: outbox under a broker outage, inbox dedupe, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from services.kit.envelope import CloudEvent
from services.kit.outbox import unsent_count
from services.kit.redelivery import publish_raw, replay_dead_letters
from tests.kit import probe
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture
async def probe_service(stack: TestStack) -> AsyncIterator[RunningService]:
    url = await stack.empty_database("probe")
    await probe.create_schema(url)
    async with run_service(stack, "probe", probe.create_app, probe.ProbeSettings, database_url=url) as svc:
        yield svc
    await stack.drop_database(url)


async def tallies(svc: RunningService) -> dict[str, probe.Tally]:
    async with svc.state.sessionmaker() as session, session.begin():
        rows = (await session.execute(select(probe.Tally))).scalars().all()
        return {t.key: t for t in rows}


async def wait_until(predicate, timeout: float, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def wait_consumer_ready(svc: RunningService) -> None:
    for consumer in svc.state.consumers:
        await asyncio.wait_for(consumer.ready.wait(), 30)


async def test_outbox_survives_broker_outage(stack: TestStack, probe_service: RunningService) -> None:
    if stack.broker is None:
        pytest.skip("needs the embedded broker, which the test stops and restarts")
    svc = probe_service
    headers = stack.auth("writer", "resident")
    await wait_consumer_ready(svc)
    stack.stop_broker()
    try:
        keys = [f"k{i}" for i in range(10)]

        async def write_key(key: str) -> None:
            for seq in range(1, 101):
                r = await svc.client.post("/notes", json={"key": key, "seq": seq}, headers=headers)
                assert r.status_code == 201, r.text

        # 1,000 state changes while the broker is down: every one succeeds.
        await asyncio.gather(*(write_key(k) for k in keys))
        assert await unsent_count(svc.state.engine) == 1000
    finally:
        stack.start_broker()

    async def all_applied() -> bool:
        t = await tallies(svc)
        return sum(x.applied for x in t.values()) >= 1000

    await wait_until(all_applied, timeout=90)
    await asyncio.sleep(1.0)  # anything extra would show up now
    t = await tallies(svc)
    assert sum(x.applied for x in t.values()) == 1000
    assert {k: (x.applied, x.last_seq, x.out_of_order) for k, x in t.items()} == {f"k{i}": (100, 100, 0) for i in range(10)}
    assert await unsent_count(svc.state.engine) == 0


async def test_same_event_twice_has_one_effect(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    await wait_consumer_ready(svc)
    topic = svc.settings.kafka_namespace + probe.TOPIC
    event = CloudEvent(type=probe.NoteWritten.event_type, source="/tests", key="dup", data={"key": "dup", "seq": 1})
    await publish_raw(svc.settings, topic, event)
    await publish_raw(svc.settings, topic, event)
    # A later event on the same key shows the consumer has moved past both copies.
    await publish_raw(
        svc.settings,
        topic,
        CloudEvent(type=probe.NoteWritten.event_type, source="/tests", key="dup", data={"key": "dup", "seq": 2}),
    )

    async def second_applied() -> bool:
        t = await tallies(svc)
        return "dup" in t and t["dup"].last_seq == 2

    await wait_until(second_applied, timeout=30)
    t = await tallies(svc)
    assert (t["dup"].applied, t["dup"].out_of_order) == (2, 0)


async def test_poison_event_goes_to_dead_letters_and_replays(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    await wait_consumer_ready(svc)
    headers = stack.auth("writer", "resident")
    probe.POISON["enabled"] = True
    try:
        r = await svc.client.post("/notes", json={"key": "p", "seq": 1, "poison": True}, headers=headers)
        assert r.status_code == 201
        for seq in range(1, 6):
            r = await svc.client.post("/notes", json={"key": "behind", "seq": seq}, headers=headers)
            assert r.status_code == 201

        async def behind_applied() -> bool:
            t = await tallies(svc)
            return "behind" in t and t["behind"].applied == 5

        # The events behind the poison one keep flowing while it is retried and dead-lettered.
        await wait_until(behind_applied, timeout=30)
        assert "p" not in await tallies(svc)

        replayed = 0

        async def dead_letter_replayed() -> bool:
            nonlocal replayed
            replayed += await replay_dead_letters(svc.settings, probe.tally_consumer.group, timeout_s=3)
            return replayed >= 1

        probe.POISON["enabled"] = False  # the operator fixed the cause
        await wait_until(dead_letter_replayed, timeout=30, interval=0.5)
        assert replayed == 1

        async def poison_applied() -> bool:
            return "p" in await tallies(svc)

        await wait_until(poison_applied, timeout=30)
        assert (await tallies(svc))["p"].applied == 1
        # Replaying again finds nothing new.
        assert await replay_dead_letters(svc.settings, probe.tally_consumer.group, timeout_s=2) == 0
    finally:
        probe.POISON["enabled"] = True


async def test_idempotency_key_replays_and_rejects_other_body(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    headers = {**stack.auth("writer", "resident"), "Idempotency-Key": "abc-1"}
    results = await asyncio.gather(
        *(svc.client.post("/notes", json={"key": "idem", "seq": 1}, headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    async with svc.state.sessionmaker() as session, session.begin():
        count = (await session.execute(select(func.count()).select_from(probe.Note).where(probe.Note.key == "idem"))).scalar_one()
    assert count == 1
    other = await svc.client.post("/notes", json={"key": "idem", "seq": 2}, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["type"] == "urn:community:problem:idempotency-key-reused"


async def test_republish_since_resends_and_consumers_dedupe(stack: TestStack, probe_service: RunningService) -> None:
    from datetime import UTC, datetime, timedelta

    from services.kit.outbox import republish_since

    svc = probe_service
    await wait_consumer_ready(svc)
    headers = stack.auth("writer", "resident")
    for seq in range(1, 4):
        assert (await svc.client.post("/notes", json={"key": "again", "seq": seq}, headers=headers)).status_code == 201

    async def three_applied() -> bool:
        t = await tallies(svc)
        return "again" in t and t["again"].applied == 3

    await wait_until(three_applied, timeout=30)
    assert await republish_since(svc.state.engine, datetime.now(UTC) - timedelta(minutes=5)) == 3

    async def resent() -> bool:
        return await unsent_count(svc.state.engine) == 0

    await wait_until(resent, timeout=30)
    # A fourth note on the same key (same partition, so behind the re-sent copies) marks the point
    # by which the copies were read: had they been applied, the tally would count 7 and disorder.
    assert (await svc.client.post("/notes", json={"key": "again", "seq": 4}, headers=headers)).status_code == 201

    async def fourth_applied() -> bool:
        return (await tallies(svc))["again"].last_seq == 4

    await wait_until(fourth_applied, timeout=30)
    t = await tallies(svc)
    assert (t["again"].applied, t["again"].last_seq, t["again"].out_of_order) == (4, 4, 0)


# With several partitions' batches at once too: keys a and b share a partition of the topic's four
# and c (the poison) has another, each applied in its own task; every key's events in order, once.
@pytest.mark.parametrize("partitions_at_once", [1, 4])
async def test_batched_consumer_applies_once_in_order_and_isolates_poison(
    stack: TestStack, caplog: pytest.LogCaptureFixture, partitions_at_once: int
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="kit.inbox")
    from functools import partial

    url = await stack.empty_database("probe")
    await probe.create_schema(url)
    probe.POISON["enabled"] = True
    try:
        async with run_service(
            stack,
            "probe",
            partial(probe.create_app, batched=True, partitions_at_once=partitions_at_once),
            probe.ProbeSettings,
            database_url=url,
        ) as svc:
            topic = svc.settings.kafka_namespace + probe.TOPIC
            events = []
            for seq in range(1, 201):
                for key in ("a", "b"):
                    events.append(
                        CloudEvent(type=probe.NoteWritten.event_type, source="/tests", key=key, data={"key": key, "seq": seq})
                    )
            poison = CloudEvent(
                type=probe.NoteWritten.event_type, source="/tests", key="c", data={"key": "c", "seq": 1, "poison": True}
            )
            after_poison = CloudEvent(type=probe.NoteWritten.event_type, source="/tests", key="c", data={"key": "c", "seq": 2})
            # Everything, duplicates of the first 50 included, sent before the consumer starts
            # reading, so its fetches hold many events each.
            from services.kit.kafka import make_producer

            producer = make_producer(svc.settings)
            await producer.start()
            try:
                for ev in [*events, *events[:50], poison, after_poison]:
                    key, value, headers = ev.to_kafka()
                    await producer.send(topic, value=value, key=key, headers=headers)
                await producer.flush()
            finally:
                await producer.stop()

            async def all_applied() -> bool:
                t = await tallies(svc)
                return (
                    t.get("a") is not None
                    and t["a"].applied >= 200
                    and t.get("b") is not None
                    and t["b"].applied >= 200
                    and "c" in t
                )

            await wait_until(all_applied, timeout=60)
            await asyncio.sleep(0.5)
            t = await tallies(svc)
            assert (t["a"].applied, t["a"].last_seq, t["a"].out_of_order) == (200, 200, 0)
            assert (t["b"].applied, t["b"].last_seq, t["b"].out_of_order) == (200, 200, 0)
            # The poison event fell out (to the dead letters); the one behind it was applied.
            assert (t["c"].applied, t["c"].last_seq) == (1, 2)
            # The poison arrived inside a multi-event batch, which fell back to single events.
            assert any("fell back to single events" in r.getMessage() for r in caplog.records)
    finally:
        await stack.drop_database(url)


async def test_a_problem_names_the_path_the_client_asked_for(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    headers = stack.auth("writer", "resident")
    direct = await svc.client.post("/notes", json={"key": "bad"}, headers=headers)
    assert direct.status_code == 422 and direct.json()["instance"] == "/notes"
    via_gateway = await svc.client.post("/notes", json={"key": "bad"}, headers={**headers, "X-Forwarded-Prefix": "/api/probe"})
    assert via_gateway.json()["instance"] == "/api/probe/notes"
    for not_a_prefix in ("api/probe", "/api/probe?x=1", "/a b", "//", "/" + "x" * 65):
        odd = await svc.client.post("/notes", json={"key": "bad"}, headers={**headers, "X-Forwarded-Prefix": not_a_prefix})
        assert odd.json()["instance"] == "/notes", not_a_prefix
