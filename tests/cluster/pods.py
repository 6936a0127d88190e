"""Pods as the manifests make them, as local processes: the container's own command line from
`deploy/k8s/<name>.yaml` (host and port aside), the ConfigMap's and Secret's variables pointed at
the test stack's servers, a working directory of its own, read-only, and the signing keys mounted
read-only as the kubelet mounts a Secret."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import yaml

from deploy.local.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["timebank", "parking", "property", "governance", "citysync", "notify", "security"]
# Variables of the developer's shell that would reach a pod but not a real one.
SHELL_ONLY = ("GATEWAY_", "KAFKA_", "PLATFORM_", "DATABASE_URL", "REDIS_URL", "JWKS_URL", *(f"{s.upper()}_" for s in SERVICES))


def manifest_command(name: str, port: int) -> list[str]:
    """The Deployment's container command, listening on 127.0.0.1:`port` instead of 0.0.0.0:8000."""
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / f"{name}.yaml").read_text()))
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)
    command = [str(part) for part in container["command"]]
    host, at = command.index("--host"), command.index("--port")
    command[host + 1], command[at + 1] = "127.0.0.1", str(port)
    # The image's `python` and `uvicorn` are the virtual environment's here.
    binaries = {"python": sys.executable, "uvicorn": str(Path(sys.executable).parent / "uvicorn")}
    return [binaries.get(command[0], command[0]), *command[1:]]


def config_env(base: dict[str, str]) -> dict[str, str]:
    """This process's environment without what only a developer's shell sets, plus `base`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(SHELL_ONLY)}
    return kept | {"PYTHONPATH": str(ROOT)} | base


def cluster_secrets() -> dict[str, str]:
    """What the operator puts in `community-secrets` (cluster mode refuses the code's defaults)."""
    return {
        "CITYSYNC_PLATFORM_HASH_KEY": secrets.token_hex(32),
        "CITYSYNC_TOPIC_HASH_KEY": secrets.token_hex(32),
    }


@dataclass
class Pod:
    name: str
    command: list[str]
    env: dict[str, str]
    workdir: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(base_url=self.url, timeout=20)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL, as a node lost or the OOM killer does: no shutdown hook runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        """SIGTERM, as the kubelet sends it; `stop` then waits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    async def ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"{self.name} exited:\n" + self.log.read_text()[-3000:]
        with contextlib.suppress(httpx.TransportError):
            return (await self.client.get("/readyz")).status_code == 200
        return False

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples on this pod whose labels include `labels`."""
        text = (await self.client.get("/metrics")).text
        total = 0.0
        for line in text.splitlines():
            match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
            if match:
                found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
                if all(found.get(k) == v for k, v in labels.items()):
                    total += float(match.group(2))
        return total


def make_pod(name: str, replica: str, env: dict[str, str], root: Path) -> Pod:
    workdir = root / "pods" / f"{name}-{replica}"
    workdir.mkdir(parents=True)
    # A read-only root filesystem: nothing may be written where the process runs (root ignores the
    # mode, so the drill also checks the directory stays empty).
    workdir.chmod(0o555)
    (root / "logs").mkdir(exist_ok=True)
    port = free_port()
    return Pod(f"{name}-{replica}", manifest_command(name, port), env, workdir, root / "logs" / f"{name}-{replica}.log", port)


async def wait_for(predicate, timeout: float, interval: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    """Wait until `predicate()` (async) is true; return how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if await predicate():
            return loop.time() - started
        if loop.time() - started > timeout:
            raise AssertionError(f"{getattr(predicate, '__name__', predicate)} not true within {timeout}s")
        await asyncio.sleep(interval)


def socket_owner(local_port: int, pods: list[Pod]) -> Pod | None:
    """The pod whose process has the TCP connection from `local_port` (from /proc, as `ss -p` finds it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == local_port:
                    inodes.add(cols[9])
    for pod in pods:
        if pod.proc is None or pod.proc.poll() is not None:
            continue
        fds = Path(f"/proc/{pod.proc.pid}/fd")
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return pod
    return None


async def relay_leader(service: str, database_url: str, pods: list[Pod]) -> Pod | None:
    """The replica whose relay holds the outbox's advisory lock (services/kit/relay.py's key)."""
    key = zlib.crc32(f"kit_outbox_relay:{service}".encode())
    conn = await asyncpg.connect(database_url)
    try:
        port = await conn.fetchval(
            """SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid::bigint = $1
                 AND l.objid::bigint = $2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
            key >> 32,
            key & 0xFFFFFFFF,
        )
    finally:
        await conn.close()
    return None if port is None else socket_owner(port, pods)
