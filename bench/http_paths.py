"""The everyday routes, each against a lean FastAPI route doing the same work, under wrk.

For each route, the service's real app (its own factory, its own migrated database, one uvicorn
worker) is measured beside a lean baseline (`bench/lean_routes.py`: FastAPI, an asyncpg pool, the
same SQL, the same response model, the kit's cached token check; one uvicorn worker too, on the
same database), both under `wrk` (Debian package `wrk`, the benches' one system tool) with the same
connections and token, in alternated turns for `BENCH_ROUNDS` rounds. The figure is the median of
the per-round ratios (service ÷ lean req/s); beside it, each side's CPU time per request (user +
system of the serving process, from /proc/<pid>/stat, over the timed run): on a machine shared
with other work, the steadier figure.

Routes (result `http_<key>`):
- `timebank_members_me`: a resident's own membership and balance (`GET /members/me`);
- `timebank_passbook`: their passbook's first page (`GET /members/me/passbook`, 60 posted transfers);
- `property_tickets`: a steward's `GET /tickets` (the community's, newest first, with photo ids),
  50,000 tickets in the database;
- `timebank_confirm`: a community worker's `POST /transfers/{id}/confirm` of a pending service
  transfer (the use case's one PL/pgSQL call, `tb_confirm_service`, with its outbox row), each
  request a different pending transfer (CONFIRM_PENDINGS prepared as `bench/timebank_confirm.py`
  does) and a fresh transfer id;
- `governance_points`: a resident's points (`GET /me/points`: the account, the points expiring
  within 30 days);
- `gateway_members_me`: the same `GET /members/me` through the gateway (its real lifespan), against
  the lean route direct (target ≥ 0.36 ×: 0.6 × the gateway's own target over direct).

`BENCH_ROUTES=timebank_members_me,...` measures only those; `BENCH_DURATION_S` (default 4),
`BENCH_ROUNDS` (default 3), `BENCH_CONNECTIONS` (default 16).

    make bench NAME=http          # or: .venv/bin/python -m bench.http_paths
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text

from bench.gateway_get import Server, cpu_seconds, gateway_env, gateway_settled, uvicorn_process
from bench.harness import bench_stack, record
from services.kit.db import plain_url
from tests.support.stack import TestStack

COMMUNITY = "bench-community"  # created in the bench's gateway database before it starts
CONFIRM_COMMUNITY = "bench"  # bench/timebank_confirm.py's
RESIDENT = "00000000-0000-0000-0000-0000000000be"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 16))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", 4))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
WARM_UP_S = 1
PASSBOOK_TRANSFERS = 60
TICKETS = 50_000
STEWARDS = 50
SERVICE_TARGET = "≥ 0.6 × lean"
CONFIRM_PENDINGS = 32_000
CONFIRMS_PER_SECOND = 1000  # the most one wrk run may use: each run gets its own pending transfers


# --- load -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    token: str
    body: dict[str, Any] | None = None
    # For a path with `{id}`: the ids this call may use, one per request, and the body's `id` made
    # fresh per request (a confirmation of each pending transfer, each with its own transfer id).
    ids: tuple[str, ...] = ()


def wrk_script(work: Path, req: Call) -> Path:
    script = work / f"wrk-{uuid.uuid4().hex}.lua"
    lines = [f'wrk.method = "{req.method}"', 'wrk.headers["Authorization"] = "Bearer ' + req.token + '"']
    if req.body is not None:
        lines += ['wrk.headers["Content-Type"] = "application/json"', f"wrk.body = [[{json.dumps(req.body)}]]"]
    if req.ids:
        path = "/" + req.url.split("/", 3)[3]
        head, _, tail = path.partition("{id}")
        prefix = str(uuid.uuid4())[:24]  # this run's transfer ids: a random prefix and a counter
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            "ids = {" + ",".join(f'"{i}"' for i in req.ids) + "}",
            "n = 0",
            "request = function()",
            "  n = n + 1",
            "  local id = ids[((n - 1) % #ids) + 1]",
            f"  local body = '{{\"id\":\"{prefix}' .. string.format('%012x', n) .. '\"}}'",
            f'  return wrk.format(nil, "{head}" .. id .. "{tail}", nil, body)',
            "end",
        ]
    script.write_text("\n".join(lines) + "\n")
    return script


async def wrk(req: Call, duration_s: float, script: Path) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{round(duration_s)}s",
        "--latency",
        "-s",
        str(script),
        req.url,
        stdout=asyncio.subprocess.PIPE,
    )
    out = (await proc.communicate())[0].decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert rps and total, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": float(rps.group(1)),
        "requests": float(total.group(1)),
        "errors": float(bad.group(1)) if bad else 0.0,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan"),
    }


async def measure(run: Running, side: Side, servers: list[Server], script: Path) -> dict[str, Any]:
    req = run.call(side, WARM_UP_S)
    await wrk(req, WARM_UP_S, script if not req.ids else wrk_script(run.work, req))
    before = {s.name: cpu_seconds(s.pids) for s in servers}
    req = run.call(side, DURATION_S)
    figures = await wrk(req, DURATION_S, script if not req.ids else wrk_script(run.work, req))
    n = max(1.0, figures["requests"])
    return {**figures, "cpu_ms": {s.name: round((cpu_seconds(s.pids) - before[s.name]) * 1000 / n, 3) for s in servers}}


# --- routes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the servers that serve it (the first is the one addressed), the
    request, and whose token it carries."""

    servers: tuple[str, ...]
    path: str
    method: str = "GET"
    body: dict[str, Any] | None = None
    caller: str = "resident"


