"""Catch-up rate: feed records per second that citysync builds from a backlog of domain events on the
four topics, beside a raw consume-and-insert of the same backlog in the same run.

The figure is the real service: its consumer group (the kit's idempotent inbox in its batch mode: a
fetched batch of up to 500 events per transaction, the batch's inbox rows in one statement)
de-identifies each event, takes the next sequence number and inserts the record, adds the batch's
records to each community's day once at commit, and the city-topic job copies the records to the
outbox while the relay sends them to Kafka. The baseline is aiokafka reading the same topics and
inserting each event's JSON as one row in its own transaction on asyncpg (no inbox, no rules, no
outbox).

Reported beside them: the same rules applied by this process alone, one transaction per fetched
batch (no relay, no city-topic job, no service process around it); and a stricter raw baseline,
consume-and-insert with one transaction per fetched batch (the per-event baseline pays a commit per
event, which the service does not).

Backlog size: CITYSYNC_BENCH_EVENTS (default 100,000, as the issue asks; several minutes on the
shared 2-core machine).

    .venv/bin/python -m bench.citysync_catchup
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import warnings

import asyncpg

from bench.harness import bench_stack, record
from services.citysync.app import create_app
from services.citysync.settings import Settings
from services.kit.db import plain_url
from services.kit.kafka import make_consumer, make_producer
from services.kit.settings import ServiceSettings
from tests.citysync import factory
from tests.support.harness import run_service
from tests.support.stack import new_namespace

TOPICS = ["timebank.events", "parking.events", "property.events", "governance.events"]
EVENTS = int(os.environ.get("CITYSYNC_BENCH_EVENTS", "100000"))


async def produce_backlog(settings: ServiceSettings, community: str) -> int:
    people = factory.residents(max(1, EVENTS * 4 // 9), seed=3)
    events = factory.community_events(community, people)[:EVENTS]
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        for event in events:
            key, value, headers = event.to_kafka()
            topic = settings.kafka_namespace + event.type.split(".", 1)[0] + ".events"
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(events)


async def raw_consume_and_insert(settings: ServiceSettings, url: str, total: int, *, batched: bool = False) -> float:
    """The raw baseline: consume the topics and insert each event, committing per event (the
    baseline the issue names) or, `batched`, in one transaction and one executemany per fetched
    batch (the service's own advantage; an informative, stricter bar)."""
    table = "raw_events_batched" if batched else "raw_events"
    conn = await asyncpg.connect(plain_url(url))
    await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, topic text, key text, value jsonb)")
    insert = f"INSERT INTO {table} (topic, key, value) VALUES ($1, $2, $3)"
    consumer = make_consumer(
        settings, *(settings.kafka_namespace + t for t in TOPICS), group_id=f"raw{'b' if batched else ''}-{uuid.uuid4().hex[:6]}"
    )
    await consumer.start()
    done = 0
    start = time.perf_counter()
    try:
        while done < total:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=500)).items():
                rows = [(r.topic, r.key.decode(), r.value.decode()) for r in records]
                if batched:
                    async with conn.transaction():
                        await conn.executemany(insert, rows)
                else:
                    for row in rows:
                        await conn.execute(insert, *row)
                done += len(rows)
                await consumer.commit({tp: records[-1].offset + 1})
        return done / (time.perf_counter() - start)
    finally:
        await consumer.stop()
        await conn.close()


async def batched_rules(settings: Settings, stack_url: str, total: int) -> float:
    """The feed rules over the same backlog in this process alone: the consumer's batch path (inbox rows and
    records each one statement per fetched batch), without the service's relay and city-topic job."""
    from sqlalchemy.dialects.postgresql import insert

    from services.citysync import feeds
    from services.citysync.app import keys_from
    from services.kit.db import make_engine, make_sessionmaker
    from services.kit.envelope import CloudEvent
    from services.kit.tables import inbox

    engine = make_engine(stack_url, pool_size=2)
    maker = make_sessionmaker(engine)
    keys = keys_from(settings)
    consumer = make_consumer(settings, *(settings.kafka_namespace + t for t in TOPICS), group_id=f"batch-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    done = 0
    start = time.perf_counter()
    try:
        while done < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                events = [CloudEvent.from_kafka(r.key, r.value, r.headers) for r in records]
                async with maker() as session, session.begin():
                    fresh = {
                        row[0]
                        for row in (
                            await session.execute(
                                insert(inbox)
                                .values(
                                    [
                                        {
                                            "consumer_group": "citysync-feeds-batch",
                                            "source": e.source,
                                            "event_id": e.id,
                                            "event_type": e.type,
                                        }
                                        for e in events
                                    ]
                                )
                                .on_conflict_do_nothing()
                                .returning(inbox.c.event_id)
                            )
                        ).all()
                    }
                    for event in events:
                        if event.id in fresh:
                            await feeds.ingest_later(session, keys, event)
                await consumer.commit({tp: records[-1].offset + 1})
                done += len(records)
        return done / (time.perf_counter() - start)
    finally:
        await consumer.stop()
        await engine.dispose()


async def main() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # SQLModel's advice on session.execute
    async with bench_stack() as stack:
        namespace = new_namespace()
        community = "bench-community"
        url = await stack.fresh_database("citysync")
        settings = Settings(kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=namespace, database_url=url)
        total = await produce_backlog(settings, community)
        print(f"backlog: {total:,} domain events on {len(TOPICS)} topics")

        raw_url = await stack.empty_database("citysync_raw")
        raw_rate = await raw_consume_and_insert(settings, raw_url, total)
        raw_batched_rate = await raw_consume_and_insert(settings, raw_url, total, batched=True)
        batch_url = await stack.fresh_database("citysync")
        batch_rate = await batched_rules(settings, batch_url, total)

        async with run_service(
            stack, "citysync", create_app, Settings, database_url=url, namespace=namespace, log_level="WARNING"
        ):
            conn = await asyncpg.connect(plain_url(url))
            try:
                start = time.perf_counter()
                built = 0
                while built < total:
                    await asyncio.sleep(0.25)
                    built = int(await conn.fetchval("SELECT coalesce(sum(last_seq), 0) FROM feed_counters"))
                elapsed = time.perf_counter() - start
                unsent = int(await conn.fetchval("SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL"))
            finally:
                await conn.close()
        record(
            "citysync_catchup",
            built / elapsed,
            "records/s",
            "raw consume-and-insert",
            raw_rate,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={
                "events": total,
                "seconds": round(elapsed, 2),
                "city_outbox_rows_unsent_at_end": unsent,
                "same rules, one transaction per fetched batch (records/s)": round(batch_rate, 1),
                "batched / raw": round(batch_rate / raw_rate, 3),
                "raw consume-and-insert, one transaction per fetched batch (records/s)": round(raw_batched_rate, 1),
                "service / that": round(built / elapsed / raw_batched_rate, 3),
            },
        )
        await stack.drop_database(url)
        await stack.drop_database(raw_url)
        await stack.drop_database(batch_url)


if __name__ == "__main__":
    asyncio.run(main())
