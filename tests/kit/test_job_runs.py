"""A scheduled job runs once per period across replicas: every replica's scheduler claims the
job's period in `kit_job_runs` (services/kit/job_runs.py) and only the claim that lands runs it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.kit.app import ScheduledJob, repeat
from services.kit.db import asyncpg_url
from services.kit.job_runs import claim_period
from tests.kit import probe
from tests.kit.test_backbone import wait_until
from tests.support.stack import TestStack

REPLICAS = 4


@pytest.fixture
async def database(stack: TestStack) -> AsyncIterator[str]:
    url = await stack.empty_database("jobruns")
    await probe.create_schema(url)
    yield url
    await stack.drop_database(url)


@contextlib.asynccontextmanager
async def engines(url: str, count: int) -> AsyncIterator[list[AsyncEngine]]:
    """One engine per replica: separate connections, as separate pods have."""
    made = [create_async_engine(asyncpg_url(url), poolclass=pool.NullPool) for _ in range(count)]
    try:
        yield made
    finally:
        for engine in made:
            await engine.dispose()


async def test_of_twenty_replicas_claiming_one_period_at_once_exactly_one_wins(database: str) -> None:
    # A year-long period: all twenty claims fall in the same one.
    async with engines(database, 20) as replicas:
        claims = await asyncio.gather(
            *(claim_period(engine, "yearly-report", 365 * 86400.0, f"pod-{i}") for i, engine in enumerate(replicas))
        )
    assert sum(claim.won for claim in claims) == 1
    assert all(0 < claim.wait_s <= 365 * 86400 for claim in claims)


async def test_racing_schedulers_of_four_replicas_run_a_job_once_per_period(database: str) -> None:
    runs: Counter[str] = Counter()

    async def count_run(state: Any) -> None:
        runs[state.replica_id] += 1

    job = ScheduledJob(name="sweep", every_s=0.3, run=count_run)
    async with engines(database, REPLICAS) as replicas:
        states = [
            SimpleNamespace(settings=SimpleNamespace(service_name="probe"), engine=engine, replica_id=f"pod-{i}")
            for i, engine in enumerate(replicas)
        ]
        tasks = [asyncio.create_task(repeat(job, state)) for state in states]
        try:

            async def ran_for_eight_periods() -> bool:
                return sum(runs.values()) >= 8

            await wait_until(ran_for_eight_periods, timeout=60)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    conn = await asyncpg.connect(database)
    try:
        periods = await conn.fetch("SELECT period_start FROM kit_job_runs WHERE job = 'sweep' ORDER BY period_start")
    finally:
        await conn.close()
    # Every run had a period of its own: four schedulers racing ran the job no more often than one
    # would. (A claim that landed just as its scheduler was cancelled has no run: at most one each.)
    assert len(periods) >= 8
    assert len(periods) - REPLICAS <= sum(runs.values()) <= len(periods)
