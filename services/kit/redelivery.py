"""Events sent by hand, outside the outbox: the operator's replay of dead letters and a raw publish.

Services publish through the outbox; these are for operator tools (`replay_dead_letters`) and for
tests that play a producer the platform does not own (`publish_raw`).
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from services.kit.envelope import CloudEvent
from services.kit.inbox import dlq_topic, retry_topic
from services.kit.kafka import make_consumer, make_producer
from services.kit.settings import ServiceSettings
from services.kit.wakes import announce_once


async def replay_dead_letters(settings: ServiceSettings, group: str, *, timeout_s: float = 10.0) -> int:
    """Send every dead letter of `group` not yet replayed to `<group>.retry`; returns the count.

    Progress is kept as the offsets of the consumer group `<group>.dlq-replay`, so a replay never
    sends the same dead letter twice, and a dead letter that fails again comes back as a new one.
    """
    group = settings.kafka_namespace + group
    producer = make_producer(settings)
    consumer = make_consumer(settings, group_id=f"{group}.dlq-replay")
    await producer.start()
    await consumer.start()
    count = 0
    try:
        topic = dlq_topic(group)
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        remaining = {tp for tp in tps if (await consumer.position(tp)) < ends[tp]}
        while remaining and loop.time() < deadline:
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
                    await producer.send_and_wait(retry_topic(group), value=record.value, key=record.key, headers=headers)
                    count += 1
                if records:
                    await consumer.commit({tp: min(records[-1].offset + 1, ends[tp])})
            remaining = {tp for tp in remaining if (await consumer.position(tp)) < ends[tp]}
    finally:
        await consumer.stop()
        await producer.stop()
    if count:
        await announce_once(settings, [retry_topic(group)])
    return count


async def publish_raw(settings: ServiceSettings, topic: str, event: CloudEvent) -> None:
    """Send one CloudEvent straight to a topic (operator tools and tests; services use the outbox)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        key, value, headers = event.to_kafka()
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
    await announce_once(settings, [topic])


__all__ = ["publish_raw", "replay_dead_letters"]
