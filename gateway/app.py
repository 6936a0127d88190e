"""`create_app`: the gateway's FastAPI app (uvicorn --factory gateway.app:create_app).

Built with the kit like every service (problems, telemetry, its own database and consumers), plus
a front-door ASGI layer (request ids, access logs, per-route metrics, body size), CORS for the
staff dashboard, the identity routes, and the proxy route for `/api/<service>/...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from redis.exceptions import RedisError
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import api, community_api, openapi
from gateway.accesslog import install_access_log
from gateway.clients import RealClient
from gateway.communities import ServedCommunities
from gateway.consumers import registry_consumer
from gateway.front_door import FrontDoor
from gateway.identity import GatewayVerifier, OneTimeCodes, Passwords, SmsCodeSender
from gateway.keys import KeyRing, KeyRingVerifier, ensure_keys
from gateway.limits import (
    BodyOverLimit,
    BodyReadTimedOut,
    on_body_over_limit,
    on_body_read_timed_out,
)
from gateway.pages import install_pages
from gateway.problems import store_unavailable
from gateway.protection import IdempotencyStore, RateLimits
from gateway.proxy import Proxy
from gateway.revocations import DenyList
from gateway.routes import CITY_DOOR, CITY_PREFIX
from gateway.service import Identity
from gateway.settings import Settings
from gateway.throttle import LoginThrottle
from gateway.upstream_client import HttptoolsEngine
from services.kit.app import ServiceParts, create_service_app
from services.kit.auth import TokenVerifier
from services.kit.health import file_check
from services.kit.problems import Problem, problem_response

log = logging.getLogger("gateway.access")

TAGS = [
    {"name": "auth", "description": "Logging in, tokens, the keys that verify them, staff passwords and machine clients"},
    {"name": "platform", "description": "The communities the platform serves, created and configured by platform administrators"},
]
PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def on_store_unavailable(request: Request, exc: Exception) -> Response:
    """The gateway's own routes that need Redis (codes, login throttles) fail closed: 503, never 500."""
    logging.getLogger("gateway.store").warning("Redis unavailable on %s: %s", request.url.path, exc)
    return problem_response(store_unavailable(), request)


CITY_DOOR_PREFIX = CITY_PREFIX + "/"


