"""Access events ingested per second through the gateway in batches of 100, beside raw inserts of
the same rows (the same multi-row INSERT ... ON CONFLICT DO NOTHING, straight to PostgreSQL) on the
same database in the same run. Target: ≥ 0.5 × raw.

The service and the gateway run as real server processes (one uvicorn worker each), as deployed;
the gateway checks the device's token, counts its rate and proxies the batch; the service checks
the device and, in one statement, inserts, writes one outbox row per batch and moves inactivity
watches.

Load-independent figures beside the rates: CPU µs per event of the service process, the gateway
process and the database backends (from /proc, over each timed run), and the load average. Both
sides are timed warm (the service's pool and the raw pool hold their connections), and the servers'
idle CPU (background polling) is measured before the run and reported beside it.

Beside them, the same batches through a second gateway (same code and settings) to the service's
lean twin (`bench/lean_security.py`: the same batch reader and statement on an asyncpg pool, no
telemetry, relay, consumers or jobs): the ratio that path reaches says how much of the gap is the
service's own and how much is the gateway and the database.

    make bench NAME=security_ingest      # BENCH_BATCHES (default 200), BENCH_CONCURRENCY (default 8)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench.gateway_get import COMMUNITY, Server, cpu_seconds, gateway_env, gateway_settled, uvicorn_process
from bench.harness import bench_stack, record
from gateway.migrate import upgrade_gateway_database
from gateway.operator import put_community_at
from services.kit.db import plain_url

BATCH = 100
PATH = "/api/security/access-events"
BATCHES = int(os.environ.get("BENCH_BATCHES", 200))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", 8))

_RAW = """
    INSERT INTO access_events (community, device_id, device_event_id, building_id, direction, credential_kind,
                               credential_id, occurred_at)
    SELECT $1, $2, e, 'b1', 'in', 'card', 'card-1', now() FROM unnest($3::text[]) AS e
    ON CONFLICT (device_id, device_event_id) DO NOTHING"""


async def backend_pids(conn: asyncpg.Connection) -> list[int]:
    """The database's backends (the embedded server runs on this machine: their /proc is readable)."""
    return [r["pid"] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def batch(prefix: str, n: int) -> list[dict[str, str]]:
    at = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"{prefix}-{n}-{i}",
            "direction": "in",
            "credential_kind": "card",
            "credential_id": "card-1",
            "occurred_at": at,
        }
        for i in range(BATCH)
    ]


@dataclass
class HttpRun:
    """One timed run of batches posted through a gateway: its rate and each process's CPU per event."""

    rate: float
    seconds: float
    cpu_us: dict[str, float]
    idle_ms_per_s: dict[str, float]
    load: str


async def http_run(url: str, token: str, prefix: str, service: Server, gateway: Server, conn: asyncpg.Connection) -> HttpRun:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        # Steady state: as many batches at once as the timed run sends, twice, so the service's
        # pool holds its connections (each new one costs the service and the database a few
        # milliseconds) and the gateway its upstream connections before the clock starts.
        for round_ in range(2):
            warm = await asyncio.gather(
                *(client.post(PATH, json={"events": batch(f"{prefix}warm{round_}", w)}) for w in range(CONCURRENCY))
            )
            assert all(r.status_code == 200 for r in warm), [r.text for r in warm]
        idle_ms_per_s = await idle_cpu(service, gateway)

        async def worker(w: int) -> None:
            for n in range(w, BATCHES, CONCURRENCY):
                r = await client.post(PATH, json={"events": batch(f"{prefix}{w}", n)})
                assert r.status_code == 200 and r.json()["stored"] == BATCH, r.text

        events = BATCHES * BATCH
        servers_before = {s.name: cpu_seconds(s.pids) for s in (service, gateway)}
        db_before = {pid: cpu_seconds([pid]) for pid in await backend_pids(conn)}
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
        seconds = time.perf_counter() - start
        load = loadavg()
        cpu_us = {s.name: (cpu_seconds(s.pids) - servers_before[s.name]) * 1e6 / events for s in (service, gateway)}
        cpu_us["database"] = db_cpu_us(await backend_pids(conn), db_before, events)
    return HttpRun(events / seconds, seconds, {k: round(v, 1) for k, v in cpu_us.items()}, idle_ms_per_s, load)


