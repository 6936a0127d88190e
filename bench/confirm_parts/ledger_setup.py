"""The confirmation bench's set-up: pgbench's database, a time bank with pending service transfers,
and the CPU and commit counters read beside each figure."""

from __future__ import annotations

import re
import resource
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from deploy.local.servers import EmbeddedPostgres
from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker
from services.timebank import batches, community, ledger, members, transfers
from services.timebank.schemas import BatchIn, CommunitySettingsIn, FundingIn, MemberEnrol
from tests.support.stack import TestStack

COMMUNITY = "bench"
CONCURRENCY = 8
ELDERS = 200
VOLUNTEERS = 200
WORKER = Principal(subject="bench-worker", roles=frozenset({"community_worker"}), community=COMMUNITY)


def pgbench_init(stack: TestStack) -> str:
    url = stack.database_url("pgbench_tb")
    subprocess.run(
        [
            str(EmbeddedPostgres.bin_dir() / "psql"),
            "-X",
            "-q",
            stack.database_url("postgres"),
            "-c",
            "DROP DATABASE IF EXISTS pgbench_tb",
            "-c",
            "CREATE DATABASE pgbench_tb",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([str(EmbeddedPostgres.bin_dir() / "pgbench"), "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    return url


def pgbench_tps(url: str, duration_s: float, clients: int = CONCURRENCY) -> float:
    out = subprocess.run(
        [
            str(EmbeddedPostgres.bin_dir() / "pgbench"),
            "-b",
            "tpcb-like",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(int(duration_s)),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def postgres_pids(stack: TestStack) -> list[int]:
    """The stack's postmaster: with its backends (children, live or reaped), PostgreSQL's CPU."""
    assert stack.pg is not None, "needs the embedded PostgreSQL, whose processes it reads"
    return [int((stack.pg.data_dir / "postmaster.pid").read_text().split()[0])]


def children_cpu_s() -> float:
    """CPU of this process's reaped children (pgbench, wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def commits(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        n = (await conn.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))).scalar_one()
    await engine.dispose()
    return int(n)


async def wal_records(url: str) -> int:
    """WAL records the server has written so far (every database: the bench's ways take turns, so
    a difference belongs to the one running). Unlike CPU time, a count the machine's load does not
    move: what a transaction makes PostgreSQL log."""
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        n = (await conn.execute(text("SELECT wal_records FROM pg_stat_wal"))).scalar_one()
    await engine.dispose()
    return int(n)


async def add_to_totals(conn: AsyncConnection, phase: Literal["pending", "posted"]) -> None:
    """Add the transfers the bench wrote by SQL (open pending ones, or posted ones) to their
    accounts' totals, as the ledger would have."""
    open_only = " AND resolution IS NULL" if phase == "pending" else ""
    for side in ("credit", "debit"):
        await conn.execute(
            text(
                f"UPDATE tb_accounts a SET {side}s_{phase} = a.{side}s_{phase} + t.total FROM (SELECT {side}_account_id "
                f"acc, sum(amount_minutes) total FROM tb_transfers WHERE phase = '{phase}'{open_only} GROUP BY 1) t "
                f"WHERE a.id = t.acc"
            )
        )


# `pendings` logged care requests, each with its pending transfer (elder n % ELDERS pays volunteer
# 7n % VOLUNTEERS 30 minutes), in one statement: both rows of a pair reference each other's id.
_PENDINGS = text("""
    WITH g AS (
        SELECT n, gen_random_uuid() AS rid, gen_random_uuid() AS tid,
               'e' || (n % :elders) AS elder, 'v' || ((n * 7) % :volunteers) AS vol
          FROM generate_series(0, :pendings - 1) AS n),
    requests AS (
        INSERT INTO tb_care_requests (id, community, elder_id, requested_by, service_type, place, starts_at,
                                      minutes_estimated, status, volunteer_id, accepted_at, checked_in_at,
                                      checked_out_at, transfer_id)
        SELECT rid, :c, elder, elder, 'meal', 'home', :t0, 30, 'logged', vol, :t0, :t0, :t1, tid FROM g)
    INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, amount_minutes,
                              care_request_id, service_type, fingerprint, created_by, timeout_at)
    SELECT g.tid, :c, 'service', 'pending', e.account_id, v.account_id, 30, g.rid, 'meal', 'bench', g.vol, :timeout
      FROM g JOIN tb_members e ON e.community = :c AND e.member_id = g.elder
             JOIN tb_members v ON v.community = :c AND v.member_id = g.vol
     ORDER BY g.n""")


async def prepare(stack: TestStack, pendings: int) -> str:
    """A timebank database with members, a funded pool and `pendings` pending service transfers."""
    url = await stack.fresh_database("timebank")
    engine = make_engine(url, pool_size=4)
    maker = make_sessionmaker(engine)
    async with maker() as s:
        await community.update_settings(s, COMMUNITY, CommunitySettingsIn(storage_cap_minutes=10_000_000))
        for _ in range(15):  # for the batch figure
            await transfers.fund_pool(s, WORKER, FundingIn(id=uuid.uuid4(), minutes=100_000, reason="bench"))
        for i in range(ELDERS):
            await members.enrol(s, Principal(f"e{i}", frozenset({"resident"}), COMMUNITY), MemberEnrol(elder=True))
        for i in range(VOLUNTEERS):
            await members.enrol(s, Principal(f"v{i}", frozenset({"resident"}), COMMUNITY), MemberEnrol(volunteer=True))
    pool = ledger.pool_account_id(COMMUNITY)
    now = datetime.now(UTC)
    per_elder = 30 * (pendings // ELDERS + 1) + 5_000
    async with maker() as s:
        # Each elder pays from their own account (distinct payers, as in a real community); their
        # hours come from the pool through recorded services, so the ledger balances from the start.
        async with s.begin():
            await (await s.connection()).execute(text("UPDATE tb_members SET birth_date = '1950-01-01' WHERE is_elder"))
        for _ in range(per_elder * ELDERS // 100_000 + 1):
            await transfers.fund_pool(s, WORKER, FundingIn(id=uuid.uuid4(), minutes=100_000, reason="bench"))
        await batches.post_batch(
            s,
            WORKER,
            BatchIn.model_validate(
                {
                    "transfers": [
                        {
                            "id": str(uuid.uuid4()),
                            "kind": "service",
                            "debit_account_id": str(pool),
                            "credit_account_id": str(ledger.member_account_id(COMMUNITY, f"e{i}")),
                            "minutes": per_elder,
                            "service_type": "other",
                            "elder_id": f"e{i}",
                        }
                        for i in range(ELDERS)
                    ]
                }
            ),
        )
    async with engine.begin() as conn:
        await conn.execute(
            _PENDINGS,
            {
                "pendings": pendings,
                "elders": ELDERS,
                "volunteers": VOLUNTEERS,
                "c": COMMUNITY,
                "t0": now - timedelta(hours=1),
                "t1": now - timedelta(minutes=30),
                "timeout": now + timedelta(days=3),
            },
        )
        await add_to_totals(conn, "pending")
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))  # as autovacuum would have, long before the bench's minute
    await engine.dispose()
    return url


async def pending_ids(url: str) -> list[uuid.UUID]:
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        ids = [
            r[0]
            for r in (
                await conn.execute(
                    text("SELECT id FROM tb_transfers WHERE phase = 'pending' AND resolution IS NULL ORDER BY seq")
                )
            ).all()
        ]
    await engine.dispose()
    return ids
