"""Confirmed time-bank transfers per second, beside `pgbench -b tpcb-like` on the same PostgreSQL.

Three figures, each against the pgbench tps measured in the same run:
- `timebank_confirm_usecase`: `resolution.confirm` called directly (no HTTP), 8 concurrent sessions, each
  confirmation with all its checks (id lock and replay lookup, authorization, row locks, balance
  limits, storage cap) and its outbox event. Target >= 0.5 x pgbench. pgbench and the use case
  take turns for three rounds (the machine's load swings within seconds); the figure is the median
  of the per-round ratios, printed with each round's numbers.
- `timebank_confirm_http`: the same through a real uvicorn server (1 worker) over HTTP.
- `timebank_batch_usecase`: transfers per second through `batches.post_batch`, 1,000 linked
  transfers per transaction. Target >= 3 x pgbench.

Beside each round's ratio, the CPU each transaction cost, read from /proc: in PostgreSQL (the
postmaster and its backends) for pgbench's transactions and for the confirmations, and in Python
for a confirmation (this process for the use case, the server for HTTP; pgbench's own client for
its transactions), with commits per second from `pg_stat_database`. A machine whose PostgreSQL is
fast and whose Python is slow moves the ratio; these figures show which side moved.

The pending transfers to confirm are prepared in bulk by SQL, consistent with the ledger (bench
set-up, not the code under test). Run: `.venv/bin/python -m bench.timebank_confirm`.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.gateway_get import cpu_seconds
from bench.harness import bench_stack, record, summary_ms
from deploy.local.servers import EmbeddedPostgres, free_port, wait_for_port
from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker
from services.timebank import batches, community, ledger, members, resolution, transfers
from services.timebank.schemas import BatchIn, CommunitySettingsIn, ConfirmIn, FundingIn, MemberEnrol
from tests.support.stack import TestStack

COMMUNITY = "bench"
CONCURRENCY = 8
DURATION_S = 6.0
ROUNDS = 3
ELDERS = 200
VOLUNTEERS = 200


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
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def commits(url: str) -> int:
    engine = make_engine(url, pool_size=1)
    async with engine.connect() as conn:
        n = (await conn.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))).scalar_one()
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


async def prepare(stack: TestStack, pendings: int) -> str:
    """A timebank database with members, a funded pool and `pendings` pending service transfers."""
    url = await stack.fresh_database("timebank")
    engine = make_engine(url, pool_size=4)
    maker = make_sessionmaker(engine)
    worker = Principal(subject="bench-worker", roles=frozenset({"community_worker"}), community=COMMUNITY)
    async with maker() as s:
        await community.update_settings(s, COMMUNITY, CommunitySettingsIn(storage_cap_minutes=10_000_000))
        for _ in range(15):  # for the batch figure
            await transfers.fund_pool(s, worker, FundingIn(id=uuid.uuid4(), minutes=100_000, reason="bench"))
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
            await transfers.fund_pool(s, worker, FundingIn(id=uuid.uuid4(), minutes=100_000, reason="bench"))
        await batches.post_batch(
            s,
            worker,
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
        rows = []
        for n in range(pendings):
            elder, vol = f"e{n % ELDERS}", f"v{(n * 7) % VOLUNTEERS}"
            rows.append(
                {
                    "rid": uuid.uuid4(),
                    "tid": uuid.uuid4(),
                    "elder": elder,
                    "vol": vol,
                    "eacc": ledger.member_account_id(COMMUNITY, elder),
                    "vacc": ledger.member_account_id(COMMUNITY, vol),
                }
            )
        for chunk in range(0, len(rows), 2000):
            part = rows[chunk : chunk + 2000]
            await conn.execute(
                text(
                    "INSERT INTO tb_care_requests (id, community, elder_id, requested_by, service_type, place, starts_at, "
                    "minutes_estimated, status, volunteer_id, accepted_at, checked_in_at, checked_out_at, transfer_id) "
                    "VALUES (:rid, :c, :elder, :elder, 'meal', 'home', :t0, 30, 'logged', :vol, :t0, :t0, :t1, :tid)"
                ),
                [{**r, "c": COMMUNITY, "t0": now - timedelta(hours=1), "t1": now - timedelta(minutes=30)} for r in part],
            )
            await conn.execute(
                text(
                    "INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, "
                    "amount_minutes, care_request_id, service_type, fingerprint, created_by, timeout_at) "
                    "VALUES (:tid, :c, 'service', 'pending', :eacc, :vacc, 30, :rid, 'meal', 'bench', :vol, :timeout)"
                ),
                [{**r, "c": COMMUNITY, "timeout": now + timedelta(days=3)} for r in part],
            )
        await add_to_totals(conn, "pending")
        await conn.execute(text("ANALYZE"))
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


async def drive(work: Any, items: list[Any], duration_s: float) -> tuple[int, float, list[float]]:
    """Run `work(item)` from CONCURRENCY tasks until the time or the items run out."""
    queue = list(reversed(items))
    latencies: list[float] = []
    done = 0
    start = time.perf_counter()
    deadline = start + duration_s

    async def loop() -> None:
        nonlocal done
        while queue and time.perf_counter() < deadline:
            item = queue.pop()
            t0 = time.perf_counter()
            await work(item)
            latencies.append(time.perf_counter() - t0)
            done += 1

    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
    return done, time.perf_counter() - start, latencies


async def confirm_usecase(
    url: str, ids: list[uuid.UUID], duration_s: float, pg: list[int]
) -> tuple[float, list[float], dict[str, float]]:
    engine = make_engine(url, pool_size=CONCURRENCY + 2)
    maker = make_sessionmaker(engine)
    worker = Principal(subject="bench-worker", roles=frozenset({"community_worker"}), community=COMMUNITY)

    async def one(pending: uuid.UUID) -> None:
        async with maker() as session:
            await resolution.confirm(session, worker, pending, ConfirmIn(id=uuid.uuid4()))

    await drive(one, ids[:200], 60)  # warm-up: prepared statements, pool
    py, db, committed = time.process_time(), cpu_seconds(pg), await commits(url)
    done, elapsed, lat = await drive(one, ids[200:], duration_s)
    cpu = {
        "python_ms": (time.process_time() - py) * 1000 / max(1, done),
        "postgres_ms": (cpu_seconds(pg) - db) * 1000 / max(1, done),
        "commits_per_s": (await commits(url) - committed) / elapsed,
    }
    await engine.dispose()
    return done / elapsed, lat, cpu


async def confirm_http(stack: TestStack, url: str) -> tuple[float, list[float], dict[str, float]]:
    ids = await pending_ids(url)
    port = free_port()
    env = {
        **os.environ,
        "TIMEBANK_DATABASE_URL": url,
        "TIMEBANK_JWKS_URL": stack.jwks_url,
        "TIMEBANK_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "TIMEBANK_LOG_LEVEL": "WARNING",
        "TIMEBANK_DB_POOL_SIZE": str(CONCURRENCY + 2),
        "TIMEBANK_EXPIRY_JOB_EVERY_S": "3600",
    }
    proc = subprocess.Popen(  # noqa: ASYNC220  (started once, before the timed part)
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "services.timebank.app:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    try:
        wait_for_port(port, 240, proc=proc)  # a service starts slowly on a loaded machine
        headers = {"Authorization": "Bearer " + stack.token("bench-worker", "community_worker", community=COMMUNITY, ttl_s=3600)}
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:

            async def one(pending: uuid.UUID) -> None:
                r = await client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=headers)
                assert r.status_code == 201, r.text

            await drive(one, ids[:200], 60)
            pg = postgres_pids(stack)
            server, db = cpu_seconds([proc.pid]), cpu_seconds(pg)
            done, elapsed, lat = await drive(one, ids[200:], DURATION_S)
            cpu = {
                "server_python_ms": (cpu_seconds([proc.pid]) - server) * 1000 / max(1, done),
                "postgres_ms": (cpu_seconds(pg) - db) * 1000 / max(1, done),
            }
    finally:
        proc.terminate()
        proc.wait(10)
    return done / elapsed, lat, cpu


async def batch_usecase(url: str, rounds: int = 12) -> tuple[float, list[float]]:
    engine = make_engine(url, pool_size=4)
    maker = make_sessionmaker(engine)
    worker = Principal(subject="bench-worker", roles=frozenset({"community_worker"}), community=COMMUNITY)
    pool = str(ledger.pool_account_id(COMMUNITY))

    def batch() -> BatchIn:
        return BatchIn.model_validate(
            {
                "transfers": [
                    {
                        "id": str(uuid.uuid4()),
                        "kind": "service",
                        "debit_account_id": pool,
                        "credit_account_id": str(ledger.member_account_id(COMMUNITY, f"v{i % VOLUNTEERS}")),
                        "minutes": 5,
                        "service_type": "meal",
                        "elder_id": f"e{i % ELDERS}",
                    }
                    for i in range(1000)
                ]
            }
        )

    async def one(_: int) -> None:
        async with maker() as session:
            await batches.post_batch(session, worker, body)

    body = batch()
    await one(0)  # warm-up
    bodies = [batch() for _ in range(rounds)]
    latencies: list[float] = []
    start = time.perf_counter()
    for b in bodies:  # one client: the batch is the unit of concurrency
        body = b
        t0 = time.perf_counter()
        await one(0)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    await engine.dispose()
    return rounds * 1000 / elapsed, latencies


async def main() -> None:
    async with bench_stack() as stack:
        pgbench_url = pgbench_init(stack)
        url = await prepare(stack, 40_000)
        ids = await pending_ids(url)
        # The machine's load swings within seconds, so pgbench and the use case take turns: each
        # round's ratio is taken under the same load, and the median ratio is the figure.
        baselines, rates, ratios, latencies = [], [], [], []
        cpu_rounds: list[dict[str, float]] = []
        pg = postgres_pids(stack)
        per_round = len(ids) // ROUNDS
        for n in range(ROUNDS):
            db, client, committed = cpu_seconds(pg), children_cpu_s(), await commits(pgbench_url)
            baselines.append(pgbench_tps(pgbench_url, DURATION_S))
            transactions = baselines[-1] * int(DURATION_S)
            pgbench_cpu = {
                "pgbench_postgres_ms": (cpu_seconds(pg) - db) * 1000 / transactions,
                "pgbench_client_ms": (children_cpu_s() - client) * 1000 / transactions,
                "pgbench_commits_per_s": (await commits(pgbench_url) - committed) / int(DURATION_S),
            }
            tps, lat, cpu = await confirm_usecase(url, ids[n * per_round : (n + 1) * per_round], DURATION_S, pg)
            rates.append(tps)
            latencies += lat
            ratios.append(tps / baselines[-1])
            cpu_rounds.append({**pgbench_cpu, **cpu})
            print(
                f"round {n + 1} (load {os.getloadavg()[0]:.1f}): pgbench {baselines[-1]:,.0f} tps, PostgreSQL "
                f"{pgbench_cpu['pgbench_postgres_ms']:.3f} ms/tx, client {pgbench_cpu['pgbench_client_ms']:.3f} ms/tx, "
                f"{pgbench_cpu['pgbench_commits_per_s']:,.0f} commits/s | use case {tps:,.0f} tps, ratio {ratios[-1]:.3f}, "
                f"Python {cpu['python_ms']:.3f} ms, PostgreSQL {cpu['postgres_ms']:.3f} ms per confirmation, "
                f"{cpu['commits_per_s']:,.0f} commits/s",
                flush=True,
            )
        median_ratio = statistics.median(ratios)
        baseline = statistics.median(baselines)
        record(
            "timebank_confirm_usecase",
            baseline * median_ratio,
            "tps",
            "pgbench tpcb-like -c 8 -j 2 (scale 10)",
            baseline,
            higher_is_better=True,
            target=">= 0.5 x pgbench",
            extra={
                **summary_ms(latencies),
                "concurrency": CONCURRENCY,
                "rounds": ROUNDS,
                "note": "value = median pgbench tps x median per-round ratio",
                "per-round use case tps": [round(r) for r in rates],
                "per-round pgbench tps": [round(b) for b in baselines],
                "per-round ratios": [round(r, 3) for r in ratios],
                "per-round CPU ms per transaction": [{k: round(v, 3) for k, v in r.items()} for r in cpu_rounds],
            },
        )
        tps, lat, http_cpu = await confirm_http(stack, url)
        record(
            "timebank_confirm_http",
            tps,
            "tps",
            "pgbench tpcb-like -c 8 -j 2 (scale 10)",
            baseline,
            higher_is_better=True,
            extra={
                **summary_ms(lat),
                "concurrency": CONCURRENCY,
                "server": "uvicorn x1",
                "CPU ms per confirmation": {k: round(v, 3) for k, v in http_cpu.items()},
            },
        )
        tps, lat = await batch_usecase(url)
        record(
            "timebank_batch_usecase",
            tps,
            "transfers/s",
            "pgbench tpcb-like -c 8 -j 2 (scale 10)",
            baseline,
            higher_is_better=True,
            target=">= 3 x pgbench",
            extra={**summary_ms(lat), "transfers_per_batch": 1000, "note": "latency is per batch"},
        )


if __name__ == "__main__":
    asyncio.run(main())
