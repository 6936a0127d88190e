"""`make run`'s supervisor with real child processes: a crashed one serves again within 10 s; one
that cannot be kept up stops the stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from deploy.local.servers import free_port
from deploy.local.supervisor import ProcessChild, Supervisor


async def within(seconds: float, condition: Callable[[], object]) -> float:
    """Wait until `condition()` (sync or async) is true; returns how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return loop.time() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds}s")


async def serves(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_child_killed_with_sigkill_is_serving_again_within_10_seconds(tmp_path: Path) -> None:
    port = free_port()
    child = ProcessChild(
        "web", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], tmp_path / "web.log", cwd=tmp_path
    )
    said: list[str] = []
    supervisor = Supervisor(said.append)
    child.start()
    supervisor.add(child)
    stop = asyncio.Event()
    watching = asyncio.create_task(supervisor.watch(stop))
    try:
        await within(10, lambda: serves(port))
        assert child.popen is not None
        first = child.popen.pid
        os.kill(first, signal.SIGKILL)
        took = await within(10, lambda: child.popen is not None and child.popen.pid != first and serves(port))
        assert took < 10
        assert "web killed by SIGKILL; restarting in 0.5s" in said
        assert any(line.startswith("web restarted") for line in said)
        stop.set()
        assert await asyncio.wait_for(watching, 5) is None
    finally:
        stop.set()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        child.terminate()
        child.stop()


async def test_a_child_that_keeps_crashing_is_given_up_and_the_reason_returned(tmp_path: Path) -> None:
    child = ProcessChild("doomed", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "doomed.log")
    said: list[str] = []
    supervisor = Supervisor(said.append, backoff_s=0.05, max_restarts=3)
    child.start()
    supervisor.add(child)
    reason = await asyncio.wait_for(supervisor.watch(asyncio.Event()), 10)
    assert reason == "doomed exited with code 3, 4 times within 60s; giving up"
    assert [line for line in said if "restarting in" in line] == [
        "doomed exited with code 3; restarting in 0.1s",
        "doomed exited with code 3; restarting in 0.1s",
        "doomed exited with code 3; restarting in 0.2s",
    ]
    child.stop()
