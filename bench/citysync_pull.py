"""Pull throughput: records per second a city consumer reads through `GET /feeds/{scene}` in pages of
500 (the service's full ASGI stack: token, grant check FOR SHARE, the page query, per-consumer
hashes, the pull register row, JSON), beside the raw SQL select of the same pages on asyncpg.

The feed is bulk-loaded with COPY (not measured): FEED_RECORDS de-identified records of the property
scene built by the real rules from generated resident registrations and tickets.

The machine is shared and its load swings within seconds, so the rounds are interleaved: each round
reads the whole feed once raw and once through the API, back to back. The figures are the best
round of each (as before); beside them, the median of the per-round ratios (each ratio taken under
the same load) and this process's CPU time per 1,000 records (client and service share the process;
PostgreSQL's CPU is not in it), which swings less with the load than wall time does.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, datetime

import asyncpg
import httpx
import orjson

from bench.harness import bench_stack, record
from services.citysync import domain
from services.citysync.app import create_app, keys_from
from services.citysync.settings import Settings
from services.kit.db import plain_url
from tests.citysync import factory
from tests.support.harness import run_service

COMMUNITY = "bench-community"
FEED_RECORDS = int(os.environ.get("CITYSYNC_BENCH_RECORDS", "50000"))
PAGE = 500
ROUNDS = int(os.environ.get("CITYSYNC_BENCH_ROUNDS", "5"))


async def load(url: str, platform_key: bytes) -> None:
    events = [e for e in factory.community_events(COMMUNITY, factory.residents(FEED_RECORDS * 2 // 3 + 10, seed=4))
              if e.type.startswith("property.")][:FEED_RECORDS]
    rows = []
    for seq, event in enumerate(events, start=1):
        kind = domain.RECORD_KINDS[event.type]
        at = domain.event_time(kind, event.data, event.time)
        payload = domain.deidentify(event.data, platform_key=platform_key, on=domain.local_day(at))
        rows.append((COMMUNITY, "property", seq, 1, kind.record_type, at, str(payload.get(kind.subject_field)),
                     f"{event.source}#{event.id}", orjson.dumps(payload).decode(), datetime.now(UTC)))
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.copy_records_to_table("feed_records", columns=[
            "community", "scene", "seq", "schema_version", "record_type", "event_time", "subject_id",
            "source_event_id", "payload", "recorded_at"], records=rows)
        await conn.execute("INSERT INTO feed_counters VALUES ($1, 'property', $2)", COMMUNITY, len(rows))
        # The bench reads the feed, not the city topics: mark them as written already.
        await conn.execute("INSERT INTO topic_cursors VALUES ($1, 'property', $2)", COMMUNITY, len(rows))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def raw_round(conn: asyncpg.Connection) -> tuple[float, float]:
    """One pass over the feed with the raw select: (records/s, CPU seconds)."""
    start, cpu, after, n = time.perf_counter(), time.process_time(), 0, 0
    while True:
        rows = await conn.fetch(
            "SELECT seq, record_type, schema_version, event_time, payload FROM feed_records "
            "WHERE community = $1 AND scene = 'property' AND seq > $2 ORDER BY seq LIMIT $3",
            COMMUNITY, after, PAGE)
        if not rows:
            break
        n += len(rows)
        after = rows[-1]["seq"]
    assert n == FEED_RECORDS, n
    return n / (time.perf_counter() - start), time.process_time() - cpu


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
                    COMMUNITY, after, PAGE)
                if not rows:
                    break
                hasher = domain.ConsumerHasher(consumer_key)
                orjson.dumps([hasher.payload(orjson.loads(r[4])) for r in rows])
                n += len(rows)
                after = rows[-1]["seq"]
            best = max(best, n / (time.perf_counter() - start))
        return best
    finally:
        await conn.close()


async def api_round(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[float, float, int]:
    """One pass over the feed through the API: (records/s, CPU seconds, pages)."""
    start, cpu, after, n, pages = time.perf_counter(), time.process_time(), "0", 0, 0
    while True:
        r = await client.get("/feeds/property", params={"after": after, "limit": PAGE}, headers=headers)
        page = orjson.loads(r.content)
        n += len(page["records"])
        pages += 1
        after = page["next_cursor"]
        if not page["has_more"]:
            break
    assert n == FEED_RECORDS, n
    return n / (time.perf_counter() - start), time.process_time() - cpu, pages


async def main() -> None:
    async with bench_stack() as stack:
        url = await stack.fresh_database("citysync")
        settings = Settings()
        await load(url, keys_from(settings).platform)
        floor = await raw_select_decode_hash(url, b"k" * 32)
        conn = await asyncpg.connect(plain_url(url))
        async with run_service(stack, "citysync", create_app, Settings, database_url=url, log_level="WARNING") as svc:
            worker = stack.auth("worker", "community_worker", community=COMMUNITY)
            assert (await svc.client.post("/consumers", json={"id": "city-bench", "name": "bench"},
                                          headers=worker)).status_code == 201
            assert (await svc.client.post("/consumers/city-bench/grants", json={"scene": "property"},
                                          headers=worker)).status_code == 201
            headers = stack.auth("city-bench", "city_sync", community=COMMUNITY)
            raw_rates, api_rates, raw_cpu, api_cpu, pages = [], [], [], [], 0
            for _ in range(ROUNDS):
                rate, cpu = await raw_round(conn)
                raw_rates.append(rate)
                raw_cpu.append(cpu)
                rate, cpu, pages = await api_round(svc.client, headers)
                api_rates.append(rate)
                api_cpu.append(cpu)
        await conn.close()
        per_1000 = 1000 / FEED_RECORDS * 1000  # CPU seconds per pass -> ms per 1,000 records
        record("citysync_pull", max(api_rates), "records/s", "raw SQL select of the same pages", max(raw_rates),
               higher_is_better=True, target=">= 0.5 x raw",
               extra={"records": FEED_RECORDS, "page_size": PAGE, "pages_per_round": pages,
                      "rounds": ROUNDS, "note": "best of the interleaved rounds for both; in-process ASGI, "
                                                "gateway not in path",
                      "median of per-round ratios": round(statistics.median(
                          a / r for a, r in zip(api_rates, raw_rates, strict=True)), 3),
                      "API rounds (records/s)": [round(a) for a in api_rates],
                      "raw rounds (records/s)": [round(r) for r in raw_rates],
                      "process CPU ms per 1,000 records, API (best round)": round(min(api_cpu) * per_1000, 2),
                      "process CPU ms per 1,000 records, raw (best round)": round(min(raw_cpu) * per_1000, 2),
                      "raw select + payload decode + consumer hashes (records/s)": round(floor, 1),
                      "API / that": round(max(api_rates) / floor, 3)})
        await stack.drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
