"""Outbox relay throughput: events/s from committed outbox row to broker ack.

Baseline: raw aiokafka producing the same messages (same keys, headers, sizes, acks=all) on the
same broker in the same run. Target: relay >= 0.5 x raw.

Both run in this process, so its CPU time per event (from /proc, user + system) is printed beside
the ratio: on a loaded machine the rates swing with the other tenants, the CPU cost does not.
Target there: relay <= 2 x raw. The relay's figure leaves out PostgreSQL's own CPU (another
process); `RELAY_BENCH_PROFILE=path` writes a cProfile of the relay's rounds.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from bench.harness import bench_stack, cpu_seconds, load_average, record, stack_pids, tree_cpu_seconds
from services.kit.db import make_engine
from services.kit.envelope import CloudEvent
from services.kit.kafka import make_producer
from services.kit.outbox import unsent_count
from services.kit.relay import OutboxRelay
from services.kit.settings import ServiceSettings
from services.kit.tables import kit_metadata, outbox
from services.kit.telemetry import setup_tracing
from tests.support.stack import new_namespace

N = int(os.environ.get("RELAY_BENCH_EVENTS", "20000"))  # smaller for a quick check under load
ROUNDS = int(os.environ.get("RELAY_BENCH_ROUNDS", "3"))
PROFILE = os.environ.get("RELAY_BENCH_PROFILE")
PAYLOAD = {"note": "x" * 200, "minutes": 45, "service_type": "陪伴聊天"}


def events(n: int) -> list[CloudEvent]:
    return [
        CloudEvent(type="bench.thing.happened.v1", source="/bench", key=f"agg-{i % 500}", data={**PAYLOAD, "seq": i})
        for i in range(n)
    ]


SERVERS: dict[str, int] = {}  # the embedded servers' pids, for their CPU time per event


class Round:
    """One measured run: wall time, this process's CPU time, and the servers'."""

    def __enter__(self) -> Round:
        self.servers = {name: tree_cpu_seconds(pid) for name, pid in SERVERS.items()}
        self.cpu, self.start = cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = cpu_seconds() - self.cpu, time.perf_counter() - self.start
        self.servers = {name: tree_cpu_seconds(pid) - self.servers[name] for name, pid in SERVERS.items()}


async def raw_produce(settings: ServiceSettings, topic: str, evs: list[CloudEvent]) -> Round:
    producer = make_producer(settings)
    await producer.start()
    try:
        with Round() as measured:
            futures = []
            for ev in evs:
                key, value, headers = ev.to_kafka()
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
            await asyncio.gather(*futures)
        return measured
    finally:
        await producer.stop()


async def fill_outbox(engine: Any, evs: list[CloudEvent]) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        # As written by requests in a service: each row carries its request's trace context.
        rows = [
            {
                "event_id": str(uuid.uuid4()),
                "topic": "bench.relay",
                "key": e.key,
                "type": e.type,
                "source": e.source,
                "subject": None,
                "occurred_at": now,
                "data": e.data,
                "tracestate": None,
                "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            }
            for e in evs
        ]
        for i in range(0, len(rows), 5000):
            await conn.execute(insert(outbox), rows[i : i + 5000])


async def main() -> None:
    setup_tracing("bench-relay")  # the SDK tracer provider, as every service runs with
    async with bench_stack() as stack:
        SERVERS.update(stack_pids(stack))
        url = await stack.empty_database("bench_relay")
        ns = new_namespace()
        settings = ServiceSettings(database_url=url, kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=ns)
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(kit_metadata.create_all)
        evs = events(N)
        # Warm the broker and the topic before either measurement.
        await raw_produce(settings, ns + "bench.raw", evs[:500])
        relay = OutboxRelay(
            service="bench", engine=engine, producer_factory=lambda: make_producer(settings), batch_size=1000, namespace=ns
        )
        await relay.ensure_producer()
        # Alternate the two, three rounds each, and compare medians: on a shared 2-core machine a
        # single pair of runs swings with whatever else is scheduled.
        raw_rounds: list[Round] = []
        relay_rounds: list[Round] = []
        profile = cProfile.Profile() if PROFILE else None
        for _ in range(ROUNDS):
            raw_rounds.append(await raw_produce(settings, ns + "bench.raw", evs))
            await fill_outbox(engine, evs)
            if profile:
                profile.enable()
            with Round() as measured:
                sent = await relay.drain()
            if profile:
                profile.disable()
            relay_rounds.append(measured)
            assert sent == N and await unsent_count(engine) == 0
        await relay.close()
        if profile and PROFILE:
            profile.dump_stats(PROFILE)
        raw_rate = statistics.median(N / r.wall for r in raw_rounds)
        relay_rate = statistics.median(N / r.wall for r in relay_rounds)
        raw_cpu_us = statistics.median(r.cpu / N * 1e6 for r in raw_rounds)
        relay_cpu_us = statistics.median(r.cpu / N * 1e6 for r in relay_rounds)
        await engine.dispose()
        record(
            "relay_throughput",
            relay_rate,
            "events/s",
            "raw_aiokafka_produce",
            raw_rate,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={
                "events_per_round": N,
                "rounds": ROUNDS,
                "batch_size": 1000,
                "payload_bytes": len(evs[0].to_kafka()[1]),
                "relay_rounds": [round(N / r.wall) for r in relay_rounds],
                "raw_rounds": [round(N / r.wall) for r in raw_rounds],
                "relay_cpu_us_per_event": round(relay_cpu_us, 1),
                "raw_cpu_us_per_event": round(raw_cpu_us, 1),
                "cpu_ratio": round(relay_cpu_us / raw_cpu_us, 3),
                "cpu_target": "relay <= 2 x raw",
                "relay_cpu_us_rounds": [round(r.cpu / N * 1e6, 1) for r in relay_rounds],
                "raw_cpu_us_rounds": [round(r.cpu / N * 1e6, 1) for r in raw_rounds],
                **{
                    f"{name}_cpu_us_per_event": {
                        "relay": round(statistics.median(r.servers[name] / N * 1e6 for r in relay_rounds), 1),
                        "raw": round(statistics.median(r.servers[name] / N * 1e6 for r in raw_rounds), 1),
                    }
                    for name in SERVERS
                },
                "load_average": load_average(),
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
