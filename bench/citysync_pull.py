"""Pull throughput: records per second a city consumer reads through the gateway's
`GET /city/v1/feeds/{scene}` in pages of 500, beside the raw SQL select of the same pages on asyncpg.

Three processes besides this one, as in production: citysync (uvicorn, one worker, its real
lifespan: relay, consumers, jobs), the gateway (uvicorn, one worker, its real lifespan against the
bench stack's PostgreSQL, Valkey and Tansu: token check, deny list and rate limits in Valkey, the
proxy) in front of it, and PostgreSQL. This process is the consumer: one keep-alive connection,
one page at a time (the next cursor comes from the page before), each page decoded with orjson to
read its records and cursor, as a sync job does.

The feed is bulk-loaded with COPY (not measured): FEED_RECORDS de-identified records of the property
scene built by the real rules from generated resident registrations and tickets.

The machine is shared and its load swings within seconds, so the rounds are interleaved: each round
reads the whole feed raw, through the gateway, and straight from citysync, back to back. The figure
is the best gateway round against the best raw round; beside them, the median of the per-round ratios
(each taken under the same load), the direct-to-citysync rate (what the gateway hop costs), the
select plus decode-and-hash floor with no HTTP, CPU milliseconds per 1,000 records of each process
(from /proc; they swing less with the load than wall time does), and each server's CPU while idle.

Last, the parts no design of this pull can avoid, per page (median): the bare select; the pull's own
statement (grant locked, page, register row, durable commit), run alone; one HTTP hop of the same
page's bytes from a static aiohttp server in this process, without and with the client's decode.
Their sum is the floor of any pull that keeps the register and answers JSON over HTTP.

    .venv/bin/python -m bench.citysync_pull
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import orjson

from bench.harness import bench_stack, record, serving
from deploy.local.servers import free_port
from services.citysync import domain, privacy
from services.citysync.app import keys_from
from services.citysync.settings import Settings
from services.kit.db import plain_url
from tests.citysync import factory
from tests.support.stack import new_namespace

COMMUNITY = "bench-community"
FEED_RECORDS = int(os.environ.get("CITYSYNC_BENCH_RECORDS", "50000"))
PAGE = 500
ROUNDS = int(os.environ.get("CITYSYNC_BENCH_ROUNDS", "5"))
IDLE_S = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def spawn_uvicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--loop",
                "uvloop",
            ],
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


@asynccontextmanager
async def uvicorn_process(app: str, env: dict[str, str], log: Path) -> AsyncIterator[tuple[str, int]]:
    """A real server process (uvicorn, one worker, uvloop): yields its base URL and pid."""
    port = free_port()
    proc = spawn_uvicorn(app, port, env, log)
    async with serving(proc, port):
        yield f"http://127.0.0.1:{port}", proc.pid


async def load(url: str, platform_key: bytes) -> None:
    events = [
        e
        for e in factory.community_events(COMMUNITY, factory.residents(FEED_RECORDS * 2 // 3 + 10, seed=4))
        if e.type.startswith("property.")
    ][:FEED_RECORDS]
    rows = []
    for seq, event in enumerate(events, start=1):
        kind = domain.RECORD_KINDS[event.type]
        at = domain.event_time(kind, event.data, event.time)
        payload = privacy.deidentify(event.data, platform_key=platform_key, on=domain.local_day(at))
        rows.append(
            (
                COMMUNITY,
                "property",
                seq,
                1,
                kind.record_type,
                at,
                str(payload.get(kind.subject_field)),
                f"{event.source}#{event.id}",
                orjson.dumps(payload).decode(),
                datetime.now(UTC),
            )
        )
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.copy_records_to_table(
            "feed_records",
            columns=[
                "community",
                "scene",
                "seq",
                "schema_version",
                "record_type",
                "event_time",
                "subject_id",
                "source_event_id",
                "payload",
                "recorded_at",
            ],
            records=rows,
        )
        await conn.execute("INSERT INTO feed_counters VALUES ($1, 'property', $2)", COMMUNITY, len(rows))
        # The bench reads the feed, not the city topics: mark them as written already.
        await conn.execute("INSERT INTO topic_cursors VALUES ($1, 'property', $2)", COMMUNITY, len(rows))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# The baseline: a bare select of one page, nothing else.
RAW_PAGE = (
    "SELECT seq, record_type, schema_version, event_time, payload FROM feed_records "
    "WHERE community = $1 AND scene = 'property' AND seq > $2 ORDER BY seq LIMIT $3"
)


async def raw_round(conn: asyncpg.Connection) -> float:
    """One pass over the feed with the raw select: records/s."""
    start, after, n = time.perf_counter(), 0, 0
    while True:
        rows = await conn.fetch(RAW_PAGE, COMMUNITY, after, PAGE)
        if not rows:
            break
        n += len(rows)
        after = rows[-1]["seq"]
    assert n == FEED_RECORDS, n
    return n / (time.perf_counter() - start)


async def raw_select_decode_hash(url: str, consumer_key: bytes) -> float:
    """The same select, plus the work no pull can skip: decoding each payload and each consumer hash."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        best = 0.0
        for _ in range(ROUNDS):
            start, after, n = time.perf_counter(), 0, 0
            while True:
                rows = await conn.fetch(
                    "SELECT seq, record_type, schema_version, event_time, payload::text FROM feed_records "
                    "WHERE community = $1 AND scene = 'property' AND seq > $2 ORDER BY seq LIMIT $3",
                    COMMUNITY,
                    after,
                    PAGE,
                )
                if not rows:
                    break
                hasher = privacy.ConsumerHasher(consumer_key)
                orjson.dumps([hasher.payload(orjson.loads(r[4])) for r in rows])
                n += len(rows)
                after = rows[-1]["seq"]
            best = max(best, n / (time.perf_counter() - start))
        return best
    finally:
        await conn.close()


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


