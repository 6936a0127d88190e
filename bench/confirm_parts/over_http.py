"""The confirmation over HTTP, under wrk: the time bank's own app (one uvicorn worker, its relay
publishing each confirmation's event), the lean twin of `bench/lean_routes.py` (FastAPI, an
asyncpg pool, the same `tb_confirm_service` call; nothing relays its rows) and the bare twin of
`bare_route.py` (the lean twin's work as a plain ASGI callable, no framework), the service on its
own database and the twins on theirs, each request a different pending transfer with a fresh
transfer id.

wrk, not an in-process client: like pgbench's, its client costs little CPU (it is printed), so the
two cores go to the server and PostgreSQL on both sides of the ratio.
"""

from __future__ import annotations

import os
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.confirm_parts.ledger_setup import CONCURRENCY, children_cpu_s, commits, wal_records
from bench.gateway_get import Server, cpu_seconds, uvicorn_process
from bench.wrk_load import Call, wrk, wrk_script
from tests.support.stack import TestStack


@dataclass
class HttpSide:
    """One server answering confirmations: the path (with `{id}`), the database it writes to."""

    name: str
    server: Server
    path: str
    database_url: str


async def start_servers(stack: TestStack, service_db: str, lean_db: str, work: Path, servers: AsyncExitStack) -> list[HttpSide]:
    """The service, the lean twin and the bare twin, each one uvicorn worker on uvloop."""
    env = {
        "TIMEBANK_DATABASE_URL": service_db,
        "TIMEBANK_JWKS_URL": stack.jwks_url,
        "TIMEBANK_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "TIMEBANK_KAFKA_NAMESPACE": "bench.",
        "TIMEBANK_LOG_LEVEL": "WARNING",
        "TIMEBANK_DB_POOL_SIZE": str(CONCURRENCY + 2),
        "TIMEBANK_EXPIRY_JOB_EVERY_S": "3600",
    }
    service = await servers.enter_async_context(
        uvicorn_process("timebank", "services.timebank.app:create_app", env, work / "timebank.log")
    )
    lean_env = {"LEAN_DATABASE_URL": lean_db, "LEAN_JWKS_URL": stack.jwks_url}
    lean = await servers.enter_async_context(
        uvicorn_process("lean", "bench.lean_routes:create_lean_app", lean_env, work / "lean.log")
    )
    bare = await servers.enter_async_context(
        uvicorn_process("bare", "bench.confirm_parts.bare_route:create_bare_app", lean_env, work / "bare.log")
    )
    return [
        HttpSide("service", service, "/transfers/{id}/confirm", service_db),
        HttpSide("lean twin", lean, "/timebank/transfers/{id}/confirm", lean_db),
        HttpSide("bare twin", bare, "/timebank/transfers/{id}/confirm", lean_db),
    ]


def confirmations(side: HttpSide, token: str, ids: list[uuid.UUID]) -> Call:
    """Each request confirms the next pending transfer of `ids`, with its own transfer id."""
    return Call("POST", side.server.url + side.path, token, ids=tuple(str(i) for i in ids))


async def confirm_over_http(
    side: HttpSide,
    token: str,
    warm: list[uuid.UUID],
    timed: list[uuid.UUID],
    duration_s: float,
    pg: list[int],
    work: Path,
    others: list[HttpSide],
) -> dict[str, float]:
    """One second of confirmations of `warm`, then `duration_s` of `timed`, with the CPU per
    confirmation of the server, PostgreSQL and wrk, and what the other servers spent meanwhile
    (the service's relay, which has nothing of the twin's to publish: each has its own database)."""
    warm_up = confirmations(side, token, warm)
    await wrk(warm_up, 1, wrk_script(work, warm_up), CONCURRENCY)
    call = confirmations(side, token, timed)
    script = wrk_script(work, call)
    server, db, client = cpu_seconds(side.server.pids), cpu_seconds(pg), children_cpu_s()
    idle = sum(cpu_seconds(o.server.pids) for o in others)
    committed, logged = await commits(side.database_url), await wal_records(side.database_url)
    ran = await wrk(call, duration_s, script, CONCURRENCY)
    rps, done, errors, p50 = ran["rps"], ran["requests"], ran["errors"], ran["p50_ms"]
    n = max(1.0, done)
    # Only confirmations count: a refused request (a side that ran past its pending transfers) is
    # not one, and answers faster than a confirmation, so it must not lift the side's rate.
    figures = {
        "tps": rps * (done - errors) / n,
        "errors": errors,
        "p50_ms": p50,
        "python_ms": (cpu_seconds(side.server.pids) - server) * 1000 / n,
        "postgres_ms": (cpu_seconds(pg) - db) * 1000 / n,
        "client_ms": (children_cpu_s() - client) * 1000 / n,
        "others_ms": (sum(cpu_seconds(o.server.pids) for o in others) - idle) * 1000 / n,
        "commits_per_s": (await commits(side.database_url) - committed) / duration_s,
        "wal_records": (await wal_records(side.database_url) - logged) / n,
    }
    os.remove(script)
    return figures
