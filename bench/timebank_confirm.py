"""Confirmed time-bank transfers per second, beside `pgbench -b tpcb-like` on the same PostgreSQL.

Each round runs, one after the other under the same load: pgbench (-c 8 -j 2, scale 10), then
8 concurrent confirmations, each with all its checks (id lock and replay lookup, authorization,
row locks, balance limits, storage cap) and its outbox event, five ways:
- `timebank_confirm_usecase`: `resolution.confirm` called directly (no HTTP). Target >= 0.5 x pgbench;
- `timebank_confirm_raw`: the same `tb_confirm_service` call with the same arguments
  (`resolution.confirmation_args`) from a bare asyncpg pool: the floor of the Python side;
- `timebank_confirm_http`: `POST /transfers/{id}/confirm` of the service (one uvicorn worker, its
  relay publishing the events), under wrk with 8 connections. Target >= 0.35 x pgbench;
- `timebank_confirm_http_lean`: the lean twin of `bench/lean_routes.py` (FastAPI + an asyncpg pool
  making the same call, nothing relaying its rows), under the same wrk: what a FastAPI route can do
  on this machine;
- `timebank_confirm_http_bare`: the bare twin of `bench/confirm_parts/bare_route.py`, the lean
  twin's work (cached token check, UUID path, `ConfirmIn` body, the same call from an asyncpg pool,
  `TransferOut` JSON) as a plain ASGI callable under the same uvicorn (one worker, uvloop,
  httptools), no FastAPI and no Starlette: the floor of a one-worker Python HTTP confirmation, the
  bound of the HTTP figure.
Every figure is the median of its per-round ratios to that round's pgbench (the machine's load
swings within seconds), printed with each round's numbers. Then `timebank_batch_usecase`:
transfers per second through `batches.post_batch`, 1,000 linked transfers per transaction, one
client. Target >= 3 x pgbench.

Beside each figure, the CPU each transaction cost, read from /proc: PostgreSQL (the postmaster and
its backends) and the Python that sent it (this process in-process, the server over HTTP; pgbench's
and wrk's clients from `getrusage`), with commits per second from `pg_stat_database` and WAL
records per transaction from `pg_stat_wal` (a count the machine's load does not move). A machine
whose PostgreSQL is fast and whose Python is slow moves the ratio; these figures show which side
moved.

The pending transfers to confirm are prepared in bulk by SQL, consistent with the ledger (bench
set-up, not the code under test); the service, and the use case with the others, each have their
own database. The bench runs on uvloop, as the services do (`BENCH_LOOP=asyncio`
for the standard loop). `BENCH_DURATION_S` (6), `BENCH_ROUNDS` (3). Run: `.venv/bin/python -m bench.timebank_confirm`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from bench.confirm_parts.ledger_setup import (
    COMMUNITY,
    CONCURRENCY,
    ELDERS,
    VOLUNTEERS,
    WORKER,
    add_to_totals,
    children_cpu_s,
    commits,
    pending_ids,
    pgbench_init,
    pgbench_tps,
    postgres_pids,
    prepare,
    wal_records,
)
from bench.confirm_parts.over_http import confirm_over_http, start_servers
from bench.gateway_get import cpu_seconds
from bench.harness import bench_stack, record, summary_ms
from services.kit.db import make_engine, make_sessionmaker, plain_url
from services.timebank import batches, ledger, resolution
from services.timebank.schemas import BatchIn, ConfirmIn

__all__ = ["COMMUNITY", "ELDERS", "add_to_totals", "pending_ids", "pgbench_init", "pgbench_tps", "prepare"]

DURATION_S = float(os.environ.get("BENCH_DURATION_S", 6))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
WARM_UP = 200
# The most confirmations per second each way may use: each gets its own pending transfers.
BUDGET_PER_S = {"use case": 2_500, "raw asyncpg": 3_500, "service": 2_000, "lean twin": 2_500, "bare twin": 3_000}
HTTP = {"service", "lean twin", "bare twin"}
PGBENCH = "pgbench tpcb-like -c 8 -j 2 (scale 10)"


class Pendings:
    """A database's pending transfers, handed out in order: none is confirmed twice."""

    def __init__(self, ids: list[uuid.UUID]):
        self.ids = ids

    def take(self, n: int) -> list[uuid.UUID]:
        taken, self.ids = self.ids[:n], self.ids[n:]
        assert len(taken) == n, "the bench prepared too few pending transfers"
        return taken


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


