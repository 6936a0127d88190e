"""Each service's start-up cost: CPU seconds of its process from exec until `/readyz` answers 200.

Each service is started as `make run` starts it (`uvicorn --factory services.<name>.app:create_app`)
against migrated databases on the embedded servers, one at a time, and its CPU time (user + system,
from /proc) is read the moment it is first ready. CPU time, unlike the wall time also printed, does
not grow with the machine's load. Two ways: `cold`, with no bytecode to read (PYTHONDONTWRITEBYTECODE
and a venv installed without it: every import compiled again), and `cached`, with the bytecode the
stack keeps under `.local/pycache` (warmed by one start first), as a restart after a crash finds it.
Baseline: a bare FastAPI app with one `/readyz` route under the same uvicorn, cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from bench.harness import bench_stack, cpu_seconds, load_average, record
from deploy.local.servers import free_port
from deploy.local.stack import existing_services
from tests.support.stack import TestStack, new_namespace

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("STARTUP_BENCH_ROUNDS", "3"))

BARE_APP = textwrap.dedent("""
    from fastapi import FastAPI

    def create_app() -> FastAPI:
        app = FastAPI()
        app.add_api_route("/readyz", lambda: {"status": "ok"})
        return app
""")


async def start_until_ready(app: str, env: dict[str, str], cwd: Path, timeout_s: float = 180) -> tuple[float, float]:
    """Start `app` as the stack does; (CPU seconds, wall seconds) when `/readyz` first says 200."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while time.perf_counter() - started < timeout_s:
                if proc.returncode is not None:
                    raise RuntimeError(f"{app} exited with {proc.returncode}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return cpu_seconds(proc.pid), time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"{app} not ready within {timeout_s}s")
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def service_env(stack: TestStack, pycache: str | None) -> dict[str, str]:
    """The stack's environment for a service; bytecode cached under `pycache`, or none at all."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="no-bytecode-")  # nothing cached there
    else:
        env["PYTHONPYCACHEPREFIX"] = pycache
    env.update(
        DATABASE_URL=stack.pg_url,
        REDIS_URL=stack.redis_url,
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        KAFKA_PROFILE="local",
        KAFKA_NAMESPACE=new_namespace(),
        JWKS_URL=stack.jwks_url,
        PYTHONPATH=str(ROOT),
    )
    return env


async def main() -> None:
    async with bench_stack() as stack, contextlib.AsyncExitStack() as dirs:
        pycache = dirs.enter_context(tempfile.TemporaryDirectory(prefix="pycache-"))
        envs = {"cold": service_env(stack, None), "cached": service_env(stack, pycache)}
        services = [name for name, _ in existing_services()]
        for name in services:
            url = await stack.fresh_database(name)
            for env in envs.values():
                env[f"{name.upper()}_DATABASE_URL"] = url
        bare_dir = Path(dirs.enter_context(tempfile.TemporaryDirectory()))
        (bare_dir / "bare_app.py").write_text(BARE_APP)
        await start_until_ready("bare_app:create_app", envs["cached"], bare_dir)  # compiles and caches
        bare = [await start_until_ready("bare_app:create_app", envs["cached"], bare_dir) for _ in range(ROUNDS)]
        figures: dict[str, dict[str, float]] = {}
        for name in services:
            app = f"services.{name}.app:create_app"
            cold = [await start_until_ready(app, envs["cold"], ROOT) for _ in range(ROUNDS)]
            await start_until_ready(app, envs["cached"], ROOT)  # compiles and caches
            cached = [await start_until_ready(app, envs["cached"], ROOT) for _ in range(ROUNDS)]
            figures[name] = {
                "cold_cpu_s": round(statistics.median(cpu for cpu, _ in cold), 2),
                "cached_cpu_s": round(statistics.median(cpu for cpu, _ in cached), 2),
                "cached_wall_s": round(statistics.median(wall for _, wall in cached), 2),
            }
        bare_cpu = statistics.median(cpu for cpu, _ in bare)
        record(
            "services_startup",
            max(f["cached_cpu_s"] for f in figures.values()),
            "CPU s to ready (slowest service, bytecode cached)",
            "bare_fastapi_uvicorn",
            bare_cpu,
            higher_is_better=False,
            target="every service ready well within 10 s (the crash drill's bound)",
            extra={
                **figures,
                "bare_app": {
                    "cached_cpu_s": round(bare_cpu, 2),
                    "cached_wall_s": round(statistics.median(w for _, w in bare), 2),
                },
                "rounds": ROUNDS,
                "load_average": load_average(),
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
