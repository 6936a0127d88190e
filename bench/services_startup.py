"""Each service's start-up cost: CPU seconds of its process from exec until `/readyz` answers 200.

Each service is started as `make run` starts it (`uvicorn --factory services.<name>.app:create_app`,
the stack's environment) against migrated databases on the embedded servers, one at a time, and
its CPU time (user + system, from /proc) is read the moment it is first ready. CPU time, unlike the
wall time also printed, does not grow with the machine's load. Baseline: the same for a bare
FastAPI app with one `/readyz` route under the same uvicorn (the interpreter and the framework).
"""

from __future__ import annotations

import asyncio
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

BARE_APP = textwrap.dedent('''
    from fastapi import FastAPI

    def create_app() -> FastAPI:
        app = FastAPI()
        app.add_api_route("/readyz", lambda: {"status": "ok"})
        return app
''')


async def start_until_ready(app: str, env: dict[str, str], cwd: Path, timeout_s: float = 180) -> tuple[float, float]:
    """Start `app` as the stack does; (CPU seconds, wall seconds) when `/readyz` first says 200."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while time.perf_counter() - started < timeout_s:
                if proc.poll() is not None:
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
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def service_env(stack: TestStack) -> dict[str, str]:
    env = dict(os.environ)
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
    async with bench_stack() as stack:
        env = service_env(stack)
        services = [name for name, _ in existing_services()]
        for name in services:
            env[f"{name.upper()}_DATABASE_URL"] = await stack.fresh_database(name)
        with tempfile.TemporaryDirectory() as bare_dir:
            (Path(bare_dir) / "bare_app.py").write_text(BARE_APP)
            bare = [await start_until_ready("bare_app:create_app", env, Path(bare_dir)) for _ in range(ROUNDS)]
        figures: dict[str, dict[str, float]] = {}
        for name in services:
            runs = [await start_until_ready(f"services.{name}.app:create_app", env, ROOT) for _ in range(ROUNDS)]
            figures[name] = {
                "cpu_s": round(statistics.median(cpu for cpu, _ in runs), 2),
                "wall_s": round(statistics.median(wall for _, wall in runs), 2),
            }
        bare_cpu = statistics.median(cpu for cpu, _ in bare)
        record(
            "services_startup",
            max(f["cpu_s"] for f in figures.values()),
            "CPU s to ready (slowest service)",
            "bare_fastapi_uvicorn",
            bare_cpu,
            higher_is_better=False,
            target="every service ready well within 10 s (the crash drill's bound)",
            extra={
                **figures,
                "bare_app": {"cpu_s": round(bare_cpu, 2), "wall_s": round(statistics.median(w for _, w in bare), 2)},
                "rounds": ROUNDS,
                "load_average": load_average(),
            },
        )


if __name__ == "__main__":
    asyncio.run(main())
