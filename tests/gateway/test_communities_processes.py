"""The communities drill with real processes: two gateways started as the manifests start them
(`python -m gateway.serve`, PLATFORM_MODE=cluster, each in its own working directory, the signing
keys a read-only copy), one database. The first administrator comes from the operator's command; a
community it creates through gateway A is served by gateway B without a restart, and deactivated
through B it is refused by A within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from deploy.local.servers import free_port
from tests.gateway.conftest import bearer, gateway_template, wait_until
from tests.support.stack import TestStack, new_namespace

__all__ = ["gateway_template"]  # a fixture, used by name

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "an-operator-chosen-password"
NOT_SERVED = "urn:community:problem:gateway/community-not-served"


def read_only_copy(keys: Path, into: Path) -> Path:
    """The key set as a Secret mount gives it: files and directory without write permission."""
    shutil.copytree(keys, into)
    for path in into.iterdir():
        path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    into.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    return into


def pod_env(stack: TestStack, database_url: str, keys: Path, namespace: str) -> dict[str, str]:
    """The ConfigMap's and Secret's variables, pointed at the test's servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "KAFKA_", "PLATFORM_"))}
    return env | {
        "PYTHONPATH": str(ROOT),
        "PLATFORM_MODE": "cluster",
        # The embedded broker (Tansu) takes only the local profile; cluster mode's default is "kafka".
        "KAFKA_PROFILE": "local",
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "KAFKA_NAMESPACE": namespace,
        "REDIS_URL": stack.redis_url,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_KEYS_DIR": str(keys),
        "GATEWAY_UPSTREAMS": "{}",
        "GATEWAY_LOG_JSON": "false",
    }


def files_in(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.iterdir()}


def create_admin(env: dict[str, str], cwd: Path) -> None:
    """The operator's command, as the operator runs it (its own process, the password from the environment)."""
    run = subprocess.run(
        [sys.executable, "-m", "gateway.operator", "create-admin", "ops.zhou"],
        env=env | {"GATEWAY_ADMIN_PASSWORD": PASSWORD},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


@contextlib.asynccontextmanager
async def gateway_pod(env: dict[str, str], workdir: Path) -> AsyncIterator[httpx.AsyncClient]:
    workdir.mkdir()  # noqa: ASYNC240 (before the pod starts: nothing waits on it)
    port = free_port()
    with (workdir / "gateway.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def ready() -> bool:
                assert proc.returncode is None, (workdir / "gateway.log").read_text()[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get("/readyz")).status_code == 200
                return False

            await wait_until(ready, timeout=60)
            yield client
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    # Nothing written in the pod's working directory but the log the test itself opened.
    assert sorted(files_in(workdir)) == ["gateway.log"]


async def test_two_gateway_processes_serve_a_community_the_admin_created_without_a_restart(
    stack: TestStack, gateway_template: str, tmp_path: Path
) -> None:
    url = await stack.empty_database("gateway", template=gateway_template)
    keys = read_only_copy(stack.keys_dir, tmp_path / "keys")
    # Root ignores the permissions: the mount's contents are compared after the run as well.
    mounted = files_in(keys)
    env = pod_env(stack, url, keys, new_namespace())
    try:
        create_admin(env, tmp_path)
        async with gateway_pod(env, tmp_path / "pod-a") as a, gateway_pod(env, tmp_path / "pod-b") as b:
            new = f"qingtian-{uuid.uuid4().hex[:8]}"
            resident = bearer(stack.token(str(uuid.uuid4()), "resident", community=new))
            r = await b.get("/auth/me", headers=resident)
            assert r.status_code == 401 and r.json()["type"] == NOT_SERVED

            login = await a.post(
                "/auth/token",
                json={"grant_type": "password", "community": "platform", "username": "ops.zhou", "password": PASSWORD},
            )
            assert login.status_code == 200, login.text
            admin = bearer(login.json()["access_token"])
            body = {"name": "青田社区", "region_code": "331121"}
            created = await a.put(f"/platform/communities/{new}", json=body, headers=admin)
            assert created.status_code == 201, created.text
            started = time.monotonic()

            async def served_by_b() -> bool:
                r = await b.get("/auth/me", headers=resident)
                return r.status_code == 200

            await wait_until(served_by_b, timeout=10)
            learned_s = time.monotonic() - started
            paused = await b.put(f"/platform/communities/{new}", json=body | {"active": False}, headers=admin)
            assert paused.status_code == 200, paused.text
            started = time.monotonic()

            async def refused_by_a() -> bool:
                r = await a.get("/auth/me", headers=resident)
                return r.status_code == 401 and r.json()["type"] == NOT_SERVED

            await wait_until(refused_by_a, timeout=10)
            forgot_s = time.monotonic() - started
            # Within the miss re-read (1 s) and the reload period (2 s), with some slack for a loaded machine.
            assert learned_s < 2.5 and forgot_s < 4.0, (learned_s, forgot_s)
            assert files_in(keys) == mounted
            print(f"\nserved by B {learned_s:.2f} s after A created it; refused by A {forgot_s:.2f} s after B paused it")
    finally:
        keys.chmod(stat.S_IRWXU)
        await stack.drop_database(url)
