"""Idle consumers rest and a produce wakes them (services/kit/wakes.py), against real Redis and broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select

from services.kit import wakes
from services.kit.envelope import CloudEvent
from services.kit.inbox import EventConsumer
from services.kit.kafka import make_producer
from services.kit.redelivery import publish_raw
from services.kit.telemetry import CONSUMER_RESTS
from tests.kit import probe
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture
async def probe_url(stack: TestStack) -> AsyncIterator[str]:
    url = await stack.empty_database("probe")
    await probe.create_schema(url)
    yield url
    await stack.drop_database(url)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


def rest_of(svc: RunningService) -> wakes.Rest:
    consumer = svc.state.consumers[0].consumer
    assert isinstance(consumer, wakes.RestingConsumer)
    return consumer.rest


async def resting(svc: RunningService) -> None:
    await asyncio.wait_for(svc.state.consumers[0].ready.wait(), 30)

    async def now() -> bool:
        consumer = svc.state.consumers[0].consumer
        return isinstance(consumer, wakes.RestingConsumer) and consumer.rest.resting

    await wait_until(now, 30)


def rests(group: str, ended_by: str) -> float:
    return CONSUMER_RESTS.labels(group, ended_by)._value.get()


async def tally(svc: RunningService, key: str) -> int:
    async with svc.state.sessionmaker() as session, session.begin():
        row = (await session.execute(select(probe.Tally).where(probe.Tally.key == key))).scalar_one_or_none()
        return 0 if row is None else row.applied


def note_event(key: str) -> CloudEvent:
    return CloudEvent(type=probe.NoteWritten.event_type, source="/tests", key=key, data={"key": key, "seq": 1})


@pytest.mark.parametrize("partitions_at_once", [1, 4])
async def test_a_resting_consumer_is_woken_by_the_relays_announcement(
    stack: TestStack, probe_url: str, monkeypatch: pytest.MonkeyPatch, partitions_at_once: int
) -> None:
    # A fallback far longer than the wait below: only the wake can end the rest in time.
    monkeypatch.setattr(wakes, "FALLBACK_S", 60.0)
    create_app = partial(probe.create_app, partitions_at_once=partitions_at_once)
    async with run_service(stack, "probe", create_app, probe.ProbeSettings, database_url=probe_url) as svc:
        await resting(svc)
        woken = rests("probe-tally", "wake")
        r = await svc.client.post("/notes", json={"key": "woken", "seq": 1}, headers=stack.auth("u1", "resident"))
        assert r.status_code == 201, r.text
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def applied() -> bool:
            return await tally(svc, "woken") == 1

        await wait_until(applied, 10)
        assert loop.time() - started < 5.0
        assert rests("probe-tally", "wake") > woken


async def test_an_event_no_one_announced_is_applied_after_the_fallback(stack: TestStack, probe_url: str) -> None:
    async with run_service(stack, "probe", probe.create_app, probe.ProbeSettings, database_url=probe_url) as svc:
        await resting(svc)
        fallbacks = rests("probe-tally", "fallback")
        producer = make_producer(svc.settings)  # a producer outside the kit: it announces nothing
        await producer.start()
        try:
            key, value, headers = note_event("unannounced").to_kafka()
            await producer.send_and_wait(svc.settings.kafka_namespace + probe.TOPIC, value=value, key=key, headers=headers)
        finally:
            await producer.stop()

        async def applied() -> bool:
            return await tally(svc, "unannounced") == 1

        await wait_until(applied, 10)
        assert rests("probe-tally", "fallback") > fallbacks


async def test_without_redis_the_consumer_never_rests_and_still_applies(stack: TestStack, probe_url: str) -> None:
    closed = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    async with run_service(
        stack, "probe", probe.create_app, probe.ProbeSettings, database_url=probe_url, redis_url=closed
    ) as svc:
        await asyncio.wait_for(svc.state.consumers[0].ready.wait(), 30)
        r = await svc.client.post("/notes", json={"key": "no-redis", "seq": 1}, headers=stack.auth("u1", "resident"))
        assert r.status_code == 201, r.text

        async def applied() -> bool:
            return await tally(svc, "no-redis") == 1

        await wait_until(applied, 10)
        assert not rest_of(svc).wakes.live
        assert not rest_of(svc).resting


async def test_a_resting_consumer_sends_few_fetch_requests(
    stack: TestStack, probe_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with run_service(stack, "probe", probe.create_app, probe.ProbeSettings, database_url=probe_url) as svc:
        await resting(svc)
        # This consumer's fetch requests only (other tests' apps may still run in this process).
        fetcher = svc.state.consumers[0].consumer._fetcher
        sent = fetcher._proc_fetch_request
        fetches = {"count": 0}

        async def counted(*args: Any, **kwargs: Any) -> Any:
            fetches["count"] += 1
            return await sent(*args, **kwargs)

        monkeypatch.setattr(fetcher, "_proc_fetch_request", counted)
        fallbacks = rests("probe-tally", "fallback")

        async def four_rests_ended() -> bool:
            return rests("probe-tally", "fallback") >= fallbacks + 4

        await wait_until(four_rests_ended, 30)
        # Four rests of FALLBACK_S each (2 s): polling, the local profile would send ~150 fetches;
        # resting, each rest's end costs a round or two before the next rest.
        assert 1 <= fetches["count"] <= 4 * 5, fetches["count"]


async def test_partitions_moved_by_a_rebalance_while_resting_are_not_left_paused(
    stack: TestStack, probe_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only wakes end rests in time here: a partition left paused would hold its events for a minute.
    monkeypatch.setattr(wakes, "FALLBACK_S", 60.0)
    async with run_service(stack, "probe", probe.create_app, probe.ProbeSettings, database_url=probe_url) as svc:
        await resting(svc)
        first = svc.state.consumers[0]
        topic = svc.settings.kafka_namespace + probe.TOPIC
        partitions = first.consumer.partitions_for_topic(topic) or set()
        second = EventConsumer(first.spec, settings=svc.settings, sessionmaker=svc.state.sessionmaker, wakes=rest_of(svc).wakes)
        joined = asyncio.create_task(second.run())
        try:
            await asyncio.wait_for(second.ready.wait(), 30)

            def on_topic(assigned: set[TopicPartition]) -> set[TopicPartition]:
                return {tp for tp in assigned if tp.topic == topic}  # the group reads its retry topic too

            async def shared() -> bool:
                mine, theirs = on_topic(first.consumer.assignment()), on_topic(second.consumer.assignment())
                return len(mine) + len(theirs) == len(partitions) and (len(partitions) < 2 or bool(mine and theirs))

            await wait_until(shared, 30)
            keys = [f"moved-{i}" for i in range(8)]
            for key in keys:
                await publish_raw(svc.settings, topic, note_event(key))

            async def all_applied() -> bool:
                return all([await tally(svc, key) == 1 for key in keys])

            await wait_until(all_applied, 15)
        finally:
            joined.cancel()
            await asyncio.gather(joined, return_exceptions=True)
            await second.close()

        async def all_back() -> bool:
            return {TopicPartition(topic, p) for p in partitions} <= first.consumer.assignment()

        await wait_until(all_back, 30)
        await publish_raw(svc.settings, topic, note_event("back"))

        async def back_applied() -> bool:
            return await tally(svc, "back") == 1

        await wait_until(back_applied, 15)


async def test_a_wakes_loop_closed_by_the_collector_stops_without_awaiting(stack: TestStack) -> None:
    """An app stopped without waiting for its tasks leaves the loop's coroutine to the collector,
    which closes it: it must stop at once (awaiting then is a RuntimeError, "coroutine ignored
    GeneratorExit", reported during some later test's collection)."""
    w = wakes.Wakes(stack.redis_url, "closed-by-collector.", listen=True)
    loop = w.run()
    # Nothing else runs between the two snapshots (no await): the new tasks are this loop's own,
    # not those of other tests' apps still winding down in the same event loop.
    before = asyncio.all_tasks()
    suspended = loop.send(None)  # runs up to its wait on the publish and subscribe tasks
    inner = asyncio.all_tasks() - before
    assert isinstance(suspended, asyncio.Future)
    loop.close()  # what the collector does; raised RuntimeError before
    assert sorted(t.get_coro().__qualname__ for t in inner) == ["Wakes._publish", "Wakes._subscribe"]  # type: ignore[union-attr]
    for task in inner:
        task.cancel()
    await asyncio.gather(*inner, return_exceptions=True)
    await w.close()
