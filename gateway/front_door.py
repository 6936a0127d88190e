"""The gateway's front door: request ids, body size, the request span, access logs and per-route
latency, as plain ASGI around every request (cheap per request; see `FrontDoor`)."""

from __future__ import annotations

import logging
import os
import time
from contextvars import Token
from functools import lru_cache
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.accesslog import only_access_handler
from gateway.limits import BODY_READ_TIMEOUT_S, LimitedReceive, body_too_large
from gateway.proxy import REQUEST_ID_RE
from services.kit.problems import problem_response

log = logging.getLogger("gateway.access")

REQUEST_LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Latency of requests through the gateway, by route",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@lru_cache(maxsize=4096)
def request_latency(method: str, route: str, status: int) -> Any:
    """The histogram's child for these labels, looked up once (`labels()` per request was a lock,
    a tuple of strings and a dict look-up); routes are templates, so the labels are few."""
    return REQUEST_LATENCY.labels(method, route, str(status))


# Trace context headers a proxied request may carry (W3C trace context and baggage).
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


class FrontDoor:
    """Request ids, body size, access logs and per-route latency, as plain ASGI (cheap per request).

    Access logs name the route template, never the raw path or query, and the caller's subject id,
    never a name or phone number. With `traced`, it is also the request's server span (the proxy
    path, which the FastAPI instrumentation does not see): started from the caller's trace context
    before anything else, so the sampler decides at once, and given its attributes only if recorded.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        traced: bool = False,
        own_routes: bool = False,
        body_read_timeout_s: float = BODY_READ_TIMEOUT_S,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.tracer = trace.get_tracer("gateway") if traced else None
        # The gateway's own routes: a body is counted as it arrives and must keep arriving (the
        # proxy counts and times the bodies it forwards itself).
        self.own_routes = own_routes
        self.body_read_timeout_s = body_read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = ""
        length = ""
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
            elif name in TRACE_HEADERS:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        if not REQUEST_ID_RE.match(request_id):
            request_id = os.urandom(16).hex()  # as random as uuid4().hex, without the UUID object
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        span: trace.Span | None = None
        token: Token[otel_context.Context] | None = None
        if self.tracer is not None:
            parent = propagate.extract(carrier) if carrier else otel_context.Context()
            span = self.tracer.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
            token = otel_context.attach(trace.set_span_in_context(span, parent))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if length and (not length.isdigit() or int(length) > self.max_body_bytes):
                response = problem_response(body_too_large(self.max_body_bytes), Request(scope))
                await response(scope, receive, send_with_id)
                return
            if self.own_routes:
                receive = LimitedReceive(receive, self.max_body_bytes, self.body_read_timeout_s)
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if span is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            route = state.get("route") or getattr(scope.get("route"), "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            request_latency(scope["method"], route, status).observe(elapsed)
            principal = state.get("principal")
            # The subject is an opaque UUID; the kit's JSON formatter keeps only known extras,
            # so it goes into the message. Logged inside the span, so the line carries its trace id.
            subject = getattr(principal, "subject", "-")
            handler = only_access_handler(log)
            if handler is not None:
                ctx = (span if span is not None else trace.get_current_span()).get_span_context()
                handler.access(log.name, scope["method"], route, status, elapsed * 1000, subject, request_id, ctx)
            else:
                log.info(
                    "%s %s %d %.1fms subject=%s",
                    scope["method"],
                    route,
                    status,
                    elapsed * 1000,
                    subject,
                    extra={"request_id": request_id},
                )
            if span is not None:
                if span.is_recording():
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attributes(
                        {
                            "http.request.method": scope["method"],
                            "http.route": route,
                            "http.response.status_code": status,
                            "url.scheme": scope.get("scheme", "http"),
                        }
                    )
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                span.end()
            if token is not None:
                otel_context.detach(token)
