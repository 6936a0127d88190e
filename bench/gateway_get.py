"""Authenticated GET through the gateway against the same GET sent straight to the service.

Three processes besides this one: the upstream (a minimal kit-style service that verifies the
token, as every service does), the gateway (uvicorn, one worker, its real lifespan against the
bench stack's PostgreSQL, Valkey and Tansu), and the load generator (aiohttp, keep-alive, N
connections). Each figure is taken in the same run on the same servers: direct, via the gateway
with its default engine (aiohttp's client directly), with httpx over the httpx-aiohttp transport,
and with httpx's own transport.
nginx is measured too when an `nginx` binary is already installed.

    .venv/bin/python -m bench.gateway_get
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from bench.harness import bench_stack, percentile, record
from deploy.local.servers import free_port, wait_for_port
from services.kit.auth import CurrentPrincipal

COMMUNITY = "bench-community"
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", 32))
DURATION_S = float(os.environ.get("BENCH_DURATION_S", 8))
ROOT = Path(__file__).resolve().parents[1]


def create_upstream() -> FastAPI:
    """The service side: verifies the bearer token with the kit (cached), answers a small JSON."""
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
        app.state.token_verifier = TokenVerifier(os.environ["JWKS_URL"], issuer="community-gateway",
                                                 audience="community-platform")
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
    return {"rps": len(latencies) / elapsed, "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "requests": len(latencies), "errors": errors}


async def run_load(url: str, token: str, connections: int, duration_s: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.gateway_get", "load", url, token, str(connections), str(duration_s),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(args, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=sink,
                                stderr=subprocess.STDOUT, cwd=ROOT)


@asynccontextmanager
async def uvicorn_process(app: str, env: dict[str, str], log: Path) -> AsyncIterator[str]:
    port = free_port()
    proc = spawn([sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port),
                  "--no-access-log", "--log-level", "warning", "--loop", "uvloop"], env, log)
    try:
        wait_for_port(port, 60, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def measure(label: str, url: str, token: str) -> dict[str, Any]:
    busy = await run_load(url, token, CONNECTIONS, DURATION_S)
    single = await run_load(url, token, 1, DURATION_S / 2)
    print(f"  {label}: {busy['rps']:,.0f} req/s at {CONNECTIONS} connections (p50 {busy['p50_ms']:.2f} ms, "
          f"p99 {busy['p99_ms']:.2f} ms, errors {busy['errors']}); one connection p50 {single['p50_ms']:.2f} ms",
          flush=True)
    return {"busy": busy, "single": single}


def nginx_conf(work: Path, port: int, upstream: str) -> Path:
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {work}; proxy_temp_path {work};
  upstream svc {{ server {upstream.removeprefix('http://')}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location /api/timebank/ {{ proxy_pass http://svc/; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
}}""")
    return conf


async def main() -> None:
    from gateway.migrate import upgrade_gateway_database

    async with bench_stack() as stack:
        work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
        token = stack.token("00000000-0000-0000-0000-0000000000be", "resident", community=COMMUNITY, ttl_s=3600)
        db = await stack.empty_database("gateway_bench")
        await upgrade_gateway_database(db)
        async with uvicorn_process("bench.gateway_get:create_upstream", {"JWKS_URL": stack.jwks_url},
                                   work / "upstream.log") as upstream:
            results: dict[str, dict[str, Any]] = {}
            results["direct"] = await measure("direct", upstream + "/ping", token)
            for transport in ("aiohttp", "httpx-aiohttp", "httpx"):
                env = {
                    "GATEWAY_DATABASE_URL": db, "GATEWAY_REDIS_URL": stack.redis_url,
                    "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap, "GATEWAY_KAFKA_NAMESPACE": "bench.",
                    "GATEWAY_KEYS_DIR": str(stack.keys_dir), "GATEWAY_UPSTREAMS": json.dumps({"timebank": upstream}),
                    "GATEWAY_COMMUNITIES": json.dumps([COMMUNITY]), "GATEWAY_UPSTREAM_TRANSPORT": transport,
                    "GATEWAY_RATE_LIMIT_USER": "10000000/minute", "GATEWAY_RATE_LIMIT_IP": "10000000/minute",
                }
                async with uvicorn_process("gateway.app:create_app", env, work / f"gateway-{transport}.log") as gw:
                    results[f"gateway ({transport})"] = await measure(f"gateway ({transport})",
                                                                      gw + "/api/timebank/ping", token)
            if shutil.which("nginx"):
                port = free_port()
                proc = spawn(["nginx", "-c", str(nginx_conf(work, port, upstream))], {}, work / "nginx.log")
                try:
                    wait_for_port(port, 10)
                    results["nginx"] = await measure("nginx", f"http://127.0.0.1:{port}/api/timebank/ping", token)
                finally:
                    proc.terminate()
                    proc.wait(10)
        await stack.drop_database(db)

    direct, gateway = results["direct"], results["gateway (aiohttp)"]
    extra: dict[str, Any] = {
        "connections": CONNECTIONS, "duration_s": DURATION_S,
        "added_p50_ms_one_connection": round(gateway["single"]["p50_ms"] - direct["single"]["p50_ms"], 3),
        "nginx": "not installed" if "nginx" not in results else round(results["nginx"]["busy"]["rps"], 1),
    }
    for label, r in results.items():
        extra[label] = {"rps": round(r["busy"]["rps"], 1), "p50_ms": round(r["busy"]["p50_ms"], 2),
                        "p99_ms": round(r["busy"]["p99_ms"], 2), "p50_ms_one_connection": round(r["single"]["p50_ms"], 2),
                        "errors": r["busy"]["errors"]}
    record("gateway_get_rps", gateway["busy"]["rps"], "req/s", "direct to the service", direct["busy"]["rps"],
           higher_is_better=True, target="≥ 0.6 × direct; added p50 ≤ 2 ms", extra=extra)


if __name__ == "__main__":
    if sys.argv[1:2] == ["load"]:
        _, _, url, token, connections, duration = sys.argv
        print(json.dumps(asyncio.run(load(url, token, int(connections), float(duration)))))
    else:
        asyncio.run(main())
