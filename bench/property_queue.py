"""The steward queue's read latency (p99) with 50,000 tickets in the database, through HTTP, beside a
bare indexed SELECT of the same page on the same database in the same run. Target: p99 <= 20 ms."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg

from bench.harness import bench_stack, percentile, record, summary_ms
from bench.http_seeds import load_tickets
from services.kit.db import plain_url
from services.property.app import create_app
from services.property.settings import Settings
from tests.support.harness import run_service

COMMUNITY = "bench"
TICKETS = int(os.environ.get("BENCH_QUEUE_TICKETS", 50_000))  # smaller only to prove the script runs
STEWARDS = 50
READS = int(os.environ.get("BENCH_QUEUE_READS", 500))


async def main() -> None:
    async with bench_stack() as stack, run_service(stack, "property", create_app, Settings) as svc:
        stewards = [str(uuid.uuid4()) for _ in range(STEWARDS)]
        # Bulk-load the tickets straight into the table: open and finished ones, spread over stewards.
        await load_tickets(svc.database_url, COMMUNITY, stewards, TICKETS)
        conn = await asyncpg.connect(plain_url(svc.database_url))
        headers = [stack.auth(s, "steward", community=COMMUNITY) for s in stewards]
        for h in headers[:5]:  # warm up
            assert (await svc.client.get("/queue", headers=h)).status_code == 200
        http: list[float] = []
        for i in range(READS):
            start = time.perf_counter()
            r = await svc.client.get("/queue", params={"limit": 20}, headers=headers[i % STEWARDS])
            http.append(time.perf_counter() - start)
            assert r.status_code == 200 and len(r.json()["items"]) == 20
        bare: list[float] = []
        sql = (
            "SELECT * FROM tickets WHERE community = $1 AND assignee_id = $2 AND status IN"
            " ('assigned','queued','accepted','quoted','approved','in_progress','paused')"
            " ORDER BY due_at, id LIMIT 21"
        )
        for i in range(READS):
            start = time.perf_counter()
            rows = await conn.fetch(sql, COMMUNITY, stewards[i % STEWARDS])
            bare.append(time.perf_counter() - start)
            assert len(rows) == 21
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, COMMUNITY, stewards[0]))
        await conn.close()
    http_p99 = percentile([s * 1000 for s in http], 99)
    bare_p99 = percentile([s * 1000 for s in bare], 99)
    record(
        "property_queue_p99",
        http_p99,
        "ms",
        "bare_indexed_select_p99",
        bare_p99,
        higher_is_better=False,
        target="p99 <= 20 ms",
        extra={
            "tickets": TICKETS,
            "reads": READS,
            "http": summary_ms(http),
            "bare": summary_ms(bare),
            "plan": plan.splitlines()[0],
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
