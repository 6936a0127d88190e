"""One cluster for the whole drill, started once for the module: two replicas of every service and
two gateways (A and B), each pod as its manifest starts it, against the test stack's one
PostgreSQL, Redis and broker. Gateway A routes to the `a` replicas and B to the `b` replicas, as
two ingress paths landing on different pods would; each replica fetches the JWKS from its gateway.

The test runner here is root, so the pods run as root (the manifests' uid 10001 cannot be taken
without privileges the runner has but a CI runner may not); the working directories and the key
mount are read-only, and the drill checks nothing was written in them."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.keys import KeyRing, rotate_keys
from gateway.migrate import upgrade_gateway_database
from tests.cluster.pods import SERVICES, Pod, cluster_secrets, config_env, make_pod, wait_for
from tests.gateway.conftest import bearer
from tests.gateway.test_shared_keys import project_secret
from tests.support.stack import TestStack, new_namespace

ADMIN, PASSWORD = "ops.zhou", "an-operator-chosen-password"
# Short periods so the drill sees several; the manifests keep the services' defaults.
JOB_PERIODS = {"NOTIFY_DELIVER_EVERY_S": "0.5"}


@dataclass
class Cluster:
    stack: TestStack
    root: Path
    keys: Path  # the operator's copy; `mount` is what the pods see
    mount: Path
    databases: dict[str, str]
    services: dict[str, list[Pod]]  # name -> [a, b]
    gateways: list[Pod]  # [A, B]
    community: str
    admin: dict[str, str]
    namespace: str

    @property
    def pods(self) -> list[Pod]:
        return [pod for pair in self.services.values() for pod in pair] + self.gateways

    def token(self, subject: str, *roles: str, community: str | None = None) -> dict[str, str]:
        """A token as the gateways issue it: signed with the mounted key set's active key."""
        ring = KeyRing(self.mount)
        return bearer(ring.mint(subject=subject, roles=list(roles), community=community or self.community, ttl_s=900))


def operator_command(args: list[str], env: dict[str, str], cwd: Path) -> str:
    run = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


async def login_admin(gateway: Pod) -> dict[str, str]:
    r = await gateway.client.post(
        "/auth/token", json={"grant_type": "password", "community": "platform", "username": ADMIN, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    return bearer(r.json()["access_token"])


@pytest.fixture(scope="module")
async def cluster(stack: TestStack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    keys, mount = root / "operator-keys", root / "mount"
    rotate_keys(keys)
    project_secret(keys, mount)
    mount.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    made = await asyncio.gather(*(stack.fresh_database(name) for name in SERVICES))
    databases = dict(zip(SERVICES, made, strict=True))
    databases["gateway"] = await stack.empty_database("gateway")
    await upgrade_gateway_database(databases["gateway"])
    namespace = new_namespace()
    ports: dict[str, list[Pod]] = {}
    gateways: list[Pod] = []
    # The ConfigMap and the Secret, pointed at the test stack (one database per service, as the
    # migration Job leaves them).
    common = (
        {
            "PLATFORM_MODE": "cluster",
            "KAFKA_PROFILE": "local",  # the embedded broker (Tansu) speaks only the local profile
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "KAFKA_NAMESPACE": namespace,
            "REDIS_URL": stack.redis_url,
            "GATEWAY_KEYS_DIR": str(mount),
            "GATEWAY_DATABASE_URL": databases["gateway"],
            "GATEWAY_MAX_BODY_BYTES": "3145728",
            "PROPERTY_STORAGE_BACKEND": "postgres",
            "GATEWAY_LOG_JSON": "false",
        }
        | {f"{name.upper()}_DATABASE_URL": url for name, url in databases.items() if name != "gateway"}
        | cluster_secrets()
        | JOB_PERIODS
    )
    env = config_env(common)
    # The operator's steps before the Deployments: topics, then the first administrator.
    operator_command(["-m", "services.kit.operator", "topics"], env, root)
    operator_command(["-m", "gateway.operator", "create-admin", ADMIN], env | {"GATEWAY_ADMIN_PASSWORD": PASSWORD}, root)
    gateway_ports = {}
    for replica in ("a", "b"):
        gateway = make_pod("gateway", replica, env, root)
        gateway_ports[replica] = gateway
        gateways.append(gateway)
    for name in SERVICES:
        pair = []
        for replica in ("a", "b"):
            pod_env = env | {"JWKS_URL": f"{gateway_ports[replica].url}/.well-known/jwks.json"}
            pair.append(make_pod(name, replica, pod_env, root))
        ports[name] = pair
    for replica, gateway in zip(("a", "b"), gateways, strict=True):
        gateway.env = gateway.env | {
            f"GATEWAY_{name.upper()}_URL": ports[name][0 if replica == "a" else 1].url for name in SERVICES
        }
    all_pods = [pod for pair in ports.values() for pod in pair] + gateways
    try:
        for pod in all_pods:
            pod.start()
        started = time.monotonic()
        await asyncio.gather(*(wait_for(pod.ready, timeout=240, interval=0.5) for pod in all_pods))
        print(f"\n{len(all_pods)} pods ready {time.monotonic() - started:.1f} s after they were started")
        admin = await login_admin(gateways[0])
        community = f"drill-{uuid.uuid4().hex[:8]}"
        r = await gateways[0].client.put(
            f"/platform/communities/{community}", json={"name": "演练社区", "region_code": "331102"}, headers=admin
        )
        assert r.status_code == 201, r.text
        yield Cluster(stack, root, keys, mount, databases, ports, gateways, community, admin, namespace)
    finally:
        for pod in all_pods:
            pod.terminate()
        for pod in all_pods:
            pod.stop()
        await asyncio.gather(*(pod.client.aclose() for pod in all_pods))
        mount.chmod(stat.S_IRWXU)
        for path in (root / "pods").iterdir():
            path.chmod(stat.S_IRWXU)
        for url in databases.values():
            await stack.drop_database(url)
        shutil.rmtree(root, ignore_errors=True)


async def enrolled_pair(cluster: Cluster, gateway: Pod, worker: dict[str, str]) -> httpx.Response:
    """A worker enrols an elder and a relative and records their link: one
    `timebank.relative.verified.v1` in the time bank's outbox, which notify consumes."""
    elder, relative = f"e-{uuid.uuid4().hex[:12]}", f"r-{uuid.uuid4().hex[:12]}"
    for member, body in ((elder, {"elder": True}), (relative, {"volunteer": True})):
        r = await gateway.client.post("/api/timebank/members", json={"member_id": member, **body}, headers=worker)
        assert r.status_code == 201, r.text
    return await gateway.client.post(
        f"/api/timebank/members/{elder}/relatives", json={"relative_id": relative, "relation": "子女"}, headers=worker
    )
