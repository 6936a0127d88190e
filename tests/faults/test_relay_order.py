"""Per-key order under partial failure, and an event the broker can never accept.

The producer here is a real aiokafka producer talking to the real broker; for one batch only, it
answers as a broker that refuses the batch (the acknowledgement fails) while the batches behind it
would be accepted. Order must hold anyway: nothing later for that partition goes out until the
refused events are sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, NotEnoughReplicasError

from services.kit.db import transaction
from services.kit.envelope import CloudEvent
from services.kit.operator import outbox_report
from services.kit.outbox import unsent_count, write_outbox
from tests.kit import probe
from tests.kit.test_backbone import tallies, wait_consumer_ready, wait_until
from tests.kit.test_operations import metric_samples
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


class OneBatchRefused(AIOKafkaProducer):  # type: ignore[misc]
    """Refuses the `refuse_at`-th batch it is given (counted across instances), as a broker that
    answers NOT_ENOUGH_REPLICAS would, a little later, while it keeps accepting the others."""

    refuse_at = 2
    batches = 0

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        type(self).batches += 1
        if type(self).batches != self.refuse_at:
            future: asyncio.Future[Any] = await super().send_batch(batch, topic, partition=partition)
            return future
        refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.2, refused.set_exception, NotEnoughReplicasError())
        return refused


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
    OneBatchRefused.batches = 0
    relay.producer_factory = lambda: OneBatchRefused(**{**_producer_options(svc), "linger_ms": 50})
    await relay._reset_producer()  # the relay is idle: its next drain starts the refusing producer
    await write_notes(svc, "ordered", range(1, 31))

    async def all_applied() -> bool:
        t = await tallies(svc)
        return "ordered" in t and t["ordered"].applied >= 30

    await wait_until(all_applied, timeout=30)
    assert OneBatchRefused.batches > OneBatchRefused.refuse_at  # one batch was refused, later ones sent
    t = (await tallies(svc))["ordered"]
    assert (t.applied, t.last_seq, t.out_of_order) == (30, 30, 0)
    assert await unsent_count(svc.state.engine) == 0


def _producer_options(svc: RunningService) -> dict[str, Any]:
    from services.kit.kafka import producer_options

    return producer_options(svc.settings)


async def test_an_event_too_large_for_the_broker_is_set_aside_and_the_rest_flow(
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
    assert report["unsent"] == 0
    assert len(report["set_aside"]) == 1
    assert "more than the broker accepts" in next(iter(report["set_aside"].values()))
    samples = metric_samples((await svc.client.get("/metrics")).text)
    assert samples[("outbox_events_set_aside_total", frozenset({("service", "probe")}))] == set_aside_before + 1
    assert any(r.levelno == logging.ERROR and "set aside" in r.getMessage() for r in caplog.records)


class SmallMessagesOnly(AIOKafkaProducer):  # type: ignore[misc]
    """Answers as a broker with a small message.max.bytes would: a batch over `limit` bytes is
    refused with MESSAGE_TOO_LARGE, which sending again never cures."""

    limit = 100_000

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if batch.size() <= self.limit:
            future: asyncio.Future[Any] = await super().send_batch(batch, topic, partition=partition)
            return future
        refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        refused.set_exception(MessageSizeTooLargeError())
        return refused


async def test_an_event_the_broker_refuses_as_too_large_is_found_and_set_aside(
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

    async def near_applied() -> bool:
        t = await tallies(svc)
        return "near" in t and t["near"].applied >= 5

    await wait_until(near_applied, timeout=30)
    report: dict[str, Any] = {}

    async def big_set_aside() -> bool:
        nonlocal report
        report = await outbox_report(svc.state.engine, "probe")
        return report["unsent"] == 0 and bool(report["set_aside"])

    await wait_until(big_set_aside, timeout=30)
    t = await tallies(svc)
    assert "big" not in t
    assert (t["near"].applied, t["near"].out_of_order) == (5, 0)
    assert [reason.startswith("the broker refused it: MessageSizeTooLargeError") for reason in report["set_aside"].values()] == [
        True
    ]
