"""The memory drill: the gateway, started as `python -m gateway.serve`, stays within 50 MB of its
idle resident memory while 8 anonymous clients each send a 200 MB chunked body and 8 more each
send a 64 MB header. Every body is refused with 413 once past the limit and every head with 431
while it arrives, so nothing of them is held; the clients stop sending when the answer comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from deploy.local.servers import free_port
from tests.gateway.conftest import gateway_template
from tests.support.stack import TestStack, new_namespace

__all__ = ["gateway_template"]  # a fixture, used by name

MB = 1024 * 1024
BODY_BYTES = 200 * MB
HEADER_BYTES = 64 * MB
PIECE = MB
CLIENTS = 8
ROOT = Path(__file__).resolve().parents[2]


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def chunked_body() -> Iterator[bytes]:
    """200 MB of chunked framing, made a piece at a time (never held whole)."""
    piece = b"{" + b" " * (PIECE - 1)
    for _ in range(BODY_BYTES // PIECE):
        yield b"%x\r\n%b\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def huge_head() -> Iterator[bytes]:
    yield b"GET /auth/me HTTP/1.1\r\nhost: gw\r\nx-big: "
    for _ in range(HEADER_BYTES // PIECE):
        yield b"a" * PIECE
    yield b"\r\n\r\n"


async def attack(port: int, pieces: Iterator[bytes]) -> int:
    """Send `pieces` until the gateway answers (or cuts the connection); the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.readline())
    try:
        for piece in pieces:
            if answer.done():
                break
            writer.write(piece)
            try:
                await writer.drain()
            except ConnectionError:
                break
        line = await asyncio.wait_for(answer, 30)
        return int(line.split(b" ", 2)[1])
    finally:
        answer.cancel()
        writer.close()


async def watch_peak(pid: int, peak: list[int], done: asyncio.Event) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], resident_kib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.02)


@contextlib.asynccontextmanager
async def gateway_process(stack: TestStack, database_url: str) -> AsyncIterator[tuple[int, int]]:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_REDIS_URL": stack.redis_url,
        "GATEWAY_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "GATEWAY_KAFKA_NAMESPACE": new_namespace(),
        "GATEWAY_JWKS_URL": stack.jwks_url,
        "GATEWAY_KEYS_DIR": str(stack.keys_dir),
        "GATEWAY_LOG_JSON": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.serve",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(600):
                assert proc.returncode is None, "the gateway exited"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the gateway did not come up within 30 s")
        yield proc.pid, port
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_memory_stays_flat_under_huge_bodies_and_headers(stack: TestStack, gateway_template: str) -> None:
    url = await stack.empty_database("gateway", template=gateway_template)
    try:
        async with gateway_process(stack, url) as (pid, port):
            idle = resident_kib(pid)
            peak, done = [idle], asyncio.Event()
            watcher = asyncio.create_task(watch_peak(pid, peak, done))
            body_head = b"POST %b HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            paths = [b"/auth/token", b"/auth/otp", b"/auth/logout"]
            bodies = [attack(port, with_head(body_head % paths[n % len(paths)])) for n in range(CLIENTS)]
            heads = [attack(port, huge_head()) for _ in range(CLIENTS)]
            statuses = await asyncio.wait_for(asyncio.gather(*bodies, *heads), 120)
            done.set()
            await watcher
        assert statuses[:CLIENTS] == [413] * CLIENTS, statuses
        assert statuses[CLIENTS:] == [431] * CLIENTS, statuses
        grew_mb = (peak[0] - idle) / 1024
        print(f"gateway RSS idle {idle / 1024:.0f} MB, peak {peak[0] / 1024:.0f} MB (+{grew_mb:.1f} MB)")
        assert grew_mb < 50, f"the gateway grew by {grew_mb:.0f} MB"
    finally:
        await stack.drop_database(url)


def with_head(head: bytes) -> Iterator[bytes]:
    yield head
    yield from chunked_body()
