"""Broker loss drills: the memory-only broker is restarted and loses everything it acknowledged.

The relay notices by itself (a high watermark below what the broker acknowledged, or a batch
acknowledged at an offset it had already given) and sends the lost events again; consumers drop
the copies they had applied. No operator command is run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from services.kit.db import transaction
from services.kit.kafka import make_consumer
from services.kit.operator import outbox_report
from services.kit.outbox import unsent_count
from tests.kit import probe
from tests.kit.test_backbone import tallies, wait_consumer_ready, wait_until
from tests.kit.test_operations import metric_samples
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack

KEYS = [f"drill{i}" for i in range(5)]
PER_KEY = 40


@pytest.fixture
async def probe_service(stack: TestStack) -> AsyncIterator[RunningService]:
    if stack.broker is None:
        pytest.skip("needs the embedded broker, which the drill restarts")
    url = await stack.empty_database("probe")
    await probe.create_schema(url)
    async with run_service(
        stack, "probe", probe.create_app, probe.ProbeSettings, database_url=url, outbox_loss_check_s=1.0
    ) as svc:
        yield svc
    await stack.drop_database(url)


async def losses_counted(svc: RunningService) -> float:
    samples = metric_samples((await svc.client.get("/metrics")).text)
    return samples.get(("outbox_broker_losses_total", frozenset({("service", "probe")})), 0.0)


async def test_a_broker_restarted_mid_stream_loses_no_effect_and_doubles_none(
    stack: TestStack, probe_service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kit.outbox")
    svc = probe_service
    await wait_consumer_ready(svc)
    headers = stack.auth("writer", "resident")
    losses_before = await losses_counted(svc)
    written = 0

    async def write_all() -> None:
        nonlocal written
        for seq in range(1, PER_KEY + 1):
            for key in KEYS:
                r = await svc.client.post("/notes", json={"key": key, "seq": seq}, headers=headers)
                assert r.status_code == 201, r.text
                written += 1
            await asyncio.sleep(0.02)

    # The consumer lags, so the broker holds acknowledged events nobody has read when it dies.
    probe.APPLY_DELAY_S["value"] = 0.03
    writer = asyncio.create_task(write_all())
    try:

        async def some_applied() -> bool:
            return sum(t.applied for t in (await tallies(svc)).values()) >= 20

        await wait_until(some_applied, timeout=30)
        acked = (await outbox_report(svc.state.engine, "probe"))["acknowledged_offsets"]
        assert sum(offset + 1 for offset in acked.values()) > 40, "the broker should hold unread events"
        # Mid-stream: the broker dies with everything it held and comes back empty.
        stack.stop_broker()
        stack.start_broker()
        restarted = asyncio.get_running_loop().time()
        await writer
    finally:
        writer.cancel()
        probe.APPLY_DELAY_S["value"] = 0.0
    assert written == len(KEYS) * PER_KEY

    async def all_applied() -> bool:
        return sum(t.applied for t in (await tallies(svc)).values()) >= written

    await wait_until(all_applied, timeout=30)
    assert asyncio.get_running_loop().time() - restarted < 30
    await asyncio.sleep(1.0)  # a doubled effect would show up now
    assert {k: t.applied for k, t in (await tallies(svc)).items()} == {k: PER_KEY for k in KEYS}
    assert await unsent_count(svc.state.engine) == 0
    assert await losses_counted(svc) > losses_before
    assert any("broker lost events of probe" in r.getMessage() for r in caplog.records)
    report = await outbox_report(svc.state.engine, "probe")
    assert report["broker_losses"] >= 1 and report["unsent"] == 0
    assert report["last_broker_loss"] is not None


async def test_an_idle_relay_notices_the_loss_and_refills_the_broker(stack: TestStack, probe_service: RunningService) -> None:
    """Nothing is being sent when the broker restarts: the periodic check finds the loss, so a
    consumer that reads the topic afterwards still gets every event, once."""
    svc = probe_service
    await wait_consumer_ready(svc)
    headers = stack.auth("writer", "resident")
    for seq in range(1, 21):
        assert (await svc.client.post("/notes", json={"key": f"idle{seq % 4}", "seq": seq}, headers=headers)).status_code == 201

    async def all_sent() -> bool:
        return await unsent_count(svc.state.engine) == 0 and bool(
            (await outbox_report(svc.state.engine, "probe"))["acknowledged_offsets"]
        )

    await wait_until(all_sent, timeout=30)
    losses_before = (await outbox_report(svc.state.engine, "probe"))["broker_losses"]
    stack.stop_broker()
    stack.start_broker()

    async def repaired() -> bool:
        report = await outbox_report(svc.state.engine, "probe")
        return report["broker_losses"] > losses_before and report["unsent"] == 0

    await wait_until(repaired, timeout=30, interval=0.2)
    # A reader that starts now, from the beginning, finds all 20 events on the broker, once each.
    ids = await event_ids_on_broker(svc, at_least=20)
    assert len(ids) == len(set(ids)) == 20


async def event_ids_on_broker(svc: RunningService, at_least: int) -> list[str]:
    """The ids of the events on the probe's topic, read from the beginning by a new reader."""
    consumer = make_consumer(svc.settings, svc.settings.kafka_namespace + probe.TOPIC, group_id=None)
    await consumer.start()
    ids: list[str] = []
    try:

        async def read_all() -> bool:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                ids.extend(dict(r.headers)["ce_id"].decode() for r in records)
            return len(ids) >= at_least

        await wait_until(read_all, timeout=30, interval=0)
        await asyncio.sleep(0.5)
        for records in (await consumer.getmany(timeout_ms=500)).values():
            ids.extend(dict(r.headers)["ce_id"].decode() for r in records)
    finally:
        await consumer.stop()
    return ids


