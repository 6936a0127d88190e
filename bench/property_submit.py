"""Tickets submitted per second through HTTP (routing, SLA, audit step, outbox event, idempotency
key), beside a bare INSERT of the same ticket rows on the same database in the same run."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.harness import bench_stack, record
from services.kit.db import plain_url
from services.property.app import create_app
from services.property.settings import Settings
from tests.support.harness import run_service

COMMUNITY = "bench"
TICKETS = 2000
CONCURRENCY = 16


async def main() -> None:
    async with (
        bench_stack() as stack,
        run_service(stack, "property", create_app, Settings, daily_ticket_limit=10**6, db_pool_size=CONCURRENCY + 4) as svc,
    ):
        admin = stack.auth(str(uuid.uuid4()), "property_admin", community=COMMUNITY)
        building = (await svc.client.post("/buildings", json={"code": "B1", "name": "1幢"}, headers=admin)).json()
        household = (
            await svc.client.post("/households", json={"building_id": building["id"], "unit": "101"}, headers=admin)
        ).json()
        residents = []
        for i in range(CONCURRENCY):
            r = (
                await svc.client.post(
                    "/residents", json={"household_id": household["id"], "name": f"r{i}", "phone": f"170{i:08d}"}, headers=admin
                )
            ).json()
            residents.append(stack.auth(r["id"], "resident", community=COMMUNITY))
        steward = (
            await svc.client.post(
                "/staff",
                json={"name": "s", "username": "steward.s", "roles": ["steward"], "buildings": [building["id"]]},
                headers=admin,
            )
        ).json()
        await svc.client.put(
            f"/staff/{steward['id']}/roster",
            headers=admin,
            json={"shifts": [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(7)]},
        )

        async def http_worker(w: int) -> None:
            for n in range(TICKETS // CONCURRENCY):
                r = await svc.client.post(
                    "/tickets",
                    json={"category": "repair", "description": "漏水"},
                    headers={**residents[w], "Idempotency-Key": f"{w}-{n}"},
                )
                assert r.status_code == 201, r.text

        start = time.perf_counter()
        await asyncio.gather(*(http_worker(w) for w in range(CONCURRENCY)))
        http_rate = TICKETS / (time.perf_counter() - start)

        pool = await asyncpg.create_pool(plain_url(svc.database_url), min_size=CONCURRENCY, max_size=CONCURRENCY)
        now = datetime.now(UTC)

        async def bare_worker(w: int) -> None:
            async with pool.acquire() as conn:
                for _ in range(TICKETS // CONCURRENCY):
                    await conn.execute(
                        "INSERT INTO tickets (id, community, resident_id, household_id, building_id, category,"
                        " quantity, description, priority, status, assignee_id, payment_status, response_due_at,"
                        " resolution_due_at, due_at, paused_minutes, hurry_count)"
                        " VALUES ($1, $2, $3, $4, $5, 'repair', 1, '漏水', 'normal', 'assigned', $6, 'none',"
                        " $7, $8, $7, 0, 0)",
                        str(uuid.uuid4()),
                        COMMUNITY,
                        str(w),
                        household["id"],
                        building["id"],
                        steward["id"],
                        now + timedelta(minutes=30),
                        now + timedelta(hours=24),
                    )

        start = time.perf_counter()
        await asyncio.gather(*(bare_worker(w) for w in range(CONCURRENCY)))
        bare_rate = TICKETS / (time.perf_counter() - start)
        await pool.close()
    record(
        "property_submit_http",
        http_rate,
        "tickets/s",
        "bare_insert",
        bare_rate,
        higher_is_better=True,
        extra={"tickets": TICKETS, "concurrency": CONCURRENCY, "transport": "in-process ASGI (httpx)"},
    )


if __name__ == "__main__":
    asyncio.run(main())