@dataclass
class Route:
    key: str
    service: Side
    lean: Side
    target: str = SERVICE_TARGET
    rounds: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Running:
    """The servers of one run, by name, and the callers' tokens."""

    stack: TestStack
    work: Path
    tokens: dict[str, str]
    servers: dict[str, Server] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # transfers still to confirm, shared by both sides

    def call(self, side: Side, seconds: float = 0) -> Call:
        """The side's request; for a path with `{id}`, with enough unused ids for `seconds` of load."""
        url = self.servers[side.servers[0]].url + side.path
        if "{id}" not in side.path:
            return Call(side.method, url, self.tokens[side.caller], side.body)
        n = max(1, round(seconds * CONFIRMS_PER_SECOND))
        ids, self.pending[:n] = tuple(self.pending[:n]), []
        return Call(side.method, url, self.tokens[side.caller], side.body, ids)

    def processes(self, side: Side) -> list[Server]:
        return [self.servers[name] for name in side.servers]


async def seed_timebank(url: str, token: str) -> None:
    """The resident joins as elder and volunteer; the pool pays them PASSBOOK_TRANSFERS services."""
    from services.kit.auth import Principal
    from services.kit.db import make_engine, make_sessionmaker
    from services.timebank import batches, ledger, transfers
    from services.timebank.schemas import BatchIn, FundingIn

    async with httpx.AsyncClient(base_url=os.environ["BENCH_TIMEBANK_URL"], headers={"Authorization": f"Bearer {token}"}) as c:
        (await c.post("/members", json={"volunteer": True, "elder": True})).raise_for_status()
    engine = make_engine(url, pool_size=2)
    worker = Principal(subject="bench-worker", roles=frozenset({"community_worker"}), community=COMMUNITY)
    async with make_sessionmaker(engine)() as s:
        async with s.begin():
            await (await s.connection()).execute(text("UPDATE tb_members SET birth_date = '1950-01-01'"))
        await transfers.fund_pool(s, worker, FundingIn(id=uuid.uuid4(), minutes=100_000, reason="bench"))
        account = str(ledger.member_account_id(COMMUNITY, RESIDENT))
        pool = str(ledger.pool_account_id(COMMUNITY))
        legs = [
            {
                "id": str(uuid.uuid4()),
                "kind": "service",
                "debit_account_id": pool,
                "credit_account_id": account,
                "minutes": 30,
                "service_type": "other",
                "elder_id": RESIDENT,
            }
            for _ in range(PASSBOOK_TRANSFERS)
        ]
        await batches.post_batch(s, worker, BatchIn.model_validate({"transfers": legs}))
    await engine.dispose()


ServerStarter = Callable[[Running, AsyncExitStack], Awaitable[None]]


async def start_service(
    run: Running, servers: AsyncExitStack, service: str, *, db: str | None = None, name: str | None = None, **settings: str
) -> str:
    """The service (its app factory, a freshly migrated database unless `db` is given) and its lean
    twin on the same database, each one uvicorn worker, as `name` and `lean-<name>`; returns the
    database's URL."""
    stack = run.stack
    if db is None:
        db = await stack.fresh_database(service)
    servers.push_async_callback(stack.drop_database, db)
    name = name or service
    prefix = service.upper() + "_"
    env = {
        prefix + "DATABASE_URL": db,
        prefix + "REDIS_URL": stack.redis_url,
        prefix + "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        prefix + "KAFKA_NAMESPACE": "bench.",
        prefix + "JWKS_URL": stack.jwks_url,
        **{prefix + name.upper(): value for name, value in settings.items()},
    }
    run.servers[name] = await servers.enter_async_context(
        uvicorn_process(name, f"services.{service}.app:create_app", env, run.work / f"{name}.log")
    )
    lean_env = {"LEAN_DATABASE_URL": db, "LEAN_JWKS_URL": stack.jwks_url}
    run.servers["lean-" + name] = await servers.enter_async_context(
        uvicorn_process("lean-" + name, "bench.lean_routes:create_lean_app", lean_env, run.work / f"lean-{name}.log")
    )
    return db


