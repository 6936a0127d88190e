"""Authenticated GET through the gateway against the same GET sent straight to the service, and through nginx.

Headline: a resident reads their own time-bank membership (`GET /members/me`) from the real
time-bank service (its own app factory, its own migrated database, the member enrolled first so
the route answers 200). The same request is sent three ways in one run: straight to the service,
through the gateway (`/api/timebank/members/me`), and through nginx from Debian's packages (when
an `nginx` binary is installed) proxying to the service with keep-alive upstream connections.

Second line, "gateway overhead over an empty upstream": the same three ways to a minimal service
that only verifies the token (`create_upstream`), the harshest comparison, kept to show the
gateway's own cost.

Processes besides this one: the time-bank service and the empty upstream (uvicorn, one worker
each), the gateway (uvicorn, one worker, its real lifespan against the bench stack's PostgreSQL,
Valkey and Tansu), nginx (one worker), and the load generator (aiohttp, keep-alive, N connections,
closed loop; then one connection for latency), each run in its own process. Every server process
has one worker, direct and gateway alike. All servers stay up for the whole run and the ways are
measured in turn, `BENCH_ROUNDS` rounds (default 2); each figure is the median over the rounds.
Besides req/s and p50/p99, each line reports the CPU time each serving process spent per request
(user + system from /proc, over the busy run): on a shared machine it is the steadier figure.

Figures, with the dates and the machine's load, are in docs/gateway.md ("Speed").

    .venv/bin/python -m bench.gateway_get
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from bench.harness import bench_stack, percentile, record, serving
from deploy.local.servers import free_port
from services.kit.auth import CurrentPrincipal

COMMUNITY = "bench-community"
RESIDENT = "00000000-0000-0000-0000-0000000000be"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 32))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", 8))
WARM_UP_S = 1.0
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 2))
ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The resident's read of their own membership: token check, one transaction, two small selects.
SERVICE_PATH = "/members/me"
EMPTY_PATH = "/ping"


def create_upstream() -> FastAPI:
    """The empty upstream: verifies the bearer token with the kit (cached), answers a small JSON."""
    from contextlib import asynccontextmanager as acm

    from services.kit.auth import TokenVerifier

    router = APIRouter()

    @router.get("/ping")
    async def ping(who: CurrentPrincipal) -> dict[str, str]:
        return {"subject": who.subject, "community": who.community}

    @router.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @acm
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.token_verifier = TokenVerifier(
            os.environ["JWKS_URL"], issuer="community-gateway", audience="community-platform"
        )
        yield

    app = FastAPI(lifespan=lifespan, openapi_url=None)
    app.include_router(router)
    return app


async def load(url: str, token: str, connections: int, duration_s: float) -> dict[str, Any]:
    """The load generator's body (runs in its own process): closed loop, one request in flight per connection."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def warm() -> None:
            async with session.get(url, headers=headers) as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(connections)))
        stop = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                async with session.get(url, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "requests": len(latencies),
        "errors": errors,
    }