async def unavoidable_parts(url: str, consumer_id: str) -> dict[str, float]:
    """Per page, in ms: the bare select, the pull statement alone, one HTTP hop of the page's bytes
    (from a static server in this process) without and with the client's decode."""
    from aiohttp import web

    from services.citysync.pulls import _PULL

    conn = await asyncpg.connect(plain_url(url))
    bare_s, pull_s = [], []
    try:
        for after in range(0, FEED_RECORDS, PAGE):
            start = time.perf_counter()
            await conn.fetch(RAW_PAGE, COMMUNITY, after, PAGE)
            bare_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            await conn.fetch(_PULL, COMMUNITY, "property", after, PAGE, consumer_id)
            pull_s.append(time.perf_counter() - start)
        rows = await conn.fetch(
            "SELECT seq, payload::text FROM feed_records WHERE community = $1 AND scene = 'property' ORDER BY seq LIMIT $2",
            COMMUNITY,
            PAGE,
        )
    finally:
        await conn.close()
    body = orjson.dumps(
        {
            "records": [{"seq": seq, "data": orjson.Fragment(payload)} for seq, payload in rows],
            "next_cursor": str(rows[-1][0]),
            "has_more": True,
        }
    )

    async def static_page(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/page", static_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    hop: dict[bool, list[float]] = {False: [], True: []}
    try:
        async with aiohttp.ClientSession() as http:
            for decode in (False, True) * 200:
                start = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}/page") as r:
                    page = await r.read()
                if decode:
                    orjson.loads(page)
                hop[decode].append(time.perf_counter() - start)
    finally:
        await runner.cleanup()
    return {
        "bare select": median_ms(bare_s),
        "pull statement alone": median_ms(pull_s),
        "one HTTP hop of the page's bytes": median_ms(hop[False]),
        "the same hop + client decode": median_ms(hop[True]),
    }


async def http_round(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, int]:
    """One pass over the feed over HTTP, as a sync job reads it: (records/s, pages)."""
    start, after, n, pages = time.perf_counter(), "0", 0, 0
    while True:
        async with session.get(url, params={"after": after, "limit": str(PAGE)}, headers=headers) as r:
            assert r.status == 200, (r.status, await r.text())
            page = orjson.loads(await r.read())
        n += len(page["records"])
        pages += 1
        after = page["next_cursor"]
        if not page["has_more"]:
            break
    assert n == FEED_RECORDS, n
    return n / (time.perf_counter() - start), pages