async def timed(url: str, one: Any, warm: list[uuid.UUID], ids: list[uuid.UUID], pg: list[int]) -> dict[str, Any]:
    """Warm up on `warm`, then confirm `ids` for DURATION_S, with this process's and PostgreSQL's
    CPU per confirmation."""
    await drive(one, warm, 60)
    committed, logged = await commits(url), await wal_records(url)
    py, db = time.process_time(), cpu_seconds(pg)
    done, elapsed, lat = await drive(one, ids, DURATION_S)
    py, db = time.process_time() - py, cpu_seconds(pg) - db
    return {
        "tps": done / elapsed,
        "python_ms": py * 1000 / max(1, done),
        "postgres_ms": db * 1000 / max(1, done),
        "commits_per_s": (await commits(url) - committed) / elapsed,
        "wal_records": (await wal_records(url) - logged) / max(1, done),
        "latencies": lat,
    }


async def confirm_usecase(url: str, warm: list[uuid.UUID], ids: list[uuid.UUID], pg: list[int]) -> dict[str, Any]:
    engine = make_engine(url, pool_size=CONCURRENCY + 2)
    maker = make_sessionmaker(engine)

    async def one(pending: uuid.UUID) -> None:
        # A session per confirmation, made as the service's `get_session` makes a request's: not
        # closed afterwards, as it holds no connection once the one statement is done (closing it
        # is a task and an expunge per call that no request pays).
        await resolution.confirm(maker(), WORKER, pending, ConfirmIn(id=uuid.uuid4()))

    try:
        return await timed(url, one, warm, ids, pg)
    finally:
        await engine.dispose()


async def confirm_raw(url: str, warm: list[uuid.UUID], ids: list[uuid.UUID], pg: list[int]) -> dict[str, Any]:
    """The use case's one statement, with its arguments built as the use case builds them, on a
    bare asyncpg connection per concurrent caller: no session, no pool (asyncpg's pool would send
    its reset statement after each), no refusal handling (none happens here)."""
    connections = [await asyncpg.connect(plain_url(url)) for _ in range(CONCURRENCY)]
    free = list(connections)

    async def one(pending: uuid.UUID) -> None:
        conn = free.pop()
        try:
            _, args = resolution.confirmation_args(WORKER, pending, ConfirmIn(id=uuid.uuid4()))
            row = await conn.fetchrow(resolution._CONFIRM_SERVICE, *args)
            assert row is not None and row["outcome"] == "posted", row
        finally:
            free.append(conn)

    try:
        return await timed(url, one, warm, ids, pg)
    finally:
        for conn in connections:
            await conn.close()


async def batch_usecase(url: str, pg: list[int], rounds: int = 12) -> tuple[float, list[float], dict[str, float]]:
    engine = make_engine(url, pool_size=4)
    maker = make_sessionmaker(engine)
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

    async def one(body: BatchIn) -> None:
        async with maker() as session:
            await batches.post_batch(session, WORKER, body)

    await one(batch())  # warm-up
    bodies = [batch() for _ in range(rounds)]
    latencies: list[float] = []
    py, db = time.process_time(), cpu_seconds(pg)
    start = time.perf_counter()
    for body in bodies:  # one client: the batch is the unit of concurrency
        t0 = time.perf_counter()
        await one(body)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    cpu = {
        "python_ms_per_batch": (time.process_time() - py) * 1000 / rounds,
        "postgres_ms_per_batch": (cpu_seconds(pg) - db) * 1000 / rounds,
    }
    await engine.dispose()
    return rounds * 1000 / elapsed, latencies, cpu


def show(name: str, f: dict[str, Any], baseline: float) -> str:
    line = f"  {name:<12} {f['tps']:>7,.0f} tps  ratio {f['tps'] / baseline:.3f}  Python {f['python_ms']:.3f} ms"
    line += f"  PostgreSQL {f['postgres_ms']:.3f} ms"
    if "client_ms" in f:
        line += f"  wrk {f['client_ms']:.3f} ms  other server {f['others_ms']:.3f} ms  non-2xx {f['errors']:.0f}"
    return line + f"  {f['commits_per_s']:,.0f} commits/s  {f['wal_records']:.1f} WAL records"


def cpu_of(f: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in f.items() if k.endswith("_ms") or k in ("commits_per_s", "wal_records")}


