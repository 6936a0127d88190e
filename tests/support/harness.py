"""Run a service's real app in the test's event loop, against the test stack's real servers.

    async with run_service(stack, "timebank", create_app) as svc:
        r = await svc.client.post("/members", json=..., headers=stack.auth("u1", "resident"))

The app's lifespan runs (outbox relay, consumers, jobs); HTTP goes through the app's full ASGI
stack (middleware, validation, problem handlers) by httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.kit.settings import ServiceSettings
from tests.support.stack import TestStack, new_namespace


@dataclass
class RunningService:
    app: FastAPI
    client: httpx.AsyncClient
    settings: ServiceSettings
    database_url: str

    @property
    def state(self) -> Any:
        return self.app.state


def settings_for(
    stack: TestStack, settings_cls: type[ServiceSettings], database_url: str, namespace: str, **overrides: Any
) -> ServiceSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": stack.redis_url,
        "kafka_bootstrap_servers": stack.kafka_bootstrap,
        "kafka_namespace": namespace,
        "jwks_url": stack.jwks_url,
        "outbox_poll_interval_s": 0.2,
        "consumer_backoff_s": 0.05,
        "log_json": False,
        "db_pool_size": 20,
    }
    values.update(overrides)
    return settings_cls(**values)


def _state_per_request(app: Any) -> Any:
    """As a server does (ASGI lifespan spec): each request gets a shallow copy of the lifespan
    state, so one request's `request.state` never leaks into the next."""

    async def call(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "state": dict(scope.get("state") or {})}, receive, send)

    return call


@asynccontextmanager
async def run_service(
    stack: TestStack,
    service: str,
    create_app: Callable[[Any], FastAPI],
    settings_cls: type[ServiceSettings],
    *,
    namespace: str | None = None,
    database_url: str | None = None,
    keep_database: bool = False,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    url = database_url or await stack.fresh_database(service)
    settings = settings_for(stack, settings_cls, url, namespace or new_namespace(), **overrides)
    app = create_app(settings)
    try:
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
            # Like a real client: an unhandled error is a 500 response, not an exception in the test.
            transport = httpx.ASGITransport(app=_state_per_request(manager.app), raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield RunningService(app=app, client=client, settings=settings, database_url=url)
    finally:
        if not keep_database and database_url is None:
            await stack.drop_database(url)
