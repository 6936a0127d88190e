"""Per-key order under partial failure, and an event the broker can never accept.

The producer here is a real aiokafka producer talking to the real broker; for one produce request
only, its connection answers as a broker that refuses it, once the relay has queued a later batch
for the same partition behind it, and accepts the requests after it. The refusal reaches aiokafka's
own sender, as a real one would. Order must hold anyway: nothing later for that partition goes out
until the refused events are sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.structs import TopicPartition
from sqlalchemy import text

from services.kit.db import transaction
from services.kit.envelope import CloudEvent
from services.kit.operator import outbox_report
from services.kit.outbox import unsent_count, write_outbox
from tests.kit import probe
from tests.kit.test_backbone import tallies, wait_consumer_ready, wait_until
from tests.kit.test_operations import metric_samples
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


class RefusingBroker(AIOKafkaProducer):  # type: ignore[misc]
    """A real aiokafka producer whose broker connection refuses some produce requests, or some
    partitions of one: the refusal reaches aiokafka's own sender as a broker's answer would, so the
    batches fail there, and the rest of the request is sent to the real broker."""

    async def start(self) -> None:
        await super().start()
        self.handed_on = asyncio.Event()
        send = self.client.send

        async def send_or_refuse(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(request, ProduceRequest):
                return await send(node_id, request, *args, **kwargs)
            await self.refuse_request(request)
            refused = {(topic, partition) for topic, parts in request._topics for partition, data in parts if self.refuses(data)}
            if not refused:
                return await send(node_id, request, *args, **kwargs)
            rest = [(t, [(p, d) for p, d in parts if (t, p) not in refused]) for t, parts in request._topics]
            rest = [(t, parts) for t, parts in rest if parts]
            answer: Any = SimpleNamespace(API_VERSION=0, topics=[])
            if rest:
                answer = await send(
                    node_id,
                    ProduceRequest(request._transactional_id, request.required_acks, request._timeout, rest),
                    *args,
                    **kwargs,
                )
            # Each refused partition answers MESSAGE_TOO_LARGE, in the shape of this response version.
            width = len(answer.topics[0][1][0]) if answer.topics else 3
            answer.topics = list(answer.topics) + [
                (topic, [(partition, MessageSizeTooLargeError.errno, -1, -1, -1, [], None)[:width]])
                for topic, partition in refused
            ]
            return answer

        self.client.send = send_or_refuse

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        future = await super().send_batch(batch, topic, partition=partition)
        self.handed_on.set()
        return future

    async def refuse_request(self, request: ProduceRequest) -> None:
        """Raise to refuse the whole of `request`."""

    def refuses(self, data: bytes) -> bool:
        """Whether a partition's batch in a request is refused as too large."""
        return False

    async def until_queued_behind(self, request: ProduceRequest, timeout: float) -> bool:
        """Wait until a later batch for one of the request's partitions waits in the producer."""
        queued = self._message_accumulator._batches

        def behind() -> bool:
            return any(queued.get(TopicPartition(t, p)) for t, parts in request._topics for p, _ in parts)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not behind():
                    self.handed_on.clear()
                    await self.handed_on.wait()
        return behind()


class OneRequestRefused(RefusingBroker):
    """Refuses the `refuse_at`-th produce request (counted across instances) as one that timed out,
    once a later batch for its partition waits behind it, while it accepts all the others."""

    refuse_at = 2
    requests = 0
    refused_with_a_batch_behind = False

    async def refuse_request(self, request: ProduceRequest) -> None:
        type(self).requests += 1
        if type(self).requests == self.refuse_at:
            type(self).refused_with_a_batch_behind = await self.until_queued_behind(request, timeout=5)
            raise KafkaTimeoutError("refused by the test's broker")


@pytest.fixture
async def probe_service(stack: TestStack) -> AsyncIterator[RunningService]:
    url = await stack.empty_database("probe")
    await probe.create_schema(url)
    async with run_service(stack, "probe", probe.create_app, probe.ProbeSettings, database_url=url, outbox_batch_size=5) as svc:
        yield svc
    await stack.drop_database(url)


async def write_notes(svc: RunningService, key: str, seqs: range) -> None:
    """Many notes in one transaction, so the relay claims them in several batches in one go."""
    async with svc.state.sessionmaker() as session, transaction(session):
        for seq in seqs:
            await probe.publisher.publish(session, probe.NoteWritten(key=key, seq=seq), key=key)


async def test_a_refused_batch_holds_back_its_partition_so_a_key_stays_in_order(
    stack: TestStack, probe_service: RunningService
) -> None:
    svc = probe_service
    await wait_consumer_ready(svc)
    relay = svc.state.relay
    OneRequestRefused.requests = 0
    OneRequestRefused.refused_with_a_batch_behind = False
    relay.producer_factory = lambda: OneRequestRefused(**_producer_options(svc))
    await relay._reset_producer()  # the relay is idle: its next drain starts the refusing producer
    await write_notes(svc, "ordered", range(1, 31))

    async def all_applied() -> bool:
        t = await tallies(svc)
        return "ordered" in t and t["ordered"].applied >= 30

    await wait_until(all_applied, timeout=30)
    assert OneRequestRefused.requests > OneRequestRefused.refuse_at  # one request was refused, later ones sent
    assert OneRequestRefused.refused_with_a_batch_behind  # the relay had handed on the next batch already
    t = (await tallies(svc))["ordered"]
    assert (t.applied, t.last_seq, t.out_of_order) == (30, 30, 0)
    assert await unsent_count(svc.state.engine) == 0


