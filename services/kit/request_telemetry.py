"""Each request's server span and latency histogram, from one plain ASGI middleware.

It replaces OpenTelemetry's FastAPI instrumentation and the kit's former metrics middleware:
measured per request (bench/http_paths.py), the instrumentation's ASGI wrapper, its per-request
route search and its attribute cleaning cost more CPU than the time bank's whole `GET /members/me`
in the lean twin. What is kept is what an operator reads: one SERVER span per request, a child of
the caller's `traceparent`, named `METHOD /route/{template}`, with the method, route and status,
marked as an error from 500 up or on an exception, current while the route runs (so the outbox
row stores its `traceparent`); and the `http_request_duration_seconds` histogram by route and
status, its label children bound once per (method, route, status) instead of looked up each time.
FastAPI's own native telemetry is switched off in the app (`NO_NATIVE_TELEMETRY`), so there is
one server span, not two.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.telemetry import HTTP_LATENCY

# FastAPI(telemetry=...): the kit's middleware is the one source of request spans and metrics.
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
# Probes and scrapes: measured, never traced (a span each would bury the requests that matter).
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})
_TRACER = trace.get_tracer("services.kit.request")


def _carrier(scope: Scope) -> dict[str, str]:
    """The propagation headers of the request, the only ones the propagators read."""
    return {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in _PROPAGATED}


class RequestTelemetry:
    """One span and one histogram observation per HTTP request, as plain ASGI."""

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service
        self._latency: dict[tuple[str, str, int], Any] = {}

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = HTTP_LATENCY.labels(self.service, method, route, str(status))
        child.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        method: str = scope["method"]
        status = 500
        span = None
        token = None
        if scope["path"] not in UNTRACED_PATHS:
            parent = propagate.extract(_carrier(scope))
            span = _TRACER.start_span(method, context=parent, kind=SpanKind.SERVER)
            token = otel_context.attach(trace.set_span_in_context(span, parent))

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as error:
            if span is not None:
                span.record_exception(error)
            raise
        finally:
            route: str = getattr(scope.get("route"), "path", "unmatched")
            self._observe(method, route, status, time.perf_counter() - start)
            if span is not None and token is not None:
                otel_context.detach(token)
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.request.method": method, "http.route": route, "http.response.status_code": status})
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
                span.end()
