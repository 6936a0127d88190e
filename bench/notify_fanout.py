"""Notify's fan-out from a backlog: notifications per second from domain events waiting on the broker.

A backlog of `BENCH_NOTIFY_EVENTS` (100,000) `governance.points.granted.v1` events (one resident each,
spread over 1,000 residents) is produced onto the governance topic before notify starts. Measured:
from notify's start (the app up, its consumer still to join) to the last notification committed,
through the kit's idempotent inbox, the declared table, the templates, the per-person sequence and
the wake-up NOTIFY, as in production (a fetched batch per transaction: services/notify/consumers.py).

Baseline, same run, same broker and PostgreSQL: a raw aiokafka consumer reading the same backlog
and inserting one row per event (batched per fetch, one transaction each). Target: notify >= 0.5 x raw.
Run: `make bench NAME=notify_fanout` (set BENCH_NOTIFY_EVENTS lower for a quick check).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
from sqlalchemy import text

from bench.harness import bench_stack, record
from services.kit.db import plain_url
from services.kit.envelope import CloudEvent
from services.kit.kafka import make_consumer, make_producer
from services.kit.settings import ServiceSettings
from services.notify.app import create_app
from services.notify.settings import Settings
from tests.support.harness import run_service
from tests.support.stack import TestStack, new_namespace

EVENTS = int(os.environ.get("BENCH_NOTIFY_EVENTS", "100000"))
RESIDENTS = 1_000
COMMUNITY = "bench-community"
TOPIC = "governance.events"


def backlog(n: int) -> list[CloudEvent]:
    granted_at = datetime.now(UTC).isoformat()
    return [
        CloudEvent(
            type="governance.points.granted.v1",
            source="/services/governance",
            key=f"res-{i % RESIDENTS}",
            data={
                "community": COMMUNITY,
                "grant_id": f"g-{i}",
                "resident_id": f"res-{i % RESIDENTS}",
                "points": 1 + i % 20,
                "source": "award",
                "trigger": "award",
                "granted_at": granted_at,
            },
        )
        for i in range(n)
    ]


async def produce(settings: ServiceSettings, topic: str, evs: list[CloudEvent]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        for ev in evs:
            key, value, headers = ev.to_kafka()
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume_and_insert(stack: TestStack, settings: ServiceSettings, topic: str, n: int) -> float:
    url = await stack.empty_database("bench_raw")
    conn = await asyncpg.connect(plain_url(url))
    await conn.execute("CREATE TABLE raw_notifications (event_id text PRIMARY KEY, recipient text NOT NULL, body text NOT NULL)")
    consumer = make_consumer(settings, topic, group_id=f"raw-{uuid.uuid4().hex[:6]}")
    start = time.perf_counter()
    await consumer.start()
    done = 0
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            rows = []
            for messages in batches.values():
                for msg in messages:
                    assert msg.value is not None
                    # The CloudEvent in Kafka's binary mode: its id in a header, its data the value.
                    event_id = next(bytes(v).decode() for k, v in msg.headers if k == "ce_id")
                    body = orjson.loads(msg.value)
                    rows.append((event_id, body["resident_id"], f"您获得 {body['points']} 积分。"))
            if rows:
                async with conn.transaction():
                    await conn.executemany("INSERT INTO raw_notifications VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", rows)
                await consumer.commit()
                done += len(rows)
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()
        await conn.close()


async def main() -> None:
    async with bench_stack() as stack:
        ns = new_namespace()
        settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=ns)
        evs = backlog(EVENTS)
        produced = time.perf_counter()
        await produce(settings, ns + TOPIC, evs)
        print(f"backlog of {EVENTS:,} events produced in {time.perf_counter() - produced:.1f} s", flush=True)

        raw = await raw_consume_and_insert(stack, settings, ns + TOPIC, EVENTS)
        print(f"raw consume-and-insert: {raw:,.0f} rows/s", flush=True)

        async with run_service(stack, "notify", create_app, Settings, namespace=ns) as notify:
            # From the app's start (its database made and migrated before, as raw's table was), so
            # both figures include joining the consumer group and reading the whole backlog.
            start = time.perf_counter()
            made = 0
            while made < EVENTS:
                async with notify.state.sessionmaker() as session, session.begin():
                    made = int((await session.execute(text("SELECT count(*) FROM notifications"))).scalar_one())
                if made < EVENTS:
                    await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - start
        rate = EVENTS / elapsed
        record(
            "notify_fanout",
            rate,
            "notifications/s",
            "raw_consume_and_insert",
            raw,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={"events": EVENTS, "residents": RESIDENTS, "notify_seconds": round(elapsed, 2)},
        )


if __name__ == "__main__":
    asyncio.run(main())
