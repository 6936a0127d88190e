"""Live notifications through the gateway with many idle streams open: latency and gateway memory.

`BENCH_STREAMS` (1,000) residents each hold `GET /api/notify/stream` open through the gateway
(`python -m gateway.serve`, its own process) to notify (uvicorn, its own process). Then, one at a
time, a domain service commits `governance.points.granted.v1` for one of them in its outbox; the
kit's relay publishes it, notify's consumer makes the notification and its commit wakes the stream;
the sample is from the domain commit to the event's bytes arriving at that resident's socket.

Baseline, same run, same broker: raw produce -> consume p99 (bench/e2e_latency.py's loop).
Targets: p99 <= 3 x raw p99 + 30 ms; the gateway's resident memory (VmRSS from /proc) per idle
stream <= 64 KB, measured as the growth from before the streams opened to after.
Run: `make bench NAME=notify_stream` (BENCH_STREAMS and BENCH_STREAM_SAMPLES lower for a quick check).
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.e2e_latency import raw_latency
from bench.gateway_get import COMMUNITY, cpu_seconds, gateway_env, gateway_settled, uvicorn_process
from bench.harness import bench_stack, percentile, record, summary_ms
from services.governance.events import PointsGranted
from services.kit.db import make_engine, make_sessionmaker, plain_url
from services.kit.kafka import make_producer
from services.kit.outbox import EventPublisher
from services.kit.relay import OutboxRelay
from services.kit.settings import ServiceSettings
from services.kit.tables import kit_metadata
from services.kit.wakes import Wakes
from tests.support.stack import new_namespace

STREAMS = int(os.environ.get("BENCH_STREAMS", "1000"))
SAMPLES = int(os.environ.get("BENCH_STREAM_SAMPLES", "300"))
GAP_S = 0.01
OPENING_AT_ONCE = 50
MARKER = b"event: notification"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Listener:
    """One resident's open stream on a bare socket (no client library's buffers in the way)."""

    def __init__(self, subject: str, token: str) -> None:
        self.subject = subject
        self.token = token
        self.arrived = asyncio.Event()
        self.at = 0.0
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        request = (
            f"GET /api/notify/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {self.token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head.splitlines()[0]!r}")
        self.writer = writer
        self.task = asyncio.create_task(self.read(reader))

    async def read(self, reader: asyncio.StreamReader) -> None:
        tail = b""
        while data := await reader.read(65536):
            now = time.perf_counter()
            seen = tail + data
            if MARKER in seen:
                self.at = now
                self.arrived.set()
            tail = seen[-len(MARKER) :]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


async def open_all(listeners: list[Listener], host: str, port: int) -> None:
    limit = asyncio.Semaphore(OPENING_AT_ONCE)

    async def one(listener: Listener) -> None:
        async with limit:
            await listener.open(host, port)

    await asyncio.gather(*(one(listener) for listener in listeners))


async def split_by_hop(notify_db: str, walls: list[tuple[str, float, float]]) -> tuple[list[float], list[float]]:
    """Each sample's two legs, from the time notify's transaction for it started (`created_at`)."""
    conn = await asyncpg.connect(plain_url(notify_db))
    try:
        rows = await conn.fetch("SELECT recipient_id, created_at FROM notifications ORDER BY recipient_id, seq")
    finally:
        await conn.close()
    made: dict[str, list[float]] = {}
    for row in rows:
        made.setdefault(row["recipient_id"], []).append(row["created_at"].timestamp())
    to_notify: list[float] = []
    to_client: list[float] = []
    for subject, committed, arrived in walls:
        at = made[subject].pop(0)
        to_notify.append(at - committed)
        to_client.append(arrived - at)
    return to_notify, to_client


async def main() -> None:
    async with bench_stack() as stack, AsyncExitStack() as servers:
        from gateway.migrate import upgrade_gateway_database
        from gateway.operator import put_community_at

        work = Path(tempfile.mkdtemp(prefix="bench-notify-stream-"))
        ns = new_namespace()
        settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=ns)
        raw = await raw_latency(settings, ns + "bench.raw")
        print(f"raw produce -> consume p99 {percentile(raw, 99) * 1000:.1f} ms", flush=True)

        notify_db = await stack.fresh_database("notify")
        gateway_db = await stack.empty_database("gateway_bench")
        domain_db = await stack.empty_database("bench_domain")
        await upgrade_gateway_database(gateway_db)
        await put_community_at(gateway_db, COMMUNITY, "bench", "331102")  # communities are data: served once made
        for db in (notify_db, gateway_db, domain_db):
            servers.push_async_callback(stack.drop_database, db)
        notify = await servers.enter_async_context(
            uvicorn_process(
                "notify",
                "services.notify.app:create_app",
                {
                    "NOTIFY_DATABASE_URL": notify_db,
                    "NOTIFY_REDIS_URL": stack.redis_url,
                    "NOTIFY_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
                    "NOTIFY_KAFKA_NAMESPACE": ns,
                    "NOTIFY_JWKS_URL": stack.jwks_url,
                    "NOTIFY_SMS_OUTBOX_PATH": str(work / "sms.log"),
                },
                work / "notify.log",
            )
        )
        gateway_vars = gateway_env(stack, gateway_db, {"notify": notify.url})
        gateway = await servers.enter_async_context(
            uvicorn_process("gateway", "gateway.app:create_app", gateway_vars, work / "gateway.log")
        )
        await gateway_settled(gateway.url)
        host, _, port_text = gateway.url.removeprefix("http://").partition(":")
        port = int(port_text)

        # The domain side: a service's outbox and the kit's relay, as governance publishes.
        engine = make_engine(domain_db)
        async with engine.begin() as conn:
            await conn.run_sync(kit_metadata.create_all)
        publisher = EventPublisher(source="/services/governance", topic="governance.events")
        # As a service's lifespan does: the relay announces what it sent, which wakes notify's resting consumer.
        wakes = Wakes(stack.redis_url, ns, listen=False)
        relay = OutboxRelay(
            service="bench-governance",
            engine=engine,
            producer_factory=lambda: make_producer(settings),
            namespace=ns,
            announce=wakes.announce,
        )
        relay_task = asyncio.create_task(relay.run())
        wakes_task = asyncio.create_task(wakes.run())
        maker = make_sessionmaker(engine)

        async def commit(listener: Listener, points: int) -> float:
            event = PointsGranted(
                grant_id=uuid.uuid4().hex,
                community=COMMUNITY,
                resident_id=listener.subject,
                points=points,
                source="award",
                trigger="award",
                granted_at=datetime.now(UTC),
            )
            async with maker() as session, session.begin():
                await publisher.publish(session, event, key=event.grant_id)
            return time.perf_counter()

        # Per sample: (resident, wall-clock time of the domain commit, and of the arrival).
        walls: list[tuple[str, float, float]] = []

        async def sample(listener: Listener, points: int) -> float:
            listener.arrived.clear()
            committed = await commit(listener, points)
            committed_wall = time.time()
            await asyncio.wait_for(listener.arrived.wait(), 30)
            walls.append((listener.subject, committed_wall, committed_wall + listener.at - committed))
            return listener.at - committed

        def listener() -> Listener:
            subject = str(uuid.uuid4())
            return Listener(subject, stack.token(subject, "resident", community=COMMUNITY, ttl_s=3600))

        # Warm-up: one stream, a few notifications (code paths, pools, the consumer's assignment).
        warm = listener()
        await warm.open(host, port)
        for n in range(10):
            await sample(warm, n + 1)
        await warm.close()

        gc.collect()
        before_kb = rss_kb(gateway.pids[0])
        listeners = [listener() for _ in range(STREAMS)]
        opened = time.perf_counter()
        await open_all(listeners, host, port)
        print(f"{STREAMS:,} streams open through the gateway in {time.perf_counter() - opened:.1f} s", flush=True)
        await asyncio.sleep(1.0)  # let the opening's transient buffers go before reading the memory
        after_kb = rss_kb(gateway.pids[0])
        per_stream_kb = (after_kb - before_kb) / STREAMS

        walls.clear()  # the warm-up's
        cpu_from = {"notify": cpu_seconds(notify.pids), "gateway": cpu_seconds(gateway.pids)}
        samples = [await sample(listeners[i % STREAMS], 1 + i % 20) for i in range(SAMPLES)]
        # CPU per notification over the sampling (with 1,000 idle streams' heartbeats in it).
        cpu_us = {
            "notify": round((cpu_seconds(notify.pids) - cpu_from["notify"]) / SAMPLES * 1e6),
            "gateway": round((cpu_seconds(gateway.pids) - cpu_from["gateway"]) / SAMPLES * 1e6),
        }
        to_notify, to_client = await split_by_hop(notify_db, walls)
        for one in listeners:
            await one.close()
        relay_task.cancel()
        wakes_task.cancel()
        await asyncio.gather(relay_task, wakes_task, return_exceptions=True)
        await wakes.close()
        await relay.close()
        await engine.dispose()

    raw_p99 = percentile(raw, 99) * 1000
    p99 = percentile(samples, 99) * 1000
    record(
        "notify_stream",
        p99,
        "ms (p99)",
        "raw_produce_to_consume_p99",
        raw_p99,
        higher_is_better=False,
        target=f"<= 3 x raw p99 + 30 ms = {3 * raw_p99 + 30:.1f} ms; gateway RSS per idle stream <= 64 KB",
        extra={
            "streams": STREAMS,
            "commit_to_client": summary_ms(samples),
            "raw": summary_ms(raw),
            # Where the time goes: the domain commit to notify's transaction (relay, broker, consumer),
            # then to the client (the wake-up, the stream's read, the gateway). Wall clocks of one
            # machine; notify's time is its transaction's start, so the split is approximate.
            "commit_to_notify_transaction": summary_ms(to_notify),
            "notify_transaction_to_client": summary_ms(to_client),
            "samples": SAMPLES,
            "cpu_us_per_notification": cpu_us,
            "gateway_rss_kb_before": before_kb,
            "gateway_rss_kb_with_streams": after_kb,
            "gateway_rss_kb_per_idle_stream": round(per_stream_kb, 1),
            "load_average": [round(v, 2) for v in os.getloadavg()],
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
