"""The lean baseline of `bench/security_ingest.py`: what a lean FastAPI service ingesting the same
batches would be. FastAPI, an asyncpg pool, the kit's cached token check and role, the same batch
reader (`AccessBatchBody`), the same `security_ingest` statement and response; no telemetry, no
SQLAlchemy, no outbox relay, no consumers, no jobs (the outbox rows it writes stay unsent).

Served by `uvicorn --factory bench.lean_security:create_lean_app` with `LEAN_DATABASE_URL` (the
service's database) and `LEAN_JWKS_URL`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, FastAPI, Request

from bench.lean_routes import lean_lifespan
from services.kit.auth import Principal, require_roles
from services.kit.problems import install_problem_handlers
from services.kit.telemetry import current_traceparent
from services.security.access import INGEST
from services.security.events import publisher
from services.security.problems import UnknownDevice
from services.security.schemas import AccessAccepted, AccessBatchBody

lean = APIRouter()
Device = Annotated[Principal, require_roles("gate_device")]


@lean.post("/access-events", response_model=AccessAccepted)
async def lean_ingest(body: AccessBatchBody, request: Request, who: Device) -> AccessAccepted:
    events = body["events"]
    pool: asyncpg.Pool = request.app.state.pool
    row = await pool.fetchrow(
        INGEST,
        who.community,
        who.subject,
        [e["event_id"] for e in events],
        [e["direction"] for e in events],
        [e["credential_kind"] for e in events],
        [e.get("credential_id") for e in events],
        [e.get("pass_id") for e in events],
        [e.get("plate") for e in events],
        [e["occurred_at"] for e in events],
        datetime.now(UTC),
        publisher.topic,
        publisher.source,
        *current_traceparent(),
    )
    if row is None or row["stored"] is None:
        raise UnknownDevice()
    return AccessAccepted(received=len(events), stored=row["stored"])


def create_lean_app() -> FastAPI:
    """The baseline: what a lean FastAPI service doing the same ingestion would be."""
    app = FastAPI(lifespan=lean_lifespan, openapi_url=None)
    install_problem_handlers(app)
    app.include_router(lean)
    return app