async def main() -> None:
    from gateway.migrate import upgrade_gateway_database
    from gateway.operator import put_community_at

    async with bench_stack() as stack:
        work = Path(tempfile.mkdtemp(prefix="bench-citysync-pull-"))
        url = await stack.fresh_database("citysync")
        await load(url, keys_from(Settings()).platform)
        floor = await raw_select_decode_hash(url, b"k" * 32)
        gateway_db = await stack.empty_database("gateway_bench")
        await upgrade_gateway_database(gateway_db)
        await put_community_at(gateway_db, COMMUNITY, "bench", "331102")
        namespace = new_namespace()
        citysync_env = {
            "CITYSYNC_DATABASE_URL": url,
            "CITYSYNC_REDIS_URL": stack.redis_url,
            "CITYSYNC_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "CITYSYNC_KAFKA_NAMESPACE": namespace,
            "CITYSYNC_JWKS_URL": stack.jwks_url,
            "CITYSYNC_LOG_LEVEL": "WARNING",
        }
        conn = await asyncpg.connect(plain_url(url))
        async with uvicorn_process("services.citysync.app:create_app", citysync_env, work / "citysync.log") as (svc, svc_pid):
            gateway_env = {
                "GATEWAY_DATABASE_URL": gateway_db,
                "GATEWAY_REDIS_URL": stack.redis_url,
                "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
                "GATEWAY_KAFKA_NAMESPACE": namespace,
                "GATEWAY_KEYS_DIR": str(stack.keys_dir),
                "GATEWAY_UPSTREAMS": json.dumps({"citysync": svc}),
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
                "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
            }
            async with (
                uvicorn_process("gateway.app:create_app", gateway_env, work / "gateway.log") as (gw, gw_pid),
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http,
            ):
                pids = {"citysync": svc_pid, "gateway": gw_pid}
                worker = stack.auth("worker", "community_worker", community=COMMUNITY)
                for path, body in (
                    ("/consumers", {"id": "city-bench", "name": "bench"}),
                    ("/consumers/city-bench/grants", {"scene": "property"}),
                ):
                    async with http.post(svc + path, json=body, headers=worker) as r:
                        assert r.status == 201, (r.status, await r.text())
                headers = {"Authorization": "Bearer " + stack.token("city-bench", "city_sync", community=COMMUNITY, ttl_s=3600)}
                via_gateway, direct = gw + "/city/v1/feeds/property", svc + "/feeds/property"
                await http_round(http, via_gateway, headers)  # warm-up: connections, caches, first-call work
                # What the processes burn with no pull at all (citysync's consumer group polling the
                # broker, its relay and jobs): part of their CPU per 1,000 records below.
                idle_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                await asyncio.sleep(IDLE_S)
                idle = {name: round((cpu_seconds(pid) - idle_before[name]) / IDLE_S * 1000, 1) for name, pid in pids.items()}
                raw_rates, gw_rates, direct_rates, pages = [], [], [], 0
                cpu: dict[str, list[float]] = {"gateway": [], "citysync": [], "client": []}
                for _ in range(ROUNDS):
                    raw_rates.append(await raw_round(conn))
                    before = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"client": time.process_time()}
                    rate, pages = await http_round(http, via_gateway, headers)
                    gw_rates.append(rate)
                    after = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"client": time.process_time()}
                    for name in cpu:
                        cpu[name].append(after[name] - before[name])
                    direct_rates.append((await http_round(http, direct, headers))[0])
        await conn.close()
        parts = await unavoidable_parts(url, "city-bench")
        floor_ms = parts["pull statement alone"] + parts["the same hop + client decode"]
        per_1000 = 1000 / FEED_RECORDS * 1000  # CPU seconds per pass -> ms per 1,000 records
        record(
            "citysync_pull",
            max(gw_rates),
            "records/s",
            "raw SQL select of the same pages",
            max(raw_rates),
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={
                "records": FEED_RECORDS,
                "page_size": PAGE,
                "pages_per_round": pages,
                "rounds": ROUNDS,
                "path": "client -> gateway process -> citysync process -> PostgreSQL",
                "median of per-round ratios": round(
                    statistics.median(g / r for g, r in zip(gw_rates, raw_rates, strict=True)), 3
                ),
                "gateway rounds (records/s)": [round(a) for a in gw_rates],
                "raw rounds (records/s)": [round(r) for r in raw_rates],
                "straight to citysync, no gateway (records/s, best)": round(max(direct_rates)),
                "direct rounds (records/s)": [round(d) for d in direct_rates],
                "CPU ms per 1,000 records through the gateway (median round)": {
                    name: round(statistics.median(v) * per_1000, 2) for name, v in cpu.items()
                },
                "idle CPU ms per second (no pulls)": idle,
                "raw select + payload decode + consumer hashes, no HTTP (records/s)": round(floor, 1),
                "gateway / that": round(max(gw_rates) / floor, 3),
                "unavoidable parts per page (ms, median)": parts,
                "floor: pull statement + one hop with decode (ms per page)": round(floor_ms, 3),
                "best any such pull could reach / bare select": round(parts["bare select"] / floor_ms, 3),
            },
        )
        await stack.drop_database(url)
        await stack.drop_database(gateway_db)


if __name__ == "__main__":
    asyncio.run(main())
