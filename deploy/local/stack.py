"""`make run`: the whole platform on one machine, from a fresh clone, with demo data.

Starts PostgreSQL, Valkey and Tansu from the virtual environment (unless DATABASE_URL, REDIS_URL
or KAFKA_BOOTSTRAP_SERVERS point at external servers), migrates each service's database, starts
every service that exists and the gateway with uvicorn on loopback, seeds the demo community once,
prints the URLs and ready-made tokens. A process that crashes is started again with backoff
(`deploy/local/supervisor.py`); the stack stops everything it started on Ctrl-C, `make stop`, or
when a process cannot be restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from deploy.local import demo_community as demo
from deploy.local.servers import EmbeddedPostgres, EmbeddedRedis, TansuBroker, port_is_free
from deploy.local.supervisor import ProcessChild, ServerChild, Supervisor
from deploy.local.welcome import print_welcome
from gateway.keys import ensure_keys, mint_token

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(os.environ.get("LOCAL_STATE_DIR", ROOT / ".local"))
PIDFILE = LOCAL / "stack.pid"

# The order matters for seeding: property owns the registry the others refer to.
SERVICES: list[tuple[str, int]] = [
    ("property", 8003),
    ("timebank", 8001),
    ("parking", 8002),
    ("governance", 8004),
    ("citysync", 8005),
    ("notify", 8006),
    ("security", 8007),
]
GATEWAY_PORT = 8000


@dataclass
class Proc:
    name: str
    port: int
    child: ProcessChild

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        assert self.child.popen is not None
        return self.child.popen


def only_seeding_awaited(answer: httpx.Response) -> bool:
    """A 503 from the gateway whose one unmet check is the start-up file (the demo data to come)."""
    try:
        checks = answer.json().get("checks", {})
    except ValueError:
        return False
    unmet = {name for name, state in checks.items() if state != "ok"}
    return answer.status_code == 503 and unmet == {"startup"}


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def env_port(name: str, default: int) -> int:
    return int(os.environ.get(f"{name.upper()}_PORT", default))


def existing_services() -> list[tuple[str, int]]:
    return [(name, env_port(name, port)) for name, port in SERVICES if (ROOT / "services" / name / "app.py").exists()]


def gateway_exists() -> bool:
    return (ROOT / "gateway" / "app.py").exists()


class Stack:
    def __init__(self) -> None:
        self.pg: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.broker: TansuBroker | None = None
        self.procs: list[Proc] = []
        self.services = existing_services()
        self.gateway_port = env_port("gateway", GATEWAY_PORT)
        self.database_url = os.environ.get("DATABASE_URL")
        self.redis_url = os.environ.get("REDIS_URL")
        self.kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.keys_dir = LOCAL / "keys"
        self.supervisor = Supervisor(say)
        # Written once the demo data is in; the gateway's /readyz waits for it (`ready_after_file`).
        self.with_demo = True
        self.demo_ready = LOCAL / "demo-data-ready"

    # --- preflight ---------------------------------------------------------------------------------

    def check_ports(self) -> None:
        wanted: list[tuple[str, int]] = list(self.services)
        if gateway_exists():
            wanted.append(("gateway", self.gateway_port))
        if self.database_url is None:
            wanted.append(("postgres", int(os.environ.get("LOCAL_PG_PORT", 15432))))
        if self.redis_url is None:
            wanted.append(("redis", int(os.environ.get("LOCAL_REDIS_PORT", 16379))))
        if self.kafka is None:
            wanted.append(("kafka", int(os.environ.get("LOCAL_KAFKA_PORT", 19092))))
        taken = [(name, port) for name, port in wanted if not port_is_free(port)]
        if taken:
            lines = ", ".join(f"{name} on 127.0.0.1:{port}" for name, port in taken)
            raise SystemExit(
                f"make run: port already in use: {lines}.\n"
                "Is another stack running? `make stop` stops it; or choose other ports, e.g. "
                + " ".join(
                    f"{name.upper()}_PORT=..."
                    if name not in ("postgres", "redis", "kafka")
                    else f"LOCAL_{ {'postgres': 'PG', 'redis': 'REDIS', 'kafka': 'KAFKA'}[name] }_PORT=..."
                    for name, _ in taken
                )
            )

    # --- servers -----------------------------------------------------------------------------------

    def start_servers(self) -> None:
        LOCAL.mkdir(parents=True, exist_ok=True)
        LOCAL.chmod(0o755)
        if self.database_url is None:
            self.pg = EmbeddedPostgres(LOCAL / "pg" / "data", int(os.environ.get("LOCAL_PG_PORT", 15432)))
            t = time.monotonic()
            self.pg.start()
            self.database_url = self.pg.url + "/postgres"
            say(f"PostgreSQL 18 (embedded) on 127.0.0.1:{self.pg.port}, data in {self.pg.data_dir} ({time.monotonic() - t:.1f}s)")
            self.supervisor.add(ServerChild("postgres", self.pg.is_running, self.pg.start))
        else:
            say("PostgreSQL: external (DATABASE_URL)")
        if self.redis_url is None:
            self.redis = EmbeddedRedis(LOCAL / "redis", int(os.environ.get("LOCAL_REDIS_PORT", 16379)))
            self.redis.start()
            self.redis_url = self.redis.url
            say(f"Valkey (Redis protocol) on 127.0.0.1:{self.redis.port}")
            self.supervisor.add(ServerChild("valkey", self.redis.is_running, self.redis.start))
        else:
            say("Redis: external (REDIS_URL)")
        if self.kafka is None:
            self.broker = TansuBroker(LOCAL / "tansu", int(os.environ.get("LOCAL_KAFKA_PORT", 19092)))
            self.broker.start()
            self.kafka = self.broker.bootstrap
            self.broker.create_topics(self.topics())
            say(f"Tansu (Kafka protocol, in memory) on {self.kafka}; topics {', '.join(self.topics())}")
            self.supervisor.add(ServerChild("tansu", self.broker.is_running, self.restart_broker))
        else:
            say("Kafka: external (KAFKA_BOOTSTRAP_SERVERS)")
        ensure_keys(self.keys_dir)

    @staticmethod
    def topics() -> list[str]:
        return [f"{name}.events" for name, _ in SERVICES]

    def restart_broker(self) -> None:
        """Tansu comes back empty: the topics again; the relays re-send what it lost."""
        assert self.broker is not None
        self.broker.start()
        self.broker.create_topics(self.topics())

    def child_env(self) -> dict[str, str]:
        assert self.database_url and self.redis_url and self.kafka
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            KAFKA_BOOTSTRAP_SERVERS=self.kafka,
            KAFKA_PROFILE=os.environ.get("KAFKA_PROFILE", "local" if self.broker else "kafka"),
            JWKS_URL=os.environ.get("JWKS_URL", f"file://{self.keys_dir / 'jwks.json'}"),
            GATEWAY_KEYS_DIR=str(self.keys_dir),
            PYTHONPATH=str(ROOT),
            # Bytecode compiled once and kept under .local: with none cached (a venv installed by uv,
            # or PYTHONDONTWRITEBYTECODE set), every start, and every restart after a crash, compiled
            # SQLAlchemy, FastAPI, pydantic... again: 2-3 CPU s of a service's 4-6 s to ready.
            PYTHONPYCACHEPREFIX=str(LOCAL / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if self.with_demo:
            env["GATEWAY_READY_AFTER_FILE"] = str(self.demo_ready)
        for name, port in self.services:
            env.setdefault(f"GATEWAY_{name.upper()}_URL", f"http://127.0.0.1:{port}")
        return env

    async def migrate(self) -> None:
        from services.kit.migrations import upgrade_database
        from services.kit.settings import with_database

        assert self.database_url
        for name, _ in self.services:
            url = os.environ.get(f"{name.upper()}_DATABASE_URL") or with_database(self.database_url, name)
            await upgrade_database(name, url)
            say(f"{name}: database migrated")
        if gateway_exists():
            try:
                mod = importlib.import_module("gateway.migrations_runner")
            except ModuleNotFoundError:
                return
            url = os.environ.get("GATEWAY_DATABASE_URL") or with_database(self.database_url, "gateway")
            await mod.upgrade(url)
            say("gateway: database migrated")

    # --- processes ---------------------------------------------------------------------------------

    def spawn(self, name: str, app: str, port: int) -> None:
        # The gateway runs under its own entry point, which adds the request-head limits to uvicorn.
        server = ["gateway.serve"] if app == "gateway.app:create_app" else ["uvicorn", "--factory", app]
        child = ProcessChild(
            name,
            [
                sys.executable,
                "-m",
                *server,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "5",
            ],
            LOCAL / f"{name}.log",
            env=self.child_env(),
            cwd=ROOT,
        )
        child.start()
        self.supervisor.add(child)
        self.procs.append(Proc(name, port, child))

    def start_services(self) -> None:
        for name, port in self.services:
            self.spawn(name, f"services.{name}.app:create_app", port)
        if gateway_exists():
            self.spawn("gateway", "gateway.app:create_app", self.gateway_port)

    async def wait_ready(self, timeout: float = 90, seeded: bool = False, only: str | None = None) -> None:
        """Every process answering; before the demo data is in (`seeded` false), the gateway's
        readiness may still wait for that alone, which the seeding itself is about to end."""
        async with httpx.AsyncClient(timeout=3) as client:
            for proc in [p for p in self.procs if only in (None, p.name)]:
                deadline = time.monotonic() + timeout
                last = "no answer"
                while True:
                    if proc.popen.poll() is not None:
                        raise SystemExit(f"{proc.name} exited (code {proc.popen.returncode}); see {LOCAL / (proc.name + '.log')}")
                    try:
                        r = await client.get(f"http://127.0.0.1:{proc.port}/readyz")
                        if r.status_code == 200 or (not seeded and only_seeding_awaited(r)):
                            break
                        last = r.text
                    except httpx.HTTPError as exc:
                        last = exc.__class__.__name__
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{proc.name} not ready after {timeout}s: {last}; see {LOCAL / (proc.name + '.log')}")
                    await asyncio.sleep(0.3)
                say(f"{proc.name}: ready on http://127.0.0.1:{proc.port}")

    async def mark_demo_ready(self) -> None:
        """The demo data is in: the gateway's /readyz may turn 200, and only then is the stack up."""
        self.demo_ready.write_text(datetime.now(UTC).isoformat())
        await self.wait_ready(seeded=True, only="gateway")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.child.terminate()
        for proc in reversed(self.procs):
            proc.child.stop()
        self.procs.clear()
        if self.broker:
            self.broker.stop()
        if self.redis:
            self.redis.stop()
        if self.pg:
            self.pg.stop()
        PIDFILE.unlink(missing_ok=True)
        say("stopped")

    # --- demo data ---------------------------------------------------------------------------------

    def token_for(self, subject: str, roles: list[str], community: str = demo.COMMUNITY) -> str:
        key = ensure_keys(self.keys_dir)[0]
        return mint_token(key, subject=subject, roles=roles, community=community, ttl_s=3600)

    def seeded_marker(self) -> Path:
        # Kept beside the embedded database, so wiping .local/pg re-seeds; external servers get one per URL.
        if self.pg is not None:
            return LOCAL / "pg" / "demo-seeded.json"
        return LOCAL / f"demo-seeded-{abs(hash(self.database_url)) % 10**8}.json"

    async def seed_demo(self) -> None:
        marker = self.seeded_marker()
        done: list[str] = json.loads(marker.read_text()) if marker.exists() else []
        targets = [(p.name, p.port) for p in self.procs]
        for name, port in targets:
            if name == "gateway" and name in done:
                # Seeded before communities were data: the demo community is created (a PUT, harmless again).
                from gateway.demo import seed_community

                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                    await seed_community(client, self.token_for)
            if name in done:
                continue
            module_name = "gateway.demo" if name == "gateway" else f"services.{name}.demo"
            if importlib.util.find_spec(module_name) is None:
                continue
            module = importlib.import_module(module_name)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                await module.seed_demo(client, self.token_for)
            done.append(name)
            marker.write_text(json.dumps(done))
            say(f"{name}: demo data created")
        if not targets:
            say("no services yet")