def is_proxied(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return scope["type"] == "http" and path.startswith(("/api/", CITY_DOOR_PREFIX))


class ProxyDispatch:
    """Hands `/api/<service>/...` (and the city's door) to the proxy.

    It sits at the end of the proxy path's own short stack (`ProxyFastPath`): past FastAPI's
    routing, the kit's per-route middleware and the FastAPI instrumentation, which on the proxy
    path cost more CPU than the forwarding itself. The front door still traces, times, logs and
    labels these requests by route.
    """

    def __init__(self, app: ASGIApp | None = None):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not is_proxied(scope):
            assert self.app is not None, "only proxied requests reach the proxy path"
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # Forward the path as the caller encoded it: the decoded `path` may hold characters
        # (%1A, %2F...) that must not reach the upstream unescaped.
        raw = scope.get("raw_path")
        encoded = raw.decode("latin-1") if raw else path
        city_door = encoded.startswith(CITY_DOOR_PREFIX)
        if city_door:
            # The city's versioned door: /city/v1/feeds/{scene} is citysync's /feeds/{scene}.
            service, rest = CITY_DOOR[0], encoded.removeprefix(CITY_DOOR_PREFIX)
        else:
            service, _, rest = encoded.removeprefix("/api/").partition("/")
        scope["path_params"] = {"service": service, "path": rest, "city_door": city_door}
        request = Request(scope, receive, send)
        try:
            response = await scope["app"].state.proxy.handle(request)
        except Problem as problem:
            response = problem_response(problem, request)
        except RedisError:
            # What needs Redis and cannot do without it (an Idempotency-Key's claim) fails closed.
            response = problem_response(store_unavailable(), request)
        await response(scope, receive, send)


class ProxyFastPath:
    """Chooses the rest of the stack per request: the proxy path's short one, or the app's full one.

    The outermost of the app's own middleware, inside Starlette's server-error guard (the app's 500
    handler). Proxied requests then get CORS, the front door (span, request id, body size, metrics,
    access log) and the proxy; everything else (logins, JWKS, OpenAPI, health) gets the rest of the
    stack: CORS, the front door, the kit's metrics, FastAPI's routing.
    """

    def __init__(self, app: ASGIApp, proxied: ASGIApp):
        self.app = app
        self.proxied = proxied

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_proxied(scope):
            await self.proxied(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class UpstreamCheck:
    """A service's readiness as the gateway sees it: None when its /readyz answers 200, else why not."""

    def __init__(self, client: httpx.AsyncClient, name: str, base_url: str):
        self.client = client
        self.name = name
        self.url = base_url.rstrip("/") + "/readyz"

    async def __call__(self) -> str | None:
        try:
            response = await self.client.get(self.url, timeout=2.0)
        except httpx.HTTPError as exc:
            return f"{self.name} unreachable: {exc.__class__.__name__}"
        return None if response.status_code == 200 else f"{self.name} not ready ({response.status_code})"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if not settings.redis_url:
        raise ValueError("the gateway needs Redis (GATEWAY_REDIS_URL or REDIS_URL)")
    redis_url = settings.redis_url
    app = create_service_app(
        settings,
        # Logins, the deny list, rate limits and idempotency all live in Redis.
        ServiceParts(
            routers=[api.router, community_api.router],
            consumers=[registry_consumer],
            tags_metadata=TAGS,
            cannot_serve_without=frozenset({"database", "redis"}),
            # Its own readiness report (the services' and the broker's too) and the merged document.
            readiness=api.operations,
        ),
        title="Community platform gateway",
        description="Logins, tokens, and one door to every service.",
    )
    # httpx logs every upstream URL, query string included, at INFO; the access log covers calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_access_log(log, settings.service_name, as_json=settings.log_json)
    own_openapi = app.openapi()
    # The gateway serves the merged document instead of FastAPI's own /openapi.json.
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/openapi.json"]
    # No slash redirects: Starlette's would build an absolute Location from the caller's Host header.
    app.router.redirect_slashes = False
    # The documentation pages and the staff console, from the repository's own assets.
    install_pages(app)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            state = app.state
            if settings.mode == "local":
                # Only the local stack makes its first key; a cluster mounts the Secret read-only.
                ensure_keys(settings.keys_dir)
            keys = KeyRing(settings.keys_dir, reload_every_s=settings.keys_reload_s)
            kit_verifier: TokenVerifier
            if settings.oidc_jwks_url:
                kit_verifier = TokenVerifier(
                    settings.oidc_jwks_url,
                    issuer=settings.oidc_issuer or "",
                    audience=settings.oidc_audience or settings.token_audience,
                )
            else:
                kit_verifier = KeyRingVerifier(keys, issuer=settings.token_issuer, audience=settings.token_audience)
            deny = DenyList(state.redis, state.sessionmaker)
            deny.start_refill()
            served = ServedCommunities(state.sessionmaker, reload_every_s=settings.communities_reload_s)
            await served.start()
            state.communities = served
            state.verifier = GatewayVerifier(kit_verifier, deny, served)
            state.identity = Identity(
                settings=settings,
                keys=keys,
                passwords=Passwords(settings.argon2_time_cost, settings.argon2_memory_kib),
                codes=OneTimeCodes(state.redis, settings.otp_ttl_s, settings.otp_max_attempts),
                sender=SmsCodeSender(settings.sms_sender(), settings.otp_ttl_s, settings.sms_timeout_s),
                deny=deny,
            )
            state.limits = RateLimits(
                redis_url,
                state.redis,
                per_user=settings.rate_limit_user,
                per_ip=settings.rate_limit_ip,
                login=settings.rate_limit_login,
                code_sends_per_phone=settings.otp_sends_per_phone,
                code_sends_per_ip=settings.otp_sends_per_ip,
            )
            state.login_throttle = LoginThrottle(
                state.redis,
                free_failures=settings.login_free_failures,
                max_delay_s=settings.login_max_delay_s,
                forget_after_s=settings.login_failures_kept_s,
            )
            # Readiness checks and OpenAPI documents go over httpx; the proxy path has its own client.
            client = httpx.AsyncClient(trust_env=False)
            engine = HttptoolsEngine(settings.upstream_max_connections)
            stream_engine = HttptoolsEngine(settings.stream_max_open)
            state.http_client = client
            state.proxy = Proxy(
                settings,
                engine,
                state.verifier,
                state.limits,
                IdempotencyStore(state.redis, ttl_s=settings.idempotency_ttl_s, lock_s=settings.idempotency_lock_s),
                stream_engine,
            )
            state.own_openapi = own_openapi
            state.merged_openapi = None
            state.upstream_checks = {name: UpstreamCheck(client, name, url) for name, url in settings.upstreams.items()}
            if settings.ready_after_file is not None:
                state.readiness_checks["startup"] = file_check(settings.ready_after_file)
                state.cannot_serve_without = state.cannot_serve_without | {"startup"}
            refresher = asyncio.create_task(openapi.refresh_forever(state, settings.openapi_cache_s))
            # Everything built so far (modules, the app, its routes and clients) lives as long as the
            # process: out of the collector's generations, each full collection walks only what
            # requests leave behind instead of the whole heap (shorter pauses, fewer slow requests).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
                await deny.stop_refill()
                await served.stop()
                await engine.aclose()
                await stream_engine.aclose()
                await client.aclose()

    app.router.lifespan_context = lifespan

    # The gateway's own routes get their server span from the kit's request telemetry; proxied
    # requests are traced by the front door on their own short stack (`ProxyFastPath`).
    cors: dict[str, Any] = {
        "allow_origins": settings.cors_origins,
        "allow_credentials": False,
        "allow_methods": PROXY_METHODS,
        "max_age": 600,
        "allow_headers": [
            "authorization",
            "content-type",
            "idempotency-key",
            "x-request-id",
            "traceparent",
            "tracestate",
            "accept-language",
            # An event stream's resume point (browsers' EventSource sends it on reconnect).
            "last-event-id",
        ],
        "expose_headers": ["x-request-id", "retry-after", "idempotency-replayed", "location"],
    }
    # Added innermost first: the last is the outermost.
    app.add_middleware(
        FrontDoor, max_body_bytes=settings.max_body_bytes, own_routes=True, body_read_timeout_s=settings.body_read_timeout_s
    )
    app.add_exception_handler(BodyOverLimit, on_body_over_limit)
    app.add_exception_handler(BodyReadTimedOut, on_body_read_timed_out)
    app.add_exception_handler(RedisError, on_store_unavailable)
    app.add_middleware(CORSMiddleware, **cors)
    proxied = CORSMiddleware(FrontDoor(ProxyDispatch(), settings.max_body_bytes, traced=True), **cors)
    app.add_middleware(ProxyFastPath, proxied=proxied)
    app.add_middleware(RealClient, trusted_proxies=settings.trusted_proxies)
    return app
