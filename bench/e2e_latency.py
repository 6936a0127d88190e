"""End-to-end latency: commit in one service to the effect committed in another, p50 and p99.

Service A commits a row and its outbox event in one transaction; its relay (woken by NOTIFY)
publishes; service B's idempotent consumer applies the effect and its inbox row in one transaction.
Baseline: raw produce-to-consume on the same broker with the same consumer settings.
Target: platform p99 <= 3 x raw p99 + 20 ms.
"""

from __future__ import annotations

import asyncio
import os
import time

from sqlalchemy import text

from bench.harness import bench_stack, percentile, record, summary_ms
from services.kit.db import make_engine, make_sessionmaker
from services.kit.envelope import CloudEvent, EventData
from services.kit.inbox import ConsumerSpec, EventConsumer
from services.kit.kafka import make_consumer, make_producer
from services.kit.outbox import EventPublisher
from services.kit.relay import OutboxRelay
from services.kit.settings import ServiceSettings
from services.kit.tables import kit_metadata
from services.kit.wakes import Wakes
from tests.support.stack import new_namespace

SAMPLES = int(os.environ.get("BENCH_E2E_SAMPLES", "400"))
# Above the kit's `wakes.REST_AFTER_S` (0.2 s), every sample finds the consumer resting: the latency
# of an event that a wake must announce (`BENCH_E2E_GAP_S=0.4`).
GAP_S = float(os.environ.get("BENCH_E2E_GAP_S", "0.01"))


class Pinged(EventData):
    event_type = "bench.ping.sent.v1"
    seq: int


async def raw_latency(settings: ServiceSettings, topic: str) -> list[float]:
    producer = make_producer(settings)
    consumer = make_consumer(settings, topic, group_id=topic + ".g")
    await producer.start()
    await consumer.start()
    await producer.send_and_wait(topic, b"warm", key=b"w")
    await consumer.getone()
    samples: list[float] = []
    try:
        for i in range(SAMPLES):
            start = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode(), key=f"k{i % 10}".encode())
            while True:
                msg = await consumer.getone()
                if msg.value == str(i).encode():
                    break
            samples.append(time.perf_counter() - start)
            await asyncio.sleep(GAP_S)
    finally:
        await consumer.stop()
        await producer.stop()
    return samples


async def main() -> None:
    async with bench_stack() as stack:
        ns = new_namespace()
        url_a = await stack.empty_database("bench_a")
        url_b = await stack.empty_database("bench_b")
        settings_a = ServiceSettings(
            database_url=url_a, kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=ns, outbox_poll_interval_s=1.0
        )
        settings_b = ServiceSettings(database_url=url_b, kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=ns)
        raw = await raw_latency(settings_a, ns + "bench.raw")

        engine_a, engine_b = make_engine(url_a), make_engine(url_b)
        for engine in (engine_a, engine_b):
            async with engine.begin() as conn:
                await conn.run_sync(kit_metadata.create_all)
        async with engine_b.begin() as conn:
            await conn.execute(text("CREATE TABLE effects (seq int PRIMARY KEY)"))
        publisher = EventPublisher(source="/bench/a", topic="bench.pings")
        applied: dict[int, float] = {}
        arrived: dict[int, asyncio.Event] = {}

        async def on_ping(session, event: CloudEvent) -> None:  # type: ignore[no-untyped-def]
            await session.execute(text("INSERT INTO effects VALUES (:s)"), {"s": event.data["seq"]})

        class TimedConsumer(EventConsumer):
            async def apply(self, event: CloudEvent) -> bool:
                done = await super().apply(event)  # returns after the effect's commit
                seq = int(event.data["seq"])
                applied[seq] = time.perf_counter()
                arrived.setdefault(seq, asyncio.Event()).set()
                return done

        # As the services' lifespans do: the relay announces what it sent; the consumer rests while idle.
        wakes = Wakes(stack.redis_url, ns)
        consumer = TimedConsumer(
            ConsumerSpec(group="bench-b", topics=["bench.pings"], handlers={Pinged.event_type: on_ping}),
            settings=settings_b,
            sessionmaker=make_sessionmaker(engine_b),
            wakes=wakes,
        )
        relay = OutboxRelay(
            service="bench-a",
            engine=engine_a,
            producer_factory=lambda: make_producer(settings_a),
            poll_interval_s=1.0,
            namespace=ns,
            announce=wakes.announce,
        )
        tasks = [asyncio.create_task(task) for task in (relay.run(), consumer.run(), wakes.run())]
        maker_a = make_sessionmaker(engine_a)

        async def send(seq: int) -> float:
            async with maker_a() as session, session.begin():
                await publisher.publish(session, Pinged(seq=seq), key=f"k{seq % 10}")
            return time.perf_counter()  # committed

        await asyncio.wait_for(consumer.ready.wait(), 30)
        for warm in range(-20, 0):  # warm-up, not measured
            await send(warm)
            await asyncio.wait_for(arrived.setdefault(warm, asyncio.Event()).wait(), 30)
        samples: list[float] = []
        for seq in range(SAMPLES):
            committed = await send(seq)
            await asyncio.wait_for(arrived.setdefault(seq, asyncio.Event()).wait(), 30)
            samples.append(applied[seq] - committed)
            await asyncio.sleep(GAP_S)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await consumer.close()
        await relay.close()
        await wakes.close()
        await engine_a.dispose()
        await engine_b.dispose()

        raw_p99 = percentile(raw, 99) * 1000
        p99 = percentile(samples, 99) * 1000
        record(
            "e2e_latency",
            p99,
            "ms (p99)",
            "raw_produce_to_consume_p99",
            raw_p99,
            higher_is_better=False,
            target=f"<= 3 x raw p99 + 20 ms = {3 * raw_p99 + 20:.1f} ms",
            extra={"platform": summary_ms(samples), "raw": summary_ms(raw), "samples": SAMPLES, "gap_s": GAP_S},
        )


if __name__ == "__main__":
    asyncio.run(main())
