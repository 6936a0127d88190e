"""Once per period across replicas: before a scheduled job runs, its replica claims the job's
current period with one `INSERT ... ON CONFLICT DO NOTHING` keyed `(job, period_start)`; only the
replica whose row landed runs the job for that period, the others wait for the next one.

Periods are `every_s` long, counted from the Unix epoch on the database's clock, so replicas whose
clocks disagree still agree on the period. A replica that dies mid-run leaves its period done:
every job is a drain of what is due, so the next period picks up what it left.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Kept so an operator can see which replica ran which period (`SELECT * FROM kit_job_runs`).
KEEP_PERIODS = 100

_CLAIM = text(
    """
WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now_s),
period AS (SELECT now_s, floor(now_s / CAST(:every_s AS float8)) * CAST(:every_s AS float8) AS start_s FROM clock),
claimed AS (
    INSERT INTO kit_job_runs (job, period_start, replica)
    SELECT :job, to_timestamp(start_s), :replica FROM period
    ON CONFLICT DO NOTHING
    RETURNING 1
),
forgotten AS (
    DELETE FROM kit_job_runs
    WHERE job = :job AND period_start < (SELECT to_timestamp(start_s - CAST(:every_s AS float8) * :keep) FROM period)
)
SELECT (SELECT count(*) FROM claimed) = 1 AS won, start_s + CAST(:every_s AS float8) - now_s AS wait_s FROM period
"""
)


@dataclass(frozen=True)
class PeriodClaim:
    won: bool
    # Until the next period starts, by the database's clock.
    wait_s: float


def replica_name() -> str:
    """The pod's name (its hostname in Kubernetes) and the process id, for the record only."""
    return f"{socket.gethostname()}/{os.getpid()}"


async def claim_period(engine: AsyncEngine, job: str, every_s: float, replica: str) -> PeriodClaim:
    """Claim `job`'s current period for `replica`; `won` is true for exactly one claimant per period."""
    async with engine.begin() as conn:
        row = (await conn.execute(_CLAIM, {"job": job, "every_s": every_s, "replica": replica, "keep": KEEP_PERIODS})).one()
    return PeriodClaim(won=bool(row.won), wait_s=max(0.0, float(row.wait_s)))
