"""The hours-expiry job on a large ledger, beside raw PostgreSQL measured in the same run.

The issue sets no speed target for it; this answers the operator's question "how long does the
hourly job take, and how long does a backlog take to clear". Two figures:
- `timebank_hours_expiry_first_run`: expiries per second when every member holds hours past the
  validity period (the day a community switches expiry on). The job works one account per
  transaction, one at a time, so the baseline is `pgbench -b tpcb-like -c 1` (one client).
- `timebank_hours_expiry_quiet_scan`: milliseconds for the job's run once nothing is left to expire
  (what every hourly run costs afterwards): the candidate query over every member, against one
  bare aggregate of the same members' valid credits (a single scan, no per-account work).

The ledger is written by SQL in bulk (bench set-up, not the code under test): MEMBERS member accounts
with CREDITS service credits each spread over five years and SPENDS spends, and the account totals
that match them. Run: `.venv/bin/python -m bench.timebank_hours_expiry`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import text

from bench.harness import bench_stack, record
from bench.timebank_confirm import add_to_totals, pgbench_init, pgbench_tps
from services.kit.db import make_engine, make_sessionmaker
from services.timebank import community, domain, hours_expiry, ledger
from services.timebank.jobs import hours_expiry_job
from services.timebank.schemas import CommunitySettingsIn
from services.timebank.settings import Settings
from tests.support.stack import TestStack

COMMUNITY = "bench-expiry"
MEMBERS = 20_000
CREDITS = 20  # per member, 60 minutes each, over the last 60 months
SPENDS = 5  # per member, 60 minutes each
VALID_MONTHS = 36
QUIET_RUNS = 5


async def prepare(stack: TestStack) -> str:
    url = await stack.fresh_database("timebank")
    engine = make_engine(url, pool_size=2)
    async with make_sessionmaker(engine)() as s:
        await community.update_settings(
            s, COMMUNITY, CommunitySettingsIn(storage_cap_minutes=10_000_000, hours_expire=True, hours_valid_months=VALID_MONTHS)
        )
    pool, house = ledger.pool_account_id(COMMUNITY), ledger.community_account_id(COMMUNITY)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tb_accounts (id, community, kind, owner_id, debits_must_not_exceed_credits) "
                "SELECT gen_random_uuid(), :c, 'member', 'm' || i, true FROM generate_series(1, :n) i"
            ),
            {"c": COMMUNITY, "n": MEMBERS},
        )
        # Credits from the pool at random moments over five years; spends to the community account.
        await conn.execute(
            text(
                "INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, "
                "amount_minutes, service_type, fingerprint, created_by, created_at) "
                "SELECT gen_random_uuid(), :c, 'service', 'posted', :pool, a.id, 60, 'meal', 'bench', 'bench', "
                "       now() - random() * interval '60 months' "
                "  FROM tb_accounts a, generate_series(1, :k) WHERE a.community = :c AND a.kind = 'member' "
                " ORDER BY 11"
            ),
            {"c": COMMUNITY, "pool": pool, "k": CREDITS},
        )
        await conn.execute(
            text(
                "INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, "
                "amount_minutes, service_type, fingerprint, created_by, created_at) "
                "SELECT gen_random_uuid(), :c, 'spend', 'posted', a.id, :house, 60, 'meal', 'bench', 'bench', "
                "       now() - random() * interval '24 months' "
                "  FROM tb_accounts a, generate_series(1, :k) WHERE a.community = :c AND a.kind = 'member'"
            ),
            {"c": COMMUNITY, "house": house, "k": SPENDS},
        )
        # The pool was funded first with what it pays out, so the ledger reconciles (bench.timebank_audit).
        await conn.execute(
            text(
                "INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, "
                "amount_minutes, reason, fingerprint, created_by, created_at) "
                "VALUES (gen_random_uuid(), :c, 'funding', 'posted', :house, :pool, :minutes, 'bench', 'bench', 'bench', "
                "        now() - interval '61 months')"
            ),
            {"c": COMMUNITY, "house": house, "pool": pool, "minutes": MEMBERS * CREDITS * 60},
        )
        await add_to_totals(conn, "posted")
        await conn.execute(text("ANALYZE"))
    await engine.dispose()
    return url


async def bare_aggregate_ms(url: str, since: datetime) -> float:
    """One scan that sums every member's valid credits: the least any candidate search must read."""
    engine = make_engine(url, pool_size=1)
    times = []
    async with engine.connect() as conn:
        for _ in range(QUIET_RUNS + 1):
            t0 = time.perf_counter()
            await conn.execute(
                text(
                    "SELECT t.credit_account_id, sum(t.amount_minutes) FROM tb_transfers t "
                    "JOIN tb_accounts a ON a.id = t.credit_account_id AND a.kind = 'member' AND a.community = :c "
                    "WHERE t.phase = 'posted' AND t.created_at >= :since GROUP BY 1"
                ),
                {"c": COMMUNITY, "since": since},
            )
            times.append((time.perf_counter() - t0) * 1000)
    await engine.dispose()
    return statistics.median(times[1:])


async def main() -> None:
    async with bench_stack() as stack:
        pgbench_url = pgbench_init(stack)
        url = await prepare(stack)
        engine = make_engine(url, pool_size=2)
        maker = make_sessionmaker(engine)
        async with engine.connect() as conn:
            transfers = (await conn.execute(text("SELECT count(*) FROM tb_transfers"))).scalar_one()

        baseline_tps = pgbench_tps(pgbench_url, 6, clients=1)
        # The scheduled job as it runs in the service (batches of the default size until none is due).
        job = hours_expiry_job(every_s=3600, batch=Settings().hours_expiry_batch_size)
        t0 = time.perf_counter()
        await job.run(SimpleNamespace(sessionmaker=maker))
        first_s = time.perf_counter() - t0
        async with engine.connect() as conn:
            expired = (await conn.execute(text("SELECT count(*) FROM tb_transfers WHERE kind = 'expiry'"))).scalar_one()
        baseline_tps = statistics.median([baseline_tps, pgbench_tps(pgbench_url, 6, clients=1)])
        record(
            "timebank_hours_expiry_first_run",
            expired / first_s,
            "expiries/s",
            "pgbench tpcb-like -c 1 (scale 10), transactions",
            baseline_tps,
            higher_is_better=True,
            extra={
                "members": MEMBERS,
                "transfers": transfers,
                "expired": expired,
                "seconds": round(first_s, 1),
                "note": "one job run, batches of TIMEBANK_HOURS_EXPIRY_BATCH_SIZE",
            },
        )

        quiet = []
        now = datetime.now(UTC)
        async with maker() as s:
            for _ in range(QUIET_RUNS):
                t0 = time.perf_counter()
                assert await hours_expiry.expire_hours(s, now=now, limit=MEMBERS) == 0
                quiet.append((time.perf_counter() - t0) * 1000)
        bare = await bare_aggregate_ms(url, domain.hours_valid_from(now, VALID_MONTHS))
        record(
            "timebank_hours_expiry_quiet_scan",
            statistics.median(quiet),
            "ms",
            "one bare aggregate of the valid credits",
            bare,
            higher_is_better=False,
            extra={"members": MEMBERS, "transfers": transfers, "runs": [round(q) for q in quiet]},
        )
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
