"""Notify's fan-out from a backlog: notifications per second from domain events waiting on the broker.

A backlog of `BENCH_NOTIFY_EVENTS` (100,000) `governance.points.granted.v1` events (one resident each,
spread over 1,000 residents) is produced onto the governance topic before notify starts. Measured:
from notify's start (the app up, its consumer still to join) to the last notification committed,
through the kit's idempotent inbox, the declared table, the templates, the per-person sequence and
the wake-up NOTIFY, as in production (a fetched batch per transaction: services/notify/consumers.py).

Baseline, same run, same broker and PostgreSQL: a raw aiokafka consumer reading the same backlog
and inserting one row per event (batched per fetch, one transaction each). Target: notify >= 0.5 x raw.
Load-independent figures beside the rates: CPU microseconds per notification (per raw row) of this
process, which hosts notify's app and its consumer, and of PostgreSQL (the postmaster, its live
backends and the backends it reaped), with the load average at the end.
Run: `make bench NAME=notify_fanout` (set BENCH_NOTIFY_EVENTS lower for a quick check).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

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
IDLE_S = 3.0
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


def ticks_s(stat: str, fields: slice) -> float:
    """Seconds of CPU from a /proc stat line's clock-tick fields (after the command's parentheses)."""
    return sum(int(v) for v in stat.rsplit(")", 1)[1].split()[fields]) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s(stack: TestStack) -> float:
    """CPU seconds of the embedded PostgreSQL so far: postmaster with reaped children, and live backends."""
    if stack.pg is None:
        return float("nan")  # an external server: not ours to read
    postmaster = int((stack.pg.data_dir / "postmaster.pid").read_text().split()[0])
    total = ticks_s(Path(f"/proc/{postmaster}/stat").read_text(), slice(11, 15))  # utime stime cutime cstime
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            total += ticks_s(Path(f"/proc/{child}/stat").read_text(), slice(11, 13))
        except FileNotFoundError:
            continue  # ended meanwhile: counted in cutime once reaped
    return total


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_us_per(n: int, since: tuple[float, float], stack: TestStack) -> dict[str, float]:
    return {
        "process": round((own_cpu_s() - since[0]) / n * 1e6, 1),
        "postgres": round((postgres_cpu_s(stack) - since[1]) / n * 1e6, 1),
    }


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

        cpu_from = (own_cpu_s(), postgres_cpu_s(stack))
        raw = await raw_consume_and_insert(stack, settings, ns + TOPIC, EVENTS)
        raw_cpu = cpu_us_per(EVENTS, cpu_from, stack)
        print(f"raw consume-and-insert: {raw:,.0f} rows/s; CPU µs per row {raw_cpu}", flush=True)

        async with run_service(stack, "notify", create_app, Settings, namespace=ns) as notify:
            # From the app's start (its database made and migrated before, as raw's table was), so
            # both figures include joining the consumer group and reading the whole backlog.
            start = time.perf_counter()
            cpu_from = (own_cpu_s(), postgres_cpu_s(stack))
            made = 0
            while made < EVENTS:
                async with notify.state.sessionmaker() as session, session.begin():
                    # The numbers taken (a thousand rows) first: a count(*) of the growing table five
                    # times a second would cost PostgreSQL more than the raw baseline's whole insert.
                    taken = (await session.execute(text("SELECT sum(last_seq) FROM recipient_sequences"))).scalar()
                    if taken is not None and int(taken) >= EVENTS:
                        made = int((await session.execute(text("SELECT count(*) FROM notifications"))).scalar_one())
                if made < EVENTS:
                    await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - start
            notify_cpu = cpu_us_per(EVENTS, cpu_from, stack)
            # What notify spends doing nothing (its consumer's empty fetches, its jobs' polls), to
            # tell apart from the CPU the notifications cost.
            idle_from = own_cpu_s()
            await asyncio.sleep(IDLE_S)
            idle_rate = (own_cpu_s() - idle_from) / IDLE_S
            async with notify.state.sessionmaker() as session, session.begin():
                # A batch's notifications share their transaction's start time (`created_at`).
                batches = int((await session.execute(text("SELECT count(DISTINCT created_at) FROM notifications"))).scalar_one())
        rate = EVENTS / elapsed
        record(
            "notify_fanout",
            rate,
            "notifications/s",
            "raw_consume_and_insert",
            raw,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={
                "events": EVENTS,
                "residents": RESIDENTS,
                "notify_seconds": round(elapsed, 2),
                "transactions": batches,
                "cpu_us_per_notification": notify_cpu,
                "process_cpu_us_per_notification_net_of_idle": round(
                    notify_cpu["process"] - idle_rate * elapsed / EVENTS * 1e6, 1
                ),
                "process_idle_cpu_ms_per_s": round(idle_rate * 1000, 1),
                "cpu_us_per_raw_row": raw_cpu,
                "load_average": [round(v, 2) for v in os.getloadavg()],
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