async def run(args: argparse.Namespace) -> None:
    stack = Stack()
    stack.check_ports()
    PIDFILE.parent.mkdir(parents=True, exist_ok=True)
    PIDFILE.write_text(str(os.getpid()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        stack.with_demo = not args.no_demo
        stack.demo_ready.unlink(missing_ok=True)
        stack.start_servers()
        await stack.migrate()
        stack.start_services()
        await stack.wait_ready()
        if stack.with_demo:
            await stack.seed_demo()
            await stack.mark_demo_ready()
        print_welcome(stack, LOCAL, gateway_exists())
        if args.exit_when_ready:
            return
        reason = await stack.supervisor.watch(stop)
        if reason is not None:
            say(f"{reason}; stopping (logs in {LOCAL})")
    finally:
        stack.stop()


def stop_running() -> None:
    if not PIDFILE.exists():
        print("no stack is running (no .local/stack.pid)")
        return
    pid = int(PIDFILE.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        PIDFILE.unlink(missing_ok=True)
        print("the stack had already stopped")
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("stack stopped")
            return
        time.sleep(0.1)
    print(f"stack (pid {pid}) is still stopping")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="start everything and wait for Ctrl-C")
    run_p.add_argument("--no-demo", action="store_true", help="do not create demo data")
    run_p.add_argument("--exit-when-ready", action="store_true", help="stop again once everything is ready (smoke test)")
    sub.add_parser("stop", help="stop a running stack")
    args: Any = parser.parse_args(argv)
    if args.command == "run":
        asyncio.run(run(args))
    else:
        stop_running()


if __name__ == "__main__":
    main()
