"""The probes, and what each tells an orchestrator.

- `/healthz` (liveness): the process answers HTTP. It asks no other server, so an outage elsewhere
  never gets a working pod restarted.
- `/readyz` (readiness): the replica can serve requests. `503` only when a dependency it cannot
  answer without fails (a service's own database; the gateway's Redis too). Any other failing
  dependency makes it `degraded` with `200`: with the broker down, writes wait in the outbox and
  reads work, so a broker maintenance window keeps every pod behind the load balancer.

The body always names each dependency's state: `{status: ready|degraded|not ready, checks: {...}}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None when fine, else the reason
ReadinessStatus = Literal["ready", "degraded", "not ready"]

router = APIRouter(tags=["operations"])
# On a router of its own so an app with its own readiness report (the gateway's) serves that one instead.
readiness = APIRouter(tags=["operations"])


@dataclass(frozen=True)
class Readiness:
    status: ReadinessStatus
    checks: dict[str, str]  # dependency -> "ok" or why not

    @property
    def can_serve(self) -> bool:
        return self.status != "not ready"


async def assess(checks: Mapping[str, ReadinessCheck], cannot_serve_without: Collection[str]) -> Readiness:
    """Run every check at once; only the dependencies in `cannot_serve_without` decide readiness."""
    names = list(checks)
    results = await asyncio.gather(*(checks[n]() for n in names))
    failed = {name for name, reason in zip(names, results, strict=True) if reason is not None}
    status: ReadinessStatus = "not ready" if failed & set(cannot_serve_without) else ("degraded" if failed else "ready")
    return Readiness(status, {name: (reason or "ok") for name, reason in zip(names, results, strict=True)})


async def assess_app(state: Any) -> Readiness:
    """The readiness of the app whose `state` the kit's lifespan filled."""
    checks: Mapping[str, ReadinessCheck] = getattr(state, "readiness_checks", {})
    return await assess(checks, getattr(state, "cannot_serve_without", frozenset(checks)))


def database_check(engine: AsyncEngine, timeout: float = 2.0) -> ReadinessCheck:
    async def check() -> str | None:
        try:
            async with asyncio.timeout(timeout):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database unreachable: {exc.__class__.__name__}"
        return None

    return check


def file_check(path: Path) -> ReadinessCheck:
    """Ready once `path` exists: a start-up step outside the process (seeding) says it is done."""

    async def check() -> str | None:
        return None if await asyncio.to_thread(path.exists) else f"waiting for {path.name} (start-up not finished)"

    return check


def redis_check(client: object, timeout: float = 1.0) -> ReadinessCheck:
    async def check() -> str | None:
        try:
            async with asyncio.timeout(timeout):
                await client.ping()  # type: ignore[attr-defined]
        except Exception as exc:
            return f"redis unreachable: {exc.__class__.__name__}"
        return None

    return check


@router.get("/healthz", summary="Liveness: the process answers; asks no other server", operation_id="operations-healthz")
async def healthz() -> dict[str, str]:
    """The process answers; nothing else is checked, so a slow database never gets a replica restarted."""
    return {"status": "ok"}


@readiness.get(
    "/readyz",
    summary="Readiness: can serve requests (`degraded` when only the broker or a cache is down)",
    operation_id="operations-readyz",
    responses={503: {"description": "Cannot serve: a dependency it cannot answer without fails; `checks` says which"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Whether this replica can serve: 503 only when a dependency it cannot answer without fails."""
    readiness = await assess_app(request.app.state)
    return JSONResponse({"status": readiness.status, "checks": readiness.checks}, status_code=200 if readiness.can_serve else 503)
