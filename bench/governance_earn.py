"""Events granted per second by governance's earning consumer, from the topic to the committed grant.

`timebank.service.confirmed.v1` events for 200 volunteers go to the topic; the running service's
consumer applies each in its own transaction (inbox row, rule lookup, grant, budget, account lock,
lot, statement line). Baseline, same run, same servers, same events: a plain aiokafka consumer that
inserts one row per event in its own transaction (raw consume-and-insert). Target: >= 0.5 x raw.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
from sqlalchemy import func, select
from sqlmodel import col

from bench.harness import bench_stack, record
from services.governance.app import create_app
from services.governance.models import Grant
from services.governance.settings import Settings
from services.kit.db import plain_url
from services.kit.envelope import CloudEvent
from services.kit.kafka import make_consumer, make_producer
from services.kit.wakes import announce_once
from tests.support.harness import run_service

EVENTS = 3000
COMMUNITY = "bench-community"
TOPIC = "timebank.events"


def events() -> list[CloudEvent]:
    out = []
    for i in range(EVENTS):
        transfer = str(uuid.uuid4())
        out.append(
            CloudEvent(
                type="timebank.service.confirmed.v1",
                source="/services/timebank",
                key=transfer,
                data={
                    "transfer_id": transfer,
                    "community": COMMUNITY,
                    "volunteer_id": f"vol-{i % 200}",
                    "elder_id": "elder",
                    "minutes": 60 + i % 120,
                    "service_type": "companionship",
                    "confirmed_at": "2026-01-01T00:00:00+00:00",
                },
            )
        )
    return out


async def produce(settings: Settings, topic: str, batch: list[CloudEvent]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        for event in batch:
            key, value, headers = event.to_kafka()
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_consume_and_insert(settings: Settings, topic: str, database_url: str) -> float:
    conn = await asyncpg.connect(plain_url(database_url))
    await conn.execute("CREATE TABLE raw_grants (event_id text PRIMARY KEY, volunteer text, minutes int)")
    consumer = make_consumer(settings, topic, group_id=f"raw-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    done = 0
    start = time.perf_counter()
    try:
        while done < EVENTS:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    event = CloudEvent.from_kafka(record.key, record.value, record.headers)
                    async with conn.transaction():
                        await conn.execute(
                            "INSERT INTO raw_grants VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            event.id,
                            event.data["volunteer_id"],
                            event.data["minutes"],
                        )
                    done += 1
                await consumer.commit({tp: records[-1].offset + 1})
        return EVENTS / (time.perf_counter() - start)
    finally:
        await consumer.stop()
        await conn.close()


async def main() -> None:
    async with bench_stack() as stack:
        batch = events()
        async with run_service(stack, "governance", create_app, Settings, log_level="WARNING") as svc:
            settings = svc.settings
            assert isinstance(settings, Settings)
            worker = stack.auth("bench-worker", "community_worker", community=COMMUNITY)
            r = await svc.client.post("/budget/fundings", json={"points": 1_000_000}, headers=worker)
            assert r.status_code == 200, r.text
            r = await svc.client.post(
                "/rules",
                headers=worker,
                json={
                    "code": "tb",
                    "name": "时间银行",
                    "trigger": "timebank.service.confirmed.v1",
                    "points": 10,
                    "per_hour": True,
                },
            )
            assert r.status_code == 201, r.text
            # Baseline first, on its own topic with the same events and the same database server.
            raw_topic = settings.kafka_namespace + "raw." + TOPIC
            await produce(settings, raw_topic, batch)
            raw_rate = await raw_consume_and_insert(settings, raw_topic, svc.database_url)

            for consumer in svc.state.consumers:
                await asyncio.wait_for(consumer.ready.wait(), 30)
            start = time.perf_counter()
            await produce(settings, settings.kafka_namespace + TOPIC, batch)
            # A producer outside the kit: it tells the resting consumer itself, as `publish_raw` does.
            await announce_once(settings, [settings.kafka_namespace + TOPIC])
            while True:
                async with svc.state.sessionmaker() as session, session.begin():
                    granted = (
                        await session.execute(select(func.count()).select_from(Grant).where(col(Grant.status) == "granted"))
                    ).scalar_one()
                if granted >= EVENTS:
                    break
                await asyncio.sleep(0.05)
            rate = EVENTS / (time.perf_counter() - start)
        record(
            "governance_earn",
            rate,
            "events/s",
            "raw consume-and-insert",
            raw_rate,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={"events": EVENTS, "volunteers": 200},
        )


if __name__ == "__main__":
    asyncio.run(main())
