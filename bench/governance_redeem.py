"""Redemption reservations per second under contention.

20 residents with 500 points each redeem a 1-point item (one shared stock row) 2,000 times, 40
reservations in flight, residents chosen at random: every reservation contends on its resident's
account row and on the reward's stock row. Baseline, same run, same database server, same
concurrency: raw asyncpg transactions doing the bare reservation (conditional balance UPDATE,
conditional stock UPDATE, one INSERT).

Two figures against that baseline:
- `governance_redeem` (the target, >= 0.5 x raw): `redemptions.redeem` called directly, 40 sessions,
  with every check it makes (reward active, per-resident limit, points after debt, lots in spending
  order, stock) and every write (lots, allocations, statement line, stock);
- `governance_redeem_http`: the same through the service's full ASGI stack (token, validation,
  problem handlers), in this process over httpx's ASGI transport, so client and server share one
  core.

    .venv/bin/python -m bench.governance_redeem
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import asyncpg

from bench.harness import bench_stack, record, summary_ms
from services.governance import redemptions
from services.governance.app import create_app
from services.governance.schemas import RedemptionCreate
from services.governance.settings import Settings
from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker, plain_url
from tests.support.harness import run_service

RESIDENTS = 20
REQUESTS = 2000
IN_FLIGHT = 40
COMMUNITY = "bench-community"


async def raw_reservations(database_url: str, picks: list[int]) -> float:
    pool = await asyncpg.create_pool(plain_url(database_url), min_size=IN_FLIGHT, max_size=IN_FLIGHT)
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE raw_accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))")
        await conn.execute("CREATE TABLE raw_stock (id int PRIMARY KEY, stock int NOT NULL CHECK (stock >= 0))")
        await conn.execute("CREATE TABLE raw_reservations (id bigserial PRIMARY KEY, account int, points int)")
        await conn.executemany("INSERT INTO raw_accounts VALUES ($1, 500)", [(i,) for i in range(RESIDENTS)])
        await conn.execute("INSERT INTO raw_stock VALUES (1, 1000000)")
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def reserve(account: int) -> None:
        async with gate, pool.acquire() as conn, conn.transaction():
            ok = await conn.fetchval(
                "UPDATE raw_accounts SET balance = balance - 1 WHERE id = $1 AND balance >= 1 RETURNING balance", account
            )
            if ok is None:
                return
            await conn.execute("UPDATE raw_stock SET stock = stock - 1 WHERE id = 1 AND stock >= 1")
            await conn.execute("INSERT INTO raw_reservations (account, points) VALUES ($1, 1)", account)

    start = time.perf_counter()
    await asyncio.gather(*(reserve(a) for a in picks))
    elapsed = time.perf_counter() - start
    await pool.close()
    return REQUESTS / elapsed


async def usecase_reservations(
    database_url: str, settings: Settings, reward_id: str, picks: list[int]
) -> tuple[float, list[float]]:
    """`redemptions.redeem` for each pick, IN_FLIGHT at a time, each in its own session."""
    engine = make_engine(database_url, pool_size=IN_FLIGHT)
    maker = make_sessionmaker(engine)
    residents = [Principal(f"res-{i}", frozenset({"resident"}), COMMUNITY) for i in range(RESIDENTS)]
    data = RedemptionCreate(reward_id=uuid.UUID(reward_id))
    gate = asyncio.Semaphore(IN_FLIGHT)
    latencies: list[float] = []

    async def redeem(i: int) -> None:
        async with gate, maker() as session:
            t0 = time.perf_counter()
            await redemptions.redeem(session, settings, residents[i], data)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(redeem(i) for i in picks[:200]))  # warm-up: pool, prepared statements
    start = time.perf_counter()
    await asyncio.gather(*(redeem(i) for i in picks))
    rate = len(picks) / (time.perf_counter() - start)
    await engine.dispose()
    return rate, latencies


async def main() -> None:
    random.seed(4)
    picks = [random.randrange(RESIDENTS) for _ in range(REQUESTS)]
    async with bench_stack() as stack:
        async with run_service(
            stack,
            "governance",
            create_app,
            Settings,
            log_level="WARNING",
            db_pool_size=IN_FLIGHT,
            award_approval_threshold=1_000_000,
        ) as svc:
            raw_rate = await raw_reservations(svc.database_url, picks)
            worker = stack.auth("bench-worker", "community_worker", community=COMMUNITY)
            r = await svc.client.post("/budget/fundings", json={"points": 1_000_000}, headers=worker)
            assert r.status_code == 200, r.text
            for i in range(RESIDENTS):
                r = await svc.client.post(
                    "/awards", headers=worker, json={"resident_id": f"res-{i}", "points": 500, "reason": "bench"}
                )
                assert r.status_code == 201 and r.json()["status"] == "applied", r.text
            r = await svc.client.post(
                "/rewards",
                headers=worker,
                json={"code": "bag", "name": "环保袋", "kind": "item", "points": 1, "stock": 1_000_000},
            )
            assert r.status_code == 201, r.text
            reward_id = r.json()["id"]
            assert isinstance(svc.settings, Settings)
            usecase_rate, usecase_latencies = await usecase_reservations(svc.database_url, svc.settings, reward_id, picks)
            headers = [stack.auth(f"res-{i}", "resident", community=COMMUNITY) for i in range(RESIDENTS)]
            gate = asyncio.Semaphore(IN_FLIGHT)
            latencies: list[float] = []
            statuses: list[int] = []

            async def redeem(i: int) -> None:
                async with gate:
                    t0 = time.perf_counter()
                    resp = await svc.client.post("/redemptions", json={"reward_id": reward_id}, headers=headers[i])
                    latencies.append(time.perf_counter() - t0)
                    statuses.append(resp.status_code)

            start = time.perf_counter()
            await asyncio.gather(*(redeem(i) for i in picks))
            rate = REQUESTS / (time.perf_counter() - start)
            assert statuses.count(201) == REQUESTS, {s: statuses.count(s) for s in set(statuses)}
        shape = {"requests": REQUESTS, "in_flight": IN_FLIGHT, "residents": RESIDENTS}
        record(
            "governance_redeem",
            usecase_rate,
            "reservations/s",
            "raw asyncpg reservation",
            raw_rate,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={**shape, **summary_ms(usecase_latencies)},
        )
        record(
            "governance_redeem_http",
            rate,
            "reservations/s",
            "raw asyncpg reservation",
            raw_rate,
            higher_is_better=True,
            extra={**shape, **summary_ms(latencies)},
        )


if __name__ == "__main__":
    asyncio.run(main())