async def main() -> None:
    async with bench_stack() as stack, AsyncExitStack() as servers:
        work = Path(tempfile.mkdtemp(prefix="bench-security-"))
        db = await stack.fresh_database("security")
        servers.push_async_callback(stack.drop_database, db)
        env = {
            "SECURITY_DATABASE_URL": db,
            "SECURITY_REDIS_URL": stack.redis_url,
            "SECURITY_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "SECURITY_KAFKA_NAMESPACE": "bench.",
            "SECURITY_JWKS_URL": stack.jwks_url,
            "SECURITY_MAX_BATCH": str(BATCH),
        }
        service = await servers.enter_async_context(
            uvicorn_process("security", "services.security.app:create_app", env, work / "security.log")
        )
        lean_env = {"LEAN_DATABASE_URL": db, "LEAN_JWKS_URL": stack.jwks_url}
        lean = await servers.enter_async_context(
            uvicorn_process("lean-security", "bench.lean_security:create_lean_app", lean_env, work / "lean.log")
        )
        gateway_db = await stack.empty_database("gateway_bench")
        servers.push_async_callback(stack.drop_database, gateway_db)
        await upgrade_gateway_database(gateway_db)
        # The gateway serves only the communities in its database (created as data, as a platform
        # administrator would): without this the device's token is refused as not served.
        await put_community_at(gateway_db, COMMUNITY, "bench", "331102")
        # Two gateways, the same code and settings: one in front of the service, one of the lean twin.
        gateways = {}
        for name, upstream in (("gateway", service), ("lean-gateway", lean)):
            env_g = gateway_env(stack, gateway_db, {"security": upstream.url})
            gateways[name] = await servers.enter_async_context(
                uvicorn_process(name, "gateway.app:create_app", env_g, work / f"{name}.log")
            )
            await gateway_settled(gateways[name].url)
        conn = await asyncpg.connect(plain_url(db))
        device = f"door-{uuid.uuid4().hex[:6]}"
        await conn.execute(
            "INSERT INTO devices (id, community, building_id, kind, name, heartbeat_s)"
            " VALUES ($1, $2, 'b1', 'door', 'bench', 60)",
            device,
            COMMUNITY,
        )
        token = stack.token(device, "gate_device", community=COMMUNITY, ttl_s=3600)
        http = await http_run(gateways["gateway"].url, token, "h", service, gateways["gateway"], conn)
        lean_run = await http_run(gateways["lean-gateway"].url, token, "l", lean, gateways["lean-gateway"], conn)

        pool = await asyncpg.create_pool(plain_url(db), min_size=CONCURRENCY, max_size=CONCURRENCY)
        # The raw side warmed the same way: each connection has run the statement once.
        await asyncio.gather(*(warm_raw(pool, device, w) for w in range(CONCURRENCY)))

        async def raw_worker(w: int) -> None:
            async with pool.acquire() as c:
                for n in range(w, BATCHES, CONCURRENCY):
                    await c.execute(_RAW, COMMUNITY, "raw-" + device, [f"r{w}-{n}-{i}" for i in range(BATCH)])

        db_before = {pid: cpu_seconds([pid]) for pid in await backend_pids(conn)}
        start = time.perf_counter()
        await asyncio.gather(*(raw_worker(w) for w in range(CONCURRENCY)))
        raw_rate = BATCHES * BATCH / (time.perf_counter() - start)
        raw_db_us = db_cpu_us(await backend_pids(conn), db_before, BATCHES * BATCH)
        load_raw = loadavg()
        await pool.close()
        await conn.close()
    events = BATCHES * BATCH
    record(
        "security_ingest_gateway",
        http.rate,
        "events/s",
        "raw_insert",
        raw_rate,
        higher_is_better=True,
        target="≥ 0.5 × raw",
        extra={
            "batch": BATCH,
            "batches": BATCHES,
            "concurrency": CONCURRENCY,
            "path": "client → gateway process → security process",
            "cpu_us_per_event_http": http.cpu_us,
            "cpu_us_per_event_raw_database": round(raw_db_us, 1),
            # CPU the processes spend idle (consumers' and relay's polling, jobs): part of the
            # figures above whatever the load, about idle ms/s x run seconds / events.
            "idle_cpu_ms_per_s": http.idle_ms_per_s,
            "idle_share_us_per_event": {k: round(v * http.seconds * 1e3 / events, 1) for k, v in http.idle_ms_per_s.items()},
            # The same batches through the same gateway code to a lean twin of the service (the
            # same reader and statement, nothing else): how far the path's ratio can go.
            "lean_service_events_per_s": round(lean_run.rate),
            "lean_ratio_to_raw": round(lean_run.rate / raw_rate, 3),
            "cpu_us_per_event_lean": lean_run.cpu_us,
            "loadavg_http_run": http.load,
            "loadavg_lean_run": lean_run.load,
            "loadavg_raw_run": load_raw,
        },
    )


async def idle_cpu(*servers: Server, seconds: float = 2.0) -> dict[str, float]:
    """Each server's CPU, in ms per second, while nothing is sent to it."""
    before = {s.name: cpu_seconds(s.pids) for s in servers}
    start = time.perf_counter()
    await asyncio.sleep(seconds)  # a measuring window, not a wait for a condition
    elapsed = time.perf_counter() - start
    return {s.name: round((cpu_seconds(s.pids) - before[s.name]) * 1e3 / elapsed, 1) for s in servers}


async def warm_raw(pool: asyncpg.Pool, device: str, w: int) -> None:
    async with pool.acquire() as c:
        await c.execute(_RAW, COMMUNITY, "raw-" + device, [f"warm{w}-{i}" for i in range(BATCH)])


def db_cpu_us(pids: list[int], before: dict[int, float], events: int) -> float:
    """The backends' CPU over a run, per event (a backend that opened during the run counts whole)."""
    return sum(cpu_seconds([pid]) - before.get(pid, 0.0) for pid in pids) * 1e6 / events


if __name__ == "__main__":
    asyncio.run(main())