async def outbox_event_ids(svc: RunningService) -> set[str]:
    async with svc.state.engine.connect() as conn:
        return set((await conn.execute(text("SELECT event_id FROM kit_outbox"))).scalars())


async def sent_and_applied(svc: RunningService, stack: TestStack, key: str, count: int) -> None:
    for seq in range(1, count + 1):
        assert (
            await svc.client.post("/notes", json={"key": key, "seq": seq}, headers=stack.auth("w", "resident"))
        ).status_code == 201

    async def done() -> bool:
        t = await tallies(svc)
        return key in t and t[key].applied == count and await unsent_count(svc.state.engine) == 0

    await wait_until(done, timeout=30)


async def wait_for_loss(svc: RunningService, before: int, reason_part: str) -> None:
    async def found() -> bool:
        report = await outbox_report(svc.state.engine, "probe")
        return report["broker_losses"] > before and reason_part in (report["last_broker_loss"] or "") and report["unsent"] == 0

    await wait_until(found, timeout=30, interval=0.2)


async def test_a_deleted_topic_is_refilled(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    await wait_consumer_ready(svc)
    await sent_and_applied(svc, stack, "deleted", 10)
    before = (await outbox_report(svc.state.engine, "probe"))["broker_losses"]
    assert stack.broker is not None
    deleting = await asyncio.create_subprocess_exec(
        str(stack.broker.binary()),
        "topic",
        "delete",
        svc.settings.kafka_namespace + probe.TOPIC,
        "--broker",
        f"tcp://{stack.kafka_bootstrap}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await deleting.communicate()
    assert deleting.returncode == 0, err
    await wait_for_loss(svc, before, "")
    # Every event is on the broker again (Tansu may keep some records of a deleted topic, so some
    # may be there twice); consumers applied each once.
    assert set(await event_ids_on_broker(svc, at_least=10)) == await outbox_event_ids(svc)
    assert (await tallies(svc))["deleted"].applied == 10


async def test_another_cluster_behind_the_address_gets_everything_again(stack: TestStack, probe_service: RunningService) -> None:
    """Tansu's cluster id never changes, so the relay is told the events went to another one."""
    svc = probe_service
    await wait_consumer_ready(svc)
    await sent_and_applied(svc, stack, "moved", 10)
    before = (await outbox_report(svc.state.engine, "probe"))["broker_losses"]
    async with svc.state.engine.begin() as conn:
        await conn.execute(text("UPDATE kit_outbox_partitions SET cluster_id = 'an-earlier-cluster'"))
    await wait_for_loss(svc, before, "is not an-earlier-cluster")
    ids = await event_ids_on_broker(svc, at_least=20)
    assert len(ids) == 20 and set(ids) == await outbox_event_ids(svc)  # each once more: consumers drop the copies
    await asyncio.sleep(0.5)
    assert (await tallies(svc))["moved"].applied == 10


async def test_a_broker_that_holds_everything_shows_no_loss(stack: TestStack, probe_service: RunningService) -> None:
    """Batches of many events, acknowledged and kept: the check finds nothing to send again."""
    svc = probe_service
    async with svc.state.sessionmaker() as session, transaction(session):
        for seq in range(1, 31):
            await probe.publisher.publish(session, probe.NoteWritten(key=f"kept{seq % 3}", seq=seq), key=f"kept{seq % 3}")

    async def all_sent() -> bool:
        return await unsent_count(svc.state.engine) == 0

    await wait_until(all_sent, timeout=30)
    assert await svc.state.relay.check_broker() == []
    report = await outbox_report(svc.state.engine, "probe")
    assert report["broker_losses"] == 0 and report["acknowledged_offsets"]