async def start_timebank_confirm(run: Running, servers: AsyncExitStack) -> None:
    """Members, a funded pool and CONFIRM_PENDINGS pending service transfers, as the confirmation
    benchmark prepares them (its community: the worker's token names it)."""
    from bench import timebank_confirm

    db = await timebank_confirm.prepare(run.stack, CONFIRM_PENDINGS)
    run.pending = [str(i) for i in await timebank_confirm.pending_ids(db)]
    await start_service(run, servers, "timebank", db=db, name="timebank-confirm", expiry_job_every_s="3600")


async def start_timebank(run: Running, servers: AsyncExitStack) -> None:
    db = await start_service(run, servers, "timebank", expiry_job_every_s="3600")
    os.environ["BENCH_TIMEBANK_URL"] = run.servers["timebank"].url
    await seed_timebank(db, run.tokens["resident"])


async def start_property(run: Running, servers: AsyncExitStack) -> None:
    """TICKETS tickets over STEWARDS stewards, loaded by SQL as bench/property_queue.py does."""
    db = await start_service(run, servers, "property", sla_check_interval_s="3600")  # its sweep is not the request path
    conn = await asyncpg.connect(plain_url(db))
    try:
        await conn.execute(
            """
            INSERT INTO tickets (id, community, resident_id, household_id, building_id, category, quantity,
                description, priority, status, assignee_id, payment_status, created_at, response_due_at,
                resolution_due_at, due_at, paused_minutes, hurry_count)
            SELECT gen_random_uuid()::text, $1, 'r', 'h', 'b', 'repair', 1, 'x', 'normal',
                (ARRAY['assigned','accepted','in_progress','completed','closed'])[1 + (g / $2) % 5],
                'steward-' || (g % $2), 'none', now() - (g || ' minutes')::interval,
                now() + ((g * 7919) % 100000 || ' minutes')::interval,
                now() + ((g * 7919) % 100000 + 600 || ' minutes')::interval,
                now() + ((g * 7919) % 100000 || ' minutes')::interval, 0, 0
            FROM generate_series(1, $3) AS g""",
            COMMUNITY,
            STEWARDS,
            TICKETS,
        )
        await conn.execute("ANALYZE tickets")
    finally:
        await conn.close()


async def start_governance(run: Running, servers: AsyncExitStack) -> None:
    """The resident's points account and a few lots, one expiring within 30 days."""
    db = await start_service(run, servers, "governance")
    conn = await asyncpg.connect(plain_url(db))
    try:
        await conn.execute("INSERT INTO gov_accounts (community, resident_id, balance) VALUES ($1, $2, 300)", COMMUNITY, RESIDENT)
        await conn.execute(
            "INSERT INTO gov_lots (community, resident_id, points, remaining, expires_at) "
            "SELECT $1, $2, 100, 100, now() + (g * 20 || ' days')::interval FROM generate_series(1, 3) AS g",
            COMMUNITY,
            RESIDENT,
        )
    finally:
        await conn.close()


async def start_gateway(run: Running, servers: AsyncExitStack) -> None:
    from gateway.migrate import upgrade_gateway_database
    from gateway.operator import put_community_at

    db = await run.stack.empty_database("gateway_bench")
    servers.push_async_callback(run.stack.drop_database, db)
    await upgrade_gateway_database(db)
    await put_community_at(db, COMMUNITY, "bench", "331102")
    env = gateway_env(run.stack, db, {"timebank": run.servers["timebank"].url})
    gateway = await servers.enter_async_context(
        uvicorn_process("gateway", "gateway.app:create_app", env, run.work / "gateway.log")
    )
    await gateway_settled(gateway.url)
    run.servers["gateway"] = gateway


ROUTES = [
    Route("timebank_members_me", Side(("timebank",), "/members/me"), Side(("lean-timebank",), "/timebank/members/me")),
    Route(
        "timebank_passbook",
        Side(("timebank",), "/members/me/passbook"),
        Side(("lean-timebank",), "/timebank/members/me/passbook"),
    ),
    Route(
        "property_tickets",
        Side(("property",), "/tickets", caller="steward"),
        Side(("lean-property",), "/property/tickets", caller="steward"),
    ),
    Route(
        "timebank_confirm",
        Side(("timebank-confirm",), "/transfers/{id}/confirm", "POST", caller="confirmer"),
        Side(("lean-timebank-confirm",), "/timebank/transfers/{id}/confirm", "POST", caller="confirmer"),
    ),
    Route("governance_points", Side(("governance",), "/me/points"), Side(("lean-governance",), "/governance/me/points")),
    Route(
        "gateway_members_me",
        Side(("gateway", "timebank"), "/api/timebank/members/me"),
        Side(("lean-timebank",), "/timebank/members/me"),
        target="≥ 0.36 × lean direct",
    ),
]


