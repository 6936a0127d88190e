"""Keeping the local stack's processes up: a crashed one is started again, with backoff.

`make run` registers every process it starts (the servers and each service's uvicorn) with a
`Supervisor`. When one exits, the exit is logged and the process is started again after a
backoff that doubles with each restart in the last `window_s` (0.5 s, 1 s, 2 s ... up to
`max_backoff_s`). A process that needs more than `max_restarts` restarts within the window, or
cannot be started at all, is one the supervisor cannot restart: `watch` returns the reason and
the stack stops. Otherwise the stack stops only on Ctrl-C or `make stop`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol


class Supervised(Protocol):
    name: str

    def running(self) -> bool: ...

    def start(self) -> None: ...

    def exit_description(self) -> str: ...


@dataclass
class ProcessChild:
    """A child process started from a command line, its output appended to `log_path`."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self._log is None:
            self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exit_description(self) -> str:
        code = self.popen.returncode if self.popen is not None else None
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def terminate(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10) -> None:
        """Wait for it to end after `terminate()` (killing its process group after `timeout`)."""
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class ServerChild:
    """An embedded server (PostgreSQL, Valkey, Tansu) watched through its own start and check."""

    name: str
    is_running: Callable[[], bool]
    start_server: Callable[[], None]

    def running(self) -> bool:
        return self.is_running()

    def start(self) -> None:
        self.start_server()

    def exit_description(self) -> str:
        return "stopped"


@dataclass
class _Watch:
    child: Supervised
    restarts: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


class Supervisor:
    def __init__(
        self,
        say: Callable[[str], None],
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_restarts: int = 5,
        window_s: float = 60.0,
        poll_s: float = 0.2,
    ):
        self.say = say
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.poll_s = poll_s
        self._watches: list[_Watch] = []

    def add(self, child: Supervised) -> None:
        """Watch `child`, which the caller has started."""
        self._watches.append(_Watch(child))

    async def watch(self, stop: asyncio.Event) -> str | None:
        """Restart what exits until `stop` is set (returns None) or a process cannot be restarted
        (returns why)."""
        while not stop.is_set():
            for watch in self._watches:
                reason = self._tend(watch, time.monotonic())
                if reason is not None:
                    return reason
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                pass
        return None

    def _tend(self, watch: _Watch, now: float) -> str | None:
        child = watch.child
        if watch.restart_at is None:
            if child.running():
                return None
            while watch.restarts and now - watch.restarts[0] > self.window_s:
                watch.restarts.popleft()
            if len(watch.restarts) >= self.max_restarts:
                times = len(watch.restarts) + 1
                return f"{child.name} {child.exit_description()}, {times} times within {self.window_s:.0f}s; giving up"
            delay = min(self.backoff_s * 2 ** len(watch.restarts), self.max_backoff_s)
            self.say(f"{child.name} {child.exit_description()}; restarting in {delay:.1f}s")
            watch.restart_at = now + delay
            return None
        if now < watch.restart_at:
            return None
        watch.restart_at = None
        watch.restarts.append(now)
        try:
            child.start()
        except Exception as exc:  # the next round sees it not running and counts another restart
            self.say(f"{child.name} could not be started: {exc.__class__.__name__}: {exc}")
            return None
        self.say(f"{child.name} restarted (restart {len(watch.restarts)} in the last {self.window_s:.0f}s)")
        return None
