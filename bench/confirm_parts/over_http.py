"""The confirmation over HTTP, under wrk: the time bank's own app (one uvicorn worker, its relay
publishing each confirmation's event) and the lean twin of `bench/lean_routes.py` (FastAPI, an
asyncpg pool, the same `tb_confirm_service` call; nothing relays its rows), each on its own
database, each request a different pending transfer with a fresh transfer id.

wrk, not an in-process client: like pgbench's, its client costs little CPU (it is printed), so the
two cores go to the server and PostgreSQL on both sides of the ratio.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.confirm_parts.ledger_setup import CONCURRENCY, children_cpu_s, commits, wal_records
from bench.gateway_get import Server, cpu_seconds, uvicorn_process
from tests.support.stack import TestStack


@dataclass
class HttpSide:
    """One server answering confirmations: the path (with `{id}`), the database it writes to."""

    name: str
    server: Server
    path: str
    database_url: str


async def start_servers(stack: TestStack, service_db: str, lean_db: str, work: Path, servers: AsyncExitStack) -> list[HttpSide]:
    """The service and the lean twin, each one uvicorn worker on uvloop."""
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
    return [
        HttpSide("service", service, "/transfers/{id}/confirm", service_db),
        HttpSide("lean twin", lean, "/timebank/transfers/{id}/confirm", lean_db),
    ]


def wrk_script(work: Path, path: str, token: str, ids: list[uuid.UUID]) -> Path:
    """Each request confirms the next pending transfer of `ids`, with its own transfer id."""
    head, _, tail = path.partition("{id}")
    prefix = str(uuid.uuid4())[:24]  # this run's transfer ids: a random prefix and a counter
    script = work / f"wrk-{prefix}.lua"
    script.write_text(
        "\n".join(
            [
                'wrk.method = "POST"',
                f'wrk.headers["Authorization"] = "Bearer {token}"',
                'wrk.headers["Content-Type"] = "application/json"',
                "ids = {" + ",".join(f'"{i}"' for i in ids) + "}",
                "n = 0",
                "request = function()",
                "  n = n + 1",
                "  local id = ids[((n - 1) % #ids) + 1]",
                f"  local body = '{{\"id\":\"{prefix}' .. string.format('%012x', n) .. '\"}}'",
                f'  return wrk.format(nil, "{head}" .. id .. "{tail}", nil, body)',
                "end",
                "",
            ]
        )
    )
    return script


async def wrk(url: str, script: Path, duration_s: float) -> tuple[float, float, float, float]:
    """Requests/s, requests, non-2xx responses and p50 (ms) of one wrk run of CONCURRENCY connections."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{CONCURRENCY}", f"-d{round(duration_s)}s", "--latency", "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out = (await proc.communicate())[0].decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert rps and total, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return (
        float(rps.group(1)),
        float(total.group(1)),
        float(bad.group(1)) if bad else 0.0,
        float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
    )


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
    url = side.server.url
    await wrk(url, wrk_script(work, side.path, token, warm), 1)
    script = wrk_script(work, side.path, token, timed)
    server, db, client = cpu_seconds(side.server.pids), cpu_seconds(pg), children_cpu_s()
    idle = sum(cpu_seconds(o.server.pids) for o in others)
    committed, logged = await commits(side.database_url), await wal_records(side.database_url)
    rps, done, errors, p50 = await wrk(url, script, duration_s)
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
