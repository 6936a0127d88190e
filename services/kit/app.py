"""`create_service_app`: the one way every service builds its FastAPI app.

The lifespan opens the database engine, Redis (when configured) and the token verifier, starts
the outbox relay, the service's consumers and its scheduled jobs as supervised background tasks,
and closes all of them on shutdown. Nothing a second replica would need is kept in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from services.kit.auth import TokenVerifier
from services.kit.db import RequestSessions, make_engine, make_sessionmaker
from services.kit.direct_routes import DirectRoute, DirectRoutes
from services.kit.health import database_check, redis_check
from services.kit.health import readiness as kit_readiness
from services.kit.health import router as health_router
from services.kit.inbox import ConsumerSpec, EventConsumer
from services.kit.job_runs import claim_period, replica_name
from services.kit.kafka import make_producer
from services.kit.openapi import DocumentedApp, describe_from_docstrings
from services.kit.outbox import OutboxNotifier
from services.kit.problems import install_problem_handlers
from services.kit.query_params import refuse_unknown_query
from services.kit.relay import OutboxRelay
from services.kit.request_telemetry import NO_NATIVE_TELEMETRY, RequestTelemetry
from services.kit.settings import ServiceSettings
from services.kit.telemetry import (
    JOB_DURATION,
    JOB_LAST_SUCCESS,
    JOB_RUNS,
    configure_logging,
    metrics_endpoint,
    setup_tracing,
)
from services.kit.wakes import Wakes

log = logging.getLogger("kit.app")

SHUTDOWN_STEP_S = 5.0
CONTACT = {"name": "Community platform maintainers"}
LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}

# A job gets the app's state (engine, sessionmaker, redis...) and runs one round; the kit repeats it.
Job = Callable[[Any], Awaitable[None]]


@dataclass
class ScheduledJob:
    name: str
    every_s: float
    run: Job


@dataclass
class ServiceParts:
    routers: Sequence[APIRouter]
    consumers: Sequence[ConsumerSpec] = ()
    jobs: Sequence[ScheduledJob] = ()
    on_startup: Sequence[Callable[[FastAPI], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[FastAPI], Awaitable[None]]] = ()
    # {"name": ..., "description": ...} for each tag the routers use; the kit adds `operations`.
    tags_metadata: Sequence[dict[str, Any]] = field(default_factory=list)
    # Readiness fails only when one of these fails; any other dependency down makes the app `degraded`.
    cannot_serve_without: frozenset[str] = frozenset({"database"})
    # The `/readyz` route: the kit's, or an app's own report (one route and one operation id either way).
    readiness: APIRouter = field(default_factory=lambda: kit_readiness)
    # Everyday writes answered ahead of FastAPI's routing (services/kit/direct_routes.py).
    direct_routes: Sequence[DirectRoute] = ()


def operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}".replace("_", "-")


async def supervise(name: str, factory: Callable[[], Awaitable[None]]) -> None:
    """Keep a background loop alive: restart it after an unexpected crash, with backoff."""
    backoff = 0.5
    while True:
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s crashed; restarting", name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30)


async def repeat(job: ScheduledJob, state: Any) -> None:
    """Run the job once per `every_s` period across all replicas (services/kit/job_runs.py), counting
    each run's outcome and duration in /metrics; a period another replica claimed counts as `elsewhere`."""
    service = state.settings.service_name
    replica = replica_name()
    while True:
        started = time.monotonic()
        try:
            claim = await claim_period(state.engine, job.name, job.every_s, replica)
            if claim.won:
                await job.run(state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("job %s failed: %s: %s", job.name, exc.__class__.__name__, exc)
            JOB_RUNS.labels(service, job.name, "failed").inc()
            JOB_DURATION.labels(service, job.name).observe(time.monotonic() - started)
            await asyncio.sleep(job.every_s)
            continue
        if not claim.won:
            JOB_RUNS.labels(service, job.name, "elsewhere").inc()
        else:
            JOB_RUNS.labels(service, job.name, "ok").inc()
            JOB_LAST_SUCCESS.labels(service, job.name).set_to_current_time()
            JOB_DURATION.labels(service, job.name).observe(time.monotonic() - started)
        # Until the next period starts; at once if this run outlasted its period.
        await asyncio.sleep(max(0.0, claim.wait_s - (time.monotonic() - started)))


def create_service_app(
    settings: ServiceSettings,
    parts: ServiceParts,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    start_background: bool = True,
) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    setup_tracing(settings.service_name, statements=settings.trace_statements)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size, max_overflow=0)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.readiness_checks = {"database": database_check(engine)}
        app.state.cannot_serve_without = parts.cannot_serve_without
        app.state.redis = None
        if settings.redis_url:
            from redis.asyncio import BlockingConnectionPool, Redis

            # A burst waits for a connection (up to the socket timeout) instead of redis-py's
            # default pool refusing past 100 with an error that would surface as a 500.
            pool = BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=100, timeout=2, socket_timeout=2, socket_connect_timeout=2
            )
            app.state.redis = Redis(connection_pool=pool)
            app.state.readiness_checks["redis"] = redis_check(app.state.redis)
        if settings.jwks_url:
            app.state.token_verifier = TokenVerifier(
                settings.jwks_url, issuer=settings.token_issuer, audience=settings.token_audience
            )
        # Idle consumers rest until a produce wakes them; without Redis they poll as before (wakes.py).
        wakes = Wakes(settings.redis_url, settings.kafka_namespace, listen=bool(parts.consumers)) if settings.redis_url else None
        relay = OutboxRelay(
            service=settings.service_name,
            engine=engine,
            producer_factory=lambda: make_producer(settings),
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            retention=timedelta(days=settings.outbox_retention_days),
            namespace=settings.kafka_namespace,
            loss_check_interval_s=settings.outbox_loss_check_s,
            max_event_bytes=settings.outbox_max_event_bytes,
            announce=wakes.announce if wakes is not None else None,
        )
        app.state.relay = relay
        notifier = OutboxNotifier(engine, relay)

        async def broker_check() -> str | None:
            return None if await relay.broker_reachable() else "broker unreachable"

        app.state.readiness_checks["broker"] = broker_check
        consumers = [
            EventConsumer(spec, settings=settings, sessionmaker=app.state.sessionmaker, wakes=wakes) for spec in parts.consumers
        ]
        app.state.consumers = consumers
        for hook in parts.on_startup:
            await hook(app)
        tasks: list[asyncio.Task[None]] = []
        if start_background:
            tasks.append(asyncio.create_task(supervise("outbox-relay", relay.run), name="outbox-relay"))
            tasks.append(asyncio.create_task(supervise("outbox-notifier", notifier.run), name="outbox-notifier"))
            if wakes is not None:
                tasks.append(asyncio.create_task(supervise("wakes", wakes.run), name="wakes"))
            for consumer in consumers:
                tasks.append(
                    asyncio.create_task(
                        supervise(f"consumer-{consumer.spec.group}", consumer.run), name=f"consumer-{consumer.spec.group}"
                    )
                )
            for job in parts.jobs:
                tasks.append(
                    asyncio.create_task(supervise(f"job-{job.name}", partial(repeat, job, app.state)), name=f"job-{job.name}")
                )
        # What start-up made (modules, models, routes, pools) lives as long as the app: kept out of the
        # collector's full passes, which otherwise rescan it every few hundred requests.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            for task in tasks:
                task.cancel()
            if tasks:
                # Bounded too: a client library mid-reconnect can take long to honour cancellation.
                _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_STEP_S)
                for task in stuck:
                    log.warning("background task %s did not stop within %ss", task.get_name(), SHUTDOWN_STEP_S)
            # Each step is bounded: a broker or database that went away must not hang shutdown
            # (a replica being replaced would otherwise wait for its kill timeout).
            steps: list[Awaitable[Any]] = [hook(app) for hook in parts.on_shutdown]
            steps += [consumer.close() for consumer in consumers]
            steps.append(relay.close())
            if wakes is not None:
                steps.append(wakes.close())
            if app.state.redis is not None:
                steps.append(app.state.redis.aclose())
            for step in steps:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(step, SHUTDOWN_STEP_S)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(engine.dispose(), SHUTDOWN_STEP_S)

    app = DocumentedApp(
        tag_definitions=parts.tags_metadata,
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        contact=CONTACT,
        license_info=LICENSE,
        # Applies to every route included below: an undeclared query parameter is a 422, never ignored.
        dependencies=[Depends(refuse_unknown_query)],
        # FastAPI's pages load Swagger UI and ReDoc from a CDN an intranet cannot reach; the gateway
        # serves the merged document's pages from the project's own assets, so a service has none.
        docs_url=None,
        redoc_url=None,
        telemetry=NO_NATIVE_TELEMETRY,
    )
    install_problem_handlers(app)
    if parts.direct_routes and settings.direct_routes:
        app.add_middleware(DirectRoutes, routes=parts.direct_routes)
    app.add_middleware(RequestSessions)
    app.add_middleware(RequestTelemetry, service=settings.service_name)
    for probes in (health_router, parts.readiness):
        describe_from_docstrings(probes.routes)
        app.include_router(probes)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in parts.routers:
        describe_from_docstrings(router.routes)
        app.include_router(router)

    return app