def _producer_options(svc: RunningService) -> dict[str, Any]:
    from services.kit.kafka import producer_options

    return producer_options(svc.settings)


async def test_an_event_too_large_for_the_broker_is_set_aside_its_keys_later_events_held_and_the_rest_flow(
    stack: TestStack, probe_service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kit.outbox")
    svc = probe_service
    await wait_consumer_ready(svc)
    samples = metric_samples((await svc.client.get("/metrics")).text)
    set_aside_before = samples.get(("outbox_events_set_aside_total", frozenset({("service", "probe")})), 0.0)
    huge = CloudEvent(
        type=probe.NoteWritten.event_type, source="/tests", key="huge", data={"key": "huge", "seq": 1, "pad": "x" * 1_200_000}
    )
    async with svc.state.sessionmaker() as session, transaction(session):
        await write_outbox(session, probe.TOPIC, huge)
        for seq in range(2, 5):  # the same key, behind it: never sent ahead of it
            await probe.publisher.publish(session, probe.NoteWritten(key="huge", seq=seq), key="huge")
        for seq in range(1, 11):
            await probe.publisher.publish(session, probe.NoteWritten(key="behind", seq=seq), key="behind")
    await write_notes(svc, "later", range(1, 6))

    async def the_rest_applied() -> bool:
        t = await tallies(svc)
        return "behind" in t and t["behind"].applied >= 10 and "later" in t and t["later"].applied >= 5

    await wait_until(the_rest_applied, timeout=30)
    t = await tallies(svc)
    assert "huge" not in t
    assert (t["behind"].applied, t["behind"].out_of_order, t["later"].applied) == (10, 0, 5)
    report = await outbox_report(svc.state.engine, "probe")
    assert (report["unsent"], report["held_behind_set_aside"]) == (3, 3)  # huge's seq 2-4 wait behind it
    assert len(report["set_aside"]) == 1
    assert "more than the broker accepts" in next(iter(report["set_aside"].values()))
    samples = metric_samples((await svc.client.get("/metrics")).text)
    assert samples[("outbox_events_set_aside_total", frozenset({("service", "probe")}))] == set_aside_before + 1
    assert any(r.levelno == logging.ERROR and "set aside" in r.getMessage() for r in caplog.records)

    # The operator gives up on the set-aside event (deletes it): the key's held events go out, in order.
    async with svc.state.engine.begin() as conn:
        await conn.execute(text("DELETE FROM kit_outbox WHERE id = ANY(:ids)"), {"ids": list(report["set_aside"])})
    await write_notes(svc, "wake", range(1, 2))  # any write wakes the relay

    async def held_applied() -> bool:
        t = await tallies(svc)
        return "huge" in t and t["huge"].applied >= 3

    await wait_until(held_applied, timeout=30)
    t = await tallies(svc)
    # In order: 2, 3, 4; the one gap is the deleted seq 1.
    assert (t["huge"].applied, t["huge"].last_seq, t["huge"].out_of_order) == (3, 4, 1)
    report = await outbox_report(svc.state.engine, "probe")
    assert (report["unsent"], report["held_behind_set_aside"], report["set_aside"]) == (0, 0, {})


class SmallMessagesOnly(RefusingBroker):
    """Answers as a broker with a small message.max.bytes would: a partition's batch over `limit`
    bytes is refused with MESSAGE_TOO_LARGE, which sending again never cures."""

    limit = 100_000

    def refuses(self, data: bytes) -> bool:
        return len(data) > self.limit


async def test_an_event_the_broker_refuses_as_too_large_is_found_and_set_aside_and_its_key_held(
    stack: TestStack, probe_service: RunningService
) -> None:
    svc = probe_service
    await wait_consumer_ready(svc)
    relay = svc.state.relay
    relay.producer_factory = lambda: SmallMessagesOnly(**_producer_options(svc))
    await relay._reset_producer()
    big = CloudEvent(
        type=probe.NoteWritten.event_type, source="/tests", key="big", data={"key": "big", "seq": 1, "pad": "x" * 150_000}
    )
    async with svc.state.sessionmaker() as session, transaction(session):
        await probe.publisher.publish(session, probe.NoteWritten(key="near", seq=1), key="near")
        await write_outbox(session, probe.TOPIC, big)
        for seq in range(2, 6):
            await probe.publisher.publish(session, probe.NoteWritten(key="near", seq=seq), key="near")
        await probe.publisher.publish(session, probe.NoteWritten(key="big", seq=2), key="big")  # held behind it

    async def near_applied() -> bool:
        t = await tallies(svc)
        return "near" in t and t["near"].applied >= 5

    await wait_until(near_applied, timeout=30)
    report: dict[str, Any] = {}

    async def big_set_aside() -> bool:
        nonlocal report
        report = await outbox_report(svc.state.engine, "probe")
        return report["unsent"] == report["held_behind_set_aside"] == 1 and bool(report["set_aside"])

    await wait_until(big_set_aside, timeout=30)
    t = await tallies(svc)
    assert "big" not in t
    assert (t["near"].applied, t["near"].out_of_order) == (5, 0)
    assert [reason.startswith("the broker refused it: MessageSizeTooLargeError") for reason in report["set_aside"].values()] == [
        True
    ]
