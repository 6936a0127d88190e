"""`/healthz` (the process is alive) and `/readyz` (its database, broker and Redis answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None when fine, else the reason

router = APIRouter(tags=["operations"])


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


def redis_check(client: object, timeout: float = 1.0) -> ReadinessCheck:
    async def check() -> str | None:
        try:
            async with asyncio.timeout(timeout):
                await client.ping()  # type: ignore[attr-defined]
        except Exception as exc:
            return f"redis unreachable: {exc.__class__.__name__}"
        return None

    return check


@router.get("/healthz", summary="Liveness", operation_id="operations-healthz")
async def healthz() -> dict[str, str]:
    """The process answers; nothing else is checked, so a slow database never gets a replica restarted."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database, broker and Redis reachable",
    operation_id="operations-readyz",
    responses={503: {"description": "Not ready; `checks` says why"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Every dependency's check, run together; 503 while one fails, so no traffic is sent to this replica."""
    checks: dict[str, ReadinessCheck] = getattr(request.app.state, "readiness_checks", {})
    names = list(checks)
    results = await asyncio.gather(*(checks[n]() for n in names))
    report = {name: (reason or "ok") for name, reason in zip(names, results, strict=True)}
    ready = all(r is None for r in results)
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": report}, status_code=200 if ready else 503)