STARTERS: dict[str, list[ServerStarter]] = {
    "timebank_members_me": [start_timebank],
    "timebank_passbook": [start_timebank],
    "timebank_confirm": [start_timebank_confirm],
    "property_tickets": [start_property],
    "governance_points": [start_governance],
    "gateway_members_me": [start_timebank, start_gateway],
}


async def check_answers(run: Running, route: Route) -> None:
    """Both sides answer 2xx with the same body shape before any load."""
    bodies = []
    for req in (run.call(route.service), run.call(route.lean)):
        url, body = req.url, req.body
        if req.ids:
            url, body = url.replace("{id}", req.ids[0]), {"id": str(uuid.uuid4())}
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {req.token}"}) as client:
            answer = await client.request(req.method, url, json=body)
        assert answer.is_success, (req.url, answer.status_code, answer.text)
        body = answer.json()
        bodies.append(sorted(body) if isinstance(body, dict) else type(body).__name__)
    assert bodies[0] == bodies[1], (route.key, bodies)


def report(route: Route) -> None:
    ratios = [r["service"]["rps"] / r["lean"]["rps"] for r in route.rounds]
    service = [r["service"]["rps"] for r in route.rounds]
    baseline = [r["lean"]["rps"] for r in route.rounds]
    cpu = {
        side: {
            name: round(statistics.median([r[side]["cpu_ms"][name] for r in route.rounds]), 3)
            for name in route.rounds[0][side]["cpu_ms"]
        }
        for side in ("service", "lean")
    }
    ratio = statistics.median(ratios)
    record(
        f"http_{route.key}",
        statistics.median(service) * 1.0,
        "req/s",
        "lean FastAPI + asyncpg route",
        statistics.median(service) / ratio,
        higher_is_better=True,
        target=route.target,
        extra={
            "median_ratio": round(ratio, 3),
            "ratios": [round(x, 3) for x in ratios],
            "service_rps": [round(x) for x in service],
            "lean_rps": [round(x) for x in baseline],
            "cpu_ms_per_request": cpu,
            "p50_ms": {side: round(statistics.median([r[side]["p50_ms"] for r in route.rounds]), 2) for side in cpu},
            "errors": sum(r[side]["errors"] for r in route.rounds for side in cpu),
            "connections": CONNECTIONS,
            "duration_s": DURATION_S,
            "rounds": ROUNDS,
        },
    )


async def measure_round(run: Running, route: Route, scripts: dict[str, Path], lean_first: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    sides = [("service", route.service), ("lean", route.lean)]
    for name, side in reversed(sides) if lean_first else sides:
        result[name] = await measure(run, side, run.processes(side), scripts[name])
    service, lean_ = result["service"], result["lean"]
    print(
        f"  {route.key:<22} service {service['rps']:>6,.0f} req/s  lean {lean_['rps']:>6,.0f} req/s  ratio "
        f"{service['rps'] / lean_['rps']:.3f}  CPU ms/request {service['cpu_ms']} vs {lean_['cpu_ms']}",
        flush=True,
    )
    return result


async def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    wanted = [k for k in os.environ.get("BENCH_ROUTES", "").split(",") if k] or list(STARTERS)
    chosen = [r for r in ROUTES if r.key in wanted]
    async with bench_stack() as stack, AsyncExitStack() as servers:
        tokens = {
            "resident": stack.token(RESIDENT, "resident", community=COMMUNITY, ttl_s=3600),
            "steward": stack.token("steward-7", "steward", community=COMMUNITY, ttl_s=3600),
            "confirmer": stack.token("bench-worker", "community_worker", community=CONFIRM_COMMUNITY, ttl_s=3600),
        }
        run = Running(stack, Path(tempfile.mkdtemp(prefix="bench-http-")), tokens)
        started: list[ServerStarter] = []
        for route in chosen:
            for starter in STARTERS[route.key]:
                if starter not in started:
                    await starter(run, servers)
                    started.append(starter)
        scripts = {}
        for route in chosen:
            await check_answers(run, route)
            scripts[route.key] = {
                name: wrk_script(run.work, run.call(side)) for name, side in (("service", route.service), ("lean", route.lean))
            }
        print(f"{len(chosen)} routes, {ROUNDS} rounds of {DURATION_S:g} s each side, {CONNECTIONS} connections (wrk)", flush=True)
        for n in range(ROUNDS):
            print(f"round {n + 1} (load average {os.getloadavg()[0]:.2f})", flush=True)
            for route in chosen:
                route.rounds.append(await measure_round(run, route, scripts[route.key], lean_first=n % 2 == 1))
    print()
    for route in chosen:
        report(route)


if __name__ == "__main__":
    asyncio.run(main())