async def run_load(url: str, token: str, connections: int, duration_s: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.gateway_get",
        "load",
        url,
        token,
        str(connections),
        str(duration_s),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            args, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT
        )


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far (children included: nginx's worker)."""
    total = 0.0
    for pid in pids:
        # A process may end between being listed and being read: reading its files then fails with
        # ENOENT or ESRCH (a kernel without the children file gives ENOENT for it alone).
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat(5); [0] here is field 3.
        total += sum(int(x) for x in fields[11:15]) / CLOCK_TICKS
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            children = []
        total += cpu_seconds([int(c) for c in children])
    return total


@dataclass
class Server:
    name: str
    url: str
    pids: list[int]


@asynccontextmanager
async def uvicorn_process(name: str, app: str, env: dict[str, str], log: Path) -> AsyncIterator[Server]:
    port = free_port()
    # The gateway as it is deployed: its own entry point (uvicorn, uvloop, one worker, head limits).
    if app == "gateway.app:create_app":
        server = ["gateway.serve"]
    else:
        server = ["uvicorn", "--factory", app, "--workers", "1", "--loop", "uvloop"]
    # `BENCH_PROFILE=<name>` runs that server under cProfile, its statistics written beside its log
    # on exit (py-spy is not installed here): where a route's microseconds go.
    if os.environ.get("BENCH_PROFILE") == name:
        server = ["cProfile", "-o", str(log.with_suffix(".prof")), "-m", *server]
    proc = spawn(
        [sys.executable, "-m", *server, "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env,
        log,
    )
    # A service imports and migrates for well over a minute on this machine at a load of 20.
    async with serving(proc, port, timeout_s=240):
        yield Server(name, f"http://127.0.0.1:{port}", [proc.pid])


@dataclass
class Target:
    """One way to send the GET: its label, URL and the server processes that serve it."""

    key: str
    label: str
    url: str
    servers: list[Server]


async def measure(target: Target, token: str) -> dict[str, Any]:
    """Busy (N connections) then one connection; each serving process's CPU per request over the busy run."""
    await run_load(target.url, token, CONNECTIONS, WARM_UP_S)  # first-request work and pools, not measured
    before = {s.name: cpu_seconds(s.pids) for s in target.servers}
    busy = await run_load(target.url, token, CONNECTIONS, DURATION_S)
    cpu_ms = {s.name: (cpu_seconds(s.pids) - before[s.name]) * 1000 / max(1, busy["requests"]) for s in target.servers}
    single = await run_load(target.url, token, 1, DURATION_S / 2)
    cpu = ", ".join(f"{name} {ms:.3f}" for name, ms in cpu_ms.items())
    print(
        f"  {target.label}: {busy['rps']:,.0f} req/s at {CONNECTIONS} connections (p50 {busy['p50_ms']:.2f} ms, "
        f"p99 {busy['p99_ms']:.2f} ms, errors {busy['errors']}; CPU ms/request: {cpu}); "
        f"one connection p50 {single['p50_ms']:.2f} ms",
        flush=True,
    )
    return {"busy": busy, "single": single, "cpu_ms": cpu_ms}


def nginx_conf(work: Path, port: int, upstreams: dict[str, str]) -> Path:
    """One worker, keep-alive to each upstream, no access log: nginx as a plain reverse proxy."""
    blocks = "".join(
        f"  upstream {name} {{ server {url.removeprefix('http://')}; keepalive 64; }}\n" for name, url in upstreams.items()
    )
    locations = "".join(
        f'    location /api/{name}/ {{ proxy_pass http://{name}/; proxy_http_version 1.1; proxy_set_header Connection ""; }}\n'
        for name in upstreams
    )
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {work}; proxy_temp_path {work};
  fastcgi_temp_path {work}; uwsgi_temp_path {work}; scgi_temp_path {work};
{blocks}  server {{ listen 127.0.0.1:{port};
{locations}  }}
}}""")
    return conf


@asynccontextmanager
async def nginx_process(work: Path, upstreams: dict[str, str]) -> AsyncIterator[Server | None]:
    binary = shutil.which("nginx", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = spawn(
        [binary, "-e", str(work / "nginx-error.log"), "-c", str(nginx_conf(work, port, upstreams))], {}, work / "nginx.log"
    )
    async with serving(proc, port, timeout_s=10):
        yield Server("nginx", f"http://127.0.0.1:{port}", [proc.pid])


def gateway_env(stack: Any, db: str, upstreams: dict[str, str]) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": db,
        "GATEWAY_REDIS_URL": stack.redis_url,
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "GATEWAY_KAFKA_NAMESPACE": "bench.",
        "GATEWAY_KEYS_DIR": str(stack.keys_dir),
        "GATEWAY_UPSTREAMS": json.dumps(upstreams),
        # Limits far above the load, so every request is admitted (and still counted in Valkey).
        "GATEWAY_RATE_LIMIT_USER": "10000000/minute",
        "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
    }


async def enrol_resident(service_url: str, token: str) -> None:
    """The resident joins the time bank, so `GET /members/me` answers 200 with their membership."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=service_url, headers=headers) as client:
        enrolled = await client.post("/members", json={"volunteer": True})
        enrolled.raise_for_status()
        me = await client.get(SERVICE_PATH)
        me.raise_for_status()


async def gateway_settled(gateway_url: str) -> None:
    """Wait for the gateway's start-up work (the merged OpenAPI document, fetched from the services)
    to finish, so its CPU is not counted against the requests measured."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        (await client.get("/openapi.json")).raise_for_status()
        (await client.get("/readyz")).raise_for_status()
    await asyncio.sleep(1.0)


def median(values: list[float]) -> float:
    return statistics.median(values)


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds, and the range of req/s."""
    rps = [r["busy"]["rps"] for r in rounds]
    cpu = {name: round(median([r["cpu_ms"][name] for r in rounds]), 3) for name in rounds[0]["cpu_ms"]}
    return {
        "rps": round(median(rps), 1),
        "rps_range": [round(min(rps), 1), round(max(rps), 1)],
        "p50_ms": round(median([r["busy"]["p50_ms"] for r in rounds]), 2),
        "p99_ms": round(median([r["busy"]["p99_ms"] for r in rounds]), 2),
        "p50_ms_one_connection": round(median([r["single"]["p50_ms"] for r in rounds]), 3),
        "cpu_ms_per_request": cpu,
        "errors": sum(r["busy"]["errors"] for r in rounds),
    }


def comparison(figures: dict[str, dict[str, Any]], direct: str, proxied: str, proxy: str) -> dict[str, Any]:
    d, g = figures[direct], figures[proxied]
    out: dict[str, Any] = {
        f"{proxy}_over_direct_rps": round(g["rps"] / d["rps"], 3),
        f"{proxy}_added_p50_ms_one_connection": round(g["p50_ms_one_connection"] - d["p50_ms_one_connection"], 3),
    }
    if proxy in g["cpu_ms_per_request"]:
        out[f"{proxy}_cpu_ms_per_request"] = g["cpu_ms_per_request"][proxy]
    return out


