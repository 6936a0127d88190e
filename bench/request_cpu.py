"""CPU per request of an app's own work, without a server: the ASGI app driven in-process.

A diagnostic beside `bench/http_paths.py` (which measures through uvicorn and wrk): 16 concurrent
callers send the same GET (a path may carry a query string), or with `BENCH_BODY=<json>` a POST of
that body with a fresh `Idempotency-Key` each, to the app's ASGI callable inside its lifespan; the
tokens are `BENCH_TOKEN` (several, comma-separated, are taken in turn); the figure is
`time.process_time()` per request over all but the first 200 (which warm pools and caches). With
`BENCH_PROFILE=<file>` the timed part runs under cProfile. The app reads its settings from the
environment as it would under uvicorn (point them at a prepared database, such as the one
`bench/http_paths.py` makes).

    .venv/bin/python -m bench.request_cpu services.timebank.app:create_app /members/me 3000
"""

from __future__ import annotations

import asyncio
import cProfile
import importlib
import json
import os
import sys
import time
from typing import Any

import uvloop
from starlette.types import ASGIApp, Message

CALLERS = 16
WARM_UP = 200


class Caller:
    """Sends requests to the app (a GET, or with `body` a POST of it with a fresh `Idempotency-Key`;
    the tokens in turn) and counts the answers' statuses."""

    def __init__(self, app: ASGIApp, path: str, tokens: list[str], body: bytes | None = None):
        self.app = app
        self.path, _, query = path.partition("?")
        self.query = query.encode()
        self.tokens = [b"Bearer " + token.encode() for token in tokens]
        self.body = body
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def headers(self) -> list[tuple[bytes, bytes]]:
        self.sent += 1
        headers = [(b"host", b"bench"), (b"authorization", self.tokens[self.sent % len(self.tokens)])]
        if self.body is not None:
            key = f"{os.getpid()}-{time.time_ns()}-{self.sent}".encode()
            headers += [(b"content-type", b"application/json"), (b"idempotency-key", key)]
        return headers

    async def get(self) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET" if self.body is None else "POST",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": self.query,
            "root_path": "",
            "headers": self.headers(),
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        asked = asyncio.Event()

        async def receive() -> Message:
            if not asked.is_set():
                asked.set()
                return {"type": "http.request", "body": self.body or b"", "more_body": False}
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] = self.statuses.get(message["status"], 0) + 1

        await self.app(scope, receive, send)

    async def run(self, count: int) -> None:
        left = [count]

        async def caller() -> None:
            while left[0] > 0:
                left[0] -= 1
                await self.get()

        await asyncio.gather(*(caller() for _ in range(CALLERS)))


async def main(factory: str, path: str, requests: int) -> None:
    module, name = factory.split(":")
    app = getattr(importlib.import_module(module), name)()
    body = os.environ.get("BENCH_BODY")
    caller = Caller(app, path, os.environ["BENCH_TOKEN"].split(","), body.encode() if body else None)
    async with app.router.lifespan_context(app):
        await caller.run(WARM_UP)
        # CPU time, not wall time: on a shared machine a wall-clock profile counts the waits for a core.
        profile = cProfile.Profile(time.process_time) if os.environ.get("BENCH_PROFILE") else None
        if profile is not None:
            profile.enable()
        started = time.process_time()
        await caller.run(requests)
        cpu_ms = (time.process_time() - started) * 1000 / requests
        if profile is not None:
            profile.disable()
            profile.dump_stats(os.environ["BENCH_PROFILE"])
    print(json.dumps({"cpu_ms_per_request": round(cpu_ms, 3), "statuses": caller.statuses, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3000))