async def main() -> None:
    async with bench_stack() as stack, AsyncExitStack() as servers:
        work = Path(servers.enter_context(tempfile.TemporaryDirectory(prefix="bench-confirm-")))
        pgbench_url = pgbench_init(stack)
        # Each round: a warm-up (WARM_UP in-process, a second's budget twice over HTTP) and the timed part.
        per_round = {k: int(v * DURATION_S) + (2 * v if k in HTTP else WARM_UP) for k, v in BUDGET_PER_S.items()}
        shared = {"use case", "raw asyncpg", "lean twin", "bare twin"}  # one database; the service has its own
        url = await prepare(stack, ROUNDS * sum(v for k, v in per_round.items() if k in shared))
        service_url = await prepare(stack, ROUNDS * per_round["service"])
        pendings = {url: Pendings(await pending_ids(url)), service_url: Pendings(await pending_ids(service_url))}
        pg = postgres_pids(stack)
        sides = await start_servers(stack, service_url, url, work, servers)
        token = stack.token(WORKER.subject, "community_worker", community=COMMUNITY, ttl_s=3600)
        print(f"{ROUNDS} rounds of {DURATION_S:g} s each way, {CONCURRENCY} concurrent confirmations", flush=True)
        baselines: list[float] = []
        figures: dict[str, list[dict[str, Any]]] = {k: [] for k in ["pgbench", *BUDGET_PER_S]}
        for n in range(ROUNDS):
            committed, logged = await commits(pgbench_url), await wal_records(pgbench_url)
            db, client = cpu_seconds(pg), children_cpu_s()
            baselines.append(pgbench_tps(pgbench_url, DURATION_S))
            transactions = baselines[-1] * int(DURATION_S)
            figures["pgbench"].append(
                {
                    "tps": baselines[-1],
                    "postgres_ms": (cpu_seconds(pg) - db) * 1000 / transactions,
                    "client_ms": (children_cpu_s() - client) * 1000 / transactions,
                    "commits_per_s": (await commits(pgbench_url) - committed) / int(DURATION_S),
                    "wal_records": (await wal_records(pgbench_url) - logged) / transactions,
                }
            )
            budget = {k: int(v * DURATION_S) for k, v in BUDGET_PER_S.items()}
            own = pendings[url]
            figures["use case"].append(await confirm_usecase(url, own.take(WARM_UP), own.take(budget["use case"]), pg))
            figures["raw asyncpg"].append(await confirm_raw(url, own.take(WARM_UP), own.take(budget["raw asyncpg"]), pg))
            for side in sides:
                ids = pendings[side.database_url]
                warm = ids.take(BUDGET_PER_S[side.name] * 2)
                others = [s for s in sides if s is not side]
                fig = await confirm_over_http(side, token, warm, ids.take(budget[side.name]), DURATION_S, pg, work, others)
                figures[side.name].append(fig)
            p = figures["pgbench"][-1]
            print(
                f"round {n + 1} (load {os.getloadavg()[0]:.1f})\n  pgbench      {p['tps']:>7,.0f} tps"
                f"  PostgreSQL {p['postgres_ms']:.3f} ms  client {p['client_ms']:.3f} ms  {p['commits_per_s']:,.0f} commits/s"
                f"  {p['wal_records']:.1f} WAL records",
                flush=True,
            )
            for name in BUDGET_PER_S:
                print(show(name, figures[name][-1], baselines[-1]), flush=True)
        baseline = statistics.median(baselines)
        names = {
            "use case": ("timebank_confirm_usecase", ">= 0.5 x pgbench"),
            "raw asyncpg": ("timebank_confirm_raw", None),
            "service": ("timebank_confirm_http", ">= 0.35 x pgbench"),
            "lean twin": ("timebank_confirm_http_lean", None),
            "bare twin": ("timebank_confirm_http_bare", None),
        }
        for name, (key, target) in names.items():
            rounds = figures[name]
            ratios = [f["tps"] / b for f, b in zip(rounds, baselines, strict=True)]
            extra: dict[str, Any] = {
                **(summary_ms([x for f in rounds for x in f["latencies"]]) if "latencies" in rounds[0] else {}),
                "concurrency": CONCURRENCY,
                "rounds": ROUNDS,
                "note": "value = median pgbench tps x median per-round ratio",
                "per-round tps": [round(f["tps"]) for f in rounds],
                "per-round pgbench tps": [round(b) for b in baselines],
                "per-round ratios": [round(r, 3) for r in ratios],
                "per-round CPU ms per confirmation": [cpu_of(f) for f in rounds],
                "per-round pgbench CPU ms per transaction": [cpu_of(f) for f in figures["pgbench"]],
            }
            if name in ("service", "bare twin"):
                lean = [f["tps"] / g["tps"] for f, g in zip(rounds, figures["lean twin"], strict=True)]
                extra["per-round ratio to the lean twin"] = [round(r, 3) for r in lean]
                extra["median ratio to the lean twin"] = round(statistics.median(lean), 3)
            record(
                key,
                baseline * statistics.median(ratios),
                "tps",
                PGBENCH,
                baseline,
                higher_is_better=True,
                target=target,
                extra=extra,
            )
        tps, lat, batch_cpu = await batch_usecase(url, pg)
        record(
            "timebank_batch_usecase",
            tps,
            "transfers/s",
            PGBENCH,
            baseline,
            higher_is_better=True,
            target=">= 3 x pgbench",
            extra={**summary_ms(lat), "transfers_per_batch": 1000, "note": "latency is per batch", **batch_cpu},
        )


if __name__ == "__main__":
    # The services run on uvloop (uvicorn's default when it is installed, as in the image), so the
    # use case is measured on it too; BENCH_LOOP=asyncio for the standard loop.
    if os.environ.get("BENCH_LOOP", "uvloop") == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())