async def main() -> None:
    from gateway.migrate import upgrade_gateway_database
    from gateway.operator import put_community_at

    rounds: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    async with bench_stack() as stack, AsyncExitStack() as servers:
        work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
        token = stack.token(RESIDENT, "resident", community=COMMUNITY, ttl_s=3600)
        timebank_db = await stack.fresh_database("timebank")
        gateway_db = await stack.empty_database("gateway_bench")
        await upgrade_gateway_database(gateway_db)
        await put_community_at(gateway_db, COMMUNITY, "bench", "331102")
        servers.push_async_callback(stack.drop_database, timebank_db)
        servers.push_async_callback(stack.drop_database, gateway_db)
        service_env = {
            "TIMEBANK_DATABASE_URL": timebank_db,
            "TIMEBANK_REDIS_URL": stack.redis_url,
            "TIMEBANK_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "TIMEBANK_KAFKA_NAMESPACE": "bench.",
            "TIMEBANK_JWKS_URL": stack.jwks_url,
        }
        timebank = await servers.enter_async_context(
            uvicorn_process("timebank", "services.timebank.app:create_app", service_env, work / "timebank.log")
        )
        empty = await servers.enter_async_context(
            uvicorn_process("empty", "bench.gateway_get:create_upstream", {"JWKS_URL": stack.jwks_url}, work / "empty.log")
        )
        await enrol_resident(timebank.url, token)
        upstreams = {"timebank": timebank.url, "empty": empty.url}
        targets = [
            Target("direct", "timebank direct", timebank.url + SERVICE_PATH, [timebank]),
            Target("empty direct", "empty upstream direct", empty.url + EMPTY_PATH, [empty]),
        ]
        # Every server stays up for the whole run and the ways are measured in turn, round after
        # round, so a burst of other work on the shared machine does not land on one of them only.
        gateway = await servers.enter_async_context(
            uvicorn_process("gateway", "gateway.app:create_app", gateway_env(stack, gateway_db, upstreams), work / "gateway.log")
        )
        await gateway_settled(gateway.url)
        targets += [
            Target("gateway", "timebank via gateway", gateway.url + "/api/timebank" + SERVICE_PATH, [gateway, timebank]),
            Target("empty gateway", "empty upstream via gateway", gateway.url + "/api/empty" + EMPTY_PATH, [gateway, empty]),
        ]
        nginx = await servers.enter_async_context(nginx_process(work, upstreams))
        if nginx is not None:
            targets += [
                Target("nginx", "timebank via nginx", nginx.url + "/api/timebank" + SERVICE_PATH, [nginx, timebank]),
                Target("empty nginx", "empty upstream via nginx", nginx.url + "/api/empty" + EMPTY_PATH, [nginx, empty]),
            ]
        print(
            f"time bank GET {SERVICE_PATH} (headline) and the empty upstream's GET {EMPTY_PATH}; one worker "
            f"per server; {ROUNDS} rounds",
            flush=True,
        )
        for n in range(ROUNDS):
            print(f"round {n + 1} (load average {os.getloadavg()[0]:.2f})", flush=True)
            for target in targets:
                labels[target.key] = target.label
                rounds.setdefault(target.key, []).append(await measure(target, token))

    figures = {key: summary(r) for key, r in rounds.items()}
    common: dict[str, Any] = {
        "connections": CONNECTIONS,
        "duration_s": DURATION_S,
        "rounds": ROUNDS,
        "workers_per_server": 1,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    for name, direct, route in (
        ("headline", "direct", f"GET /api/timebank{SERVICE_PATH}"),
        ("empty", "empty direct", f"GET /api/empty{EMPTY_PATH}"),
    ):
        prefix = "" if name == "headline" else "empty "
        extra: dict[str, Any] = {
            "route": route,
            **common,
            **comparison(figures, direct, prefix + "gateway", "gateway"),
        }
        extra.update(
            comparison(figures, direct, prefix + "nginx", "nginx") if prefix + "nginx" in figures else {"nginx": "not installed"}
        )
        extra.update({labels[key]: f for key, f in figures.items() if key.startswith("empty") == bool(prefix)})
        if name == "headline":
            record(
                "gateway_get_rps",
                figures["gateway"]["rps"],
                "req/s",
                "direct to the time-bank service",
                figures["direct"]["rps"],
                higher_is_better=True,
                target="≥ 0.6 × direct; added p50 ≤ 2 ms",
                extra=extra,
            )
        else:
            record(
                "gateway_get_empty_upstream_rps",
                figures["empty gateway"]["rps"],
                "req/s",
                "gateway overhead over an empty upstream: direct",
                figures["empty direct"]["rps"],
                higher_is_better=True,
                extra=extra,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["load"]:
        _, _, url, token, connections, duration = sys.argv
        print(json.dumps(asyncio.run(load(url, token, int(connections), float(duration)))))
    else:
        asyncio.run(main())
