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
- `property_submit`: a resident files a repair ticket (`POST /tickets`, a fresh `Idempotency-Key`
  each, SUBMITTERS residents in turn): the key's claim, the resident, the daily count, the
  household, the building, its stewards' rosters, the SLA policy, the ticket routed to the steward
  on duty, its submission step, its outbox row and the key's stored answer, in one transaction; the
  lean twin (`bench/lean_filings.py`) sends the same statements through an asyncpg pool. The
  service's relay publishes the events from the same process (the twin's rows too, when it polls);
- `parking_free_spots`: a resident's free-spot search (`GET /free-spots`, a two-hour range four days
  ahead, 20 a page) over bench/parking_search.py's 5,000 spots, their windows and 100,000 bookings;
- `gateway_members_me`: the same `GET /members/me` through the gateway (its real lifespan), against
  the lean route direct (target ≥ 0.36 ×: 0.6 × the gateway's own target over direct).

Seeds are in `bench/http_seeds.py`, the wrk scripts in `bench/wrk_load.py`.
`BENCH_ROUTES=timebank_members_me,...` measures only those; `BENCH_DURATION_S` (default 4),
`BENCH_ROUNDS` (default 3), `BENCH_CONNECTIONS` (default 16).

    make bench NAME=http          # or: .venv/bin/python -m bench.http_paths
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench import http_seeds
from bench.gateway_get import Server, cpu_seconds, gateway_env, gateway_settled, uvicorn_process
from bench.harness import bench_stack, record
from bench.wrk_load import CONNECTIONS, Call, wrk, wrk_script
from tests.support.stack import TestStack

COMMUNITY = "bench-community"  # created in the bench's gateway database before it starts
CONFIRM_COMMUNITY = "bench"  # bench/timebank_confirm.py's
RESIDENT = "00000000-0000-0000-0000-0000000000be"
DURATION_S = float(os.environ.get("BENCH_DURATION_S", 4))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
WARM_UP_S = 1
TICKETS = 50_000
STEWARDS = 50
SERVICE_TARGET = "≥ 0.6 × lean"
CONFIRM_PENDINGS = 32_000
CONFIRMS_PER_SECOND = 1000  # the most one wrk run may use: each run gets its own pending transfers
SUBMITTERS = 64
TICKET = {"category": "repair", "description": "厨房水龙头漏水", "priority": "normal"}
FREE_SPOT_HOURS_AHEAD = 100  # the searched range: two hours, four days into the windows


# --- load ---------------------------------------------------------------------------------------------


async def measure(run: Running, side: Side, servers: list[Server], script: Path) -> dict[str, Any]:
    # A call that uses its ids or idempotency keys once gets a script of its own for each run.
    req = run.call(side, WARM_UP_S)
    await wrk(req, WARM_UP_S, script if not (req.ids or req.keyed) else wrk_script(run.work, req))
    before = {s.name: cpu_seconds(s.pids) for s in servers}
    req = run.call(side, DURATION_S)
    figures = await wrk(req, DURATION_S, script if not (req.ids or req.keyed) else wrk_script(run.work, req))
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
    caller: str = "resident"  # a name in `Running.tokens`; in `Running.rotations` too: callers in turn
    query: str = ""  # a name in `Running.queries`: a query string known once the data is loaded
    keyed: bool = False  # a fresh `Idempotency-Key` per request


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
    rotations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)

    def call(self, side: Side, seconds: float = 0) -> Call:
        """The side's request; for a path with `{id}`, with enough unused ids for `seconds` of load."""
        url = self.servers[side.servers[0]].url + side.path + self.queries.get(side.query, "")
        if "{id}" not in side.path:
            tokens = self.rotations.get(side.caller, ())
            return Call(side.method, url, self.tokens[side.caller], side.body, tokens=tokens, keyed=side.keyed)
        n = max(1, round(seconds * CONFIRMS_PER_SECOND))
        ids, self.pending[:n] = tuple(self.pending[:n]), []
        return Call(side.method, url, self.tokens[side.caller], side.body, ids)

    def processes(self, side: Side) -> list[Server]:
        return [self.servers[name] for name in side.servers]


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
    await http_seeds.seed_timebank(db, run.servers["timebank"].url, run.tokens["resident"], COMMUNITY, RESIDENT)


async def start_property(run: Running, servers: AsyncExitStack) -> None:
    """TICKETS tickets over STEWARDS stewards, loaded by SQL as bench/property_queue.py does."""
    db = await start_service(run, servers, "property", sla_check_interval_s="3600")  # its sweep is not the request path
    await http_seeds.load_tickets(db, COMMUNITY, [f"steward-{i}" for i in range(STEWARDS)], TICKETS)


async def start_property_submit(run: Running, servers: AsyncExitStack) -> None:
    """A building with its steward on duty and SUBMITTERS residents who file tickets in turn (one
    resident's daily count is a row every filing of theirs updates), on a database of its own."""
    db = await start_service(
        run, servers, "property", name="property-submit", sla_check_interval_s="3600", daily_ticket_limit=str(10**9)
    )
    residents = await http_seeds.seed_submitters(db, COMMUNITY, SUBMITTERS)
    run.rotations["submitter"] = tuple(run.stack.token(r, "resident", community=COMMUNITY, ttl_s=3600) for r in residents)
    run.tokens["submitter"] = run.rotations["submitter"][0]


async def start_parking(run: Running, servers: AsyncExitStack) -> None:
    """bench/parking_search.py's 5,000 spots with their windows and 100,000 bookings."""
    db = await start_service(run, servers, "parking", expire_holds_every_s="3600", remind_bookings_every_s="3600")
    base = await http_seeds.load_spots(db)
    start = base + timedelta(hours=FREE_SPOT_HOURS_AHEAD)
    query = urlencode({"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(), "limit": 20})
    run.queries["free_spots"] = "?" + query


async def start_governance(run: Running, servers: AsyncExitStack) -> None:
    db = await start_service(run, servers, "governance")
    await http_seeds.seed_points(db, COMMUNITY, RESIDENT)


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
        "property_submit",
        Side(("property-submit",), "/tickets", "POST", TICKET, caller="submitter", keyed=True),
        Side(("lean-property-submit",), "/property/tickets", "POST", TICKET, caller="submitter", keyed=True),
    ),
    Route(
        "parking_free_spots",
        Side(("parking",), "/free-spots", query="free_spots"),
        Side(("lean-parking",), "/parking/free-spots", query="free_spots"),
    ),
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
    "property_submit": [start_property_submit],
    "parking_free_spots": [start_parking],
    "gateway_members_me": [start_timebank, start_gateway],
}


async def check_answers(run: Running, route: Route) -> None:
    """Both sides answer 2xx with the same body shape (a page: as many items, of the same shape)
    before any load."""
    bodies: list[Any] = []
    for req in (run.call(route.service), run.call(route.lean)):
        url, body = req.url, req.body
        if req.ids:
            url, body = url.replace("{id}", req.ids[0]), {"id": str(uuid.uuid4())}
        headers = {"Authorization": f"Bearer {req.token}"} | ({"Idempotency-Key": uuid.uuid4().hex} if req.keyed else {})
        async with httpx.AsyncClient(headers=headers) as client:
            answer = await client.request(req.method, url, json=body)
        assert answer.is_success, (req.url, answer.status_code, answer.text)
        body = answer.json()
        items = body.get("items") if isinstance(body, dict) else None
        page = (len(items), sorted(items[0]) if items else None) if isinstance(items, list) else None
        bodies.append((sorted(body), page) if isinstance(body, dict) else type(body).__name__)
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
