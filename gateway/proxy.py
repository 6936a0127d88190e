"""Routing `/api/<service>/<path>` to the services over the gateway's pooled upstream client.

Per request: find the upstream, verify the token (passed on untouched: the services verify it
again and read identity only from it), apply the rate limits, check the body size, honour an
`Idempotency-Key` on POSTs, then send the request through the upstream's circuit breaker with the
route's timeout, retrying only idempotent methods, and stream the answer back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from opentelemetry import propagate
from prometheus_client import Counter, Gauge, Histogram
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.identity import GatewayVerifier
from gateway.limits import body_too_large
from gateway.problems import (
    BadUpstreamAnswer,
    CircuitOpen,
    UnknownService,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from gateway.protection import IdempotencyStore, RateLimits, StoredResponse
from gateway.settings import Settings
from gateway.upstream import (
    InvalidUpstreamURL,
    UpstreamConnectionError,
    UpstreamEngine,
    UpstreamProtocolError,
    UpstreamReply,
)
from services.kit.problems import BadRequest, Problem, Unauthorized

log = logging.getLogger("gateway.proxy")

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
# Not relayed from an answer: hop-by-hop headers, and the two the gateway's own server sets.
ANSWER_NOT_RELAYED = HOP_BY_HOP_BYTES | {b"date", b"server"}
# Never passed on as they came: hop-by-hop headers, and those the gateway sets itself.
NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-request-id",
    "traceparent",
    "tracestate",
}
# A body read whole is sent with its own length by the client.
NOT_FORWARDED_BUFFERED = NOT_FORWARDED | {"content-length"}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Bodies up to this size are read whole (so they can be retried or fingerprinted); larger ones stream.
BUFFER_LIMIT = 64 * 1024
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_duration_seconds",
    "Time to the upstream's response headers, by route",
    ["upstream", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_FAILURES = Counter("gateway_upstream_failures_total", "Upstream connection failures and timeouts", ["upstream", "kind"])
BREAKER_OPEN = Gauge("gateway_circuit_open", "1 while the upstream's circuit breaker is open", ["upstream"])


class BreakerState:
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    """Opens after `threshold` failures in a row; after `open_s` lets one trial request through.

    Kept per process, like Envoy's outlier detection: each replica learns an upstream's health
    from its own traffic, which needs no coordination and costs nothing on the request path.
    """

    name: str
    threshold: int
    open_s: float
    failures: int = 0
    state: str = BreakerState.CLOSED
    opened_at: float = 0.0
    trial_running: bool = False

    def before(self) -> None:
        if self.state == BreakerState.CLOSED:
            return
        if self.state == BreakerState.OPEN and time.monotonic() - self.opened_at >= self.open_s:
            self.state = BreakerState.HALF_OPEN
            self.trial_running = False
        if self.state == BreakerState.HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return
        retry_after = max(1, round(self.open_s - (time.monotonic() - self.opened_at)))
        raise CircuitOpen(
            (f"{self.name} 服务暂时熔断", f"{self.name} is cut off after repeated failures"),
            headers={"Retry-After": str(retry_after)},
            upstream=self.name,
        )

    def abandon_trial(self) -> None:
        self.trial_running = False

    def success(self) -> None:
        if self.state != BreakerState.CLOSED:
            log.info("circuit for %s closed again", self.name)
            BREAKER_OPEN.labels(self.name).set(0)
        self.state, self.failures, self.trial_running = BreakerState.CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.state == BreakerState.HALF_OPEN or self.failures >= self.threshold:
            if self.state != BreakerState.OPEN:
                log.warning("circuit for %s opened after %d failures", self.name, self.failures)
            self.state, self.opened_at, self.trial_running = BreakerState.OPEN, time.monotonic(), False
            BREAKER_OPEN.labels(self.name).set(1)


@dataclass
class Upstream:
    name: str
    base_url: str
    breaker: CircuitBreaker


@dataclass
class RouteTable:
    """Path templates from the services' OpenAPI documents, for metrics and logs by route."""

    by_service: dict[str, list[tuple[re.Pattern[str], str]]] = field(default_factory=dict)

    @classmethod
    def from_paths(cls, paths: dict[str, list[str]]) -> RouteTable:
        table: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for service, templates in paths.items():
            entries = []
            # Literal segments first, so /tickets/mine wins over /tickets/{ticket_id}.
            for template in sorted(templates, key=lambda t: (t.count("{"), -len(t))):
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
                entries.append((re.compile(f"^{pattern}$"), f"/api/{service}{template}"))
            table[service] = entries
        return cls(table)

    def template(self, service: str, path: str) -> str:
        for pattern, template in self.by_service.get(service, ()):
            if pattern.match(path):
                return template
        return f"/api/{service}/unmatched"


class BodyStream:
    """A request body passed on as it arrives, refused once it grows past the limit.

    The upstream client reports the abort as a broken connection; `overflowed` tells the two apart,
    so an oversized body is a 413 for the caller and not a failure counted against the upstream.
    """

    def __init__(self, request: Request, limit: int):
        self.request = request
        self.limit = limit
        self.overflowed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > self.limit:
                self.overflowed = True
                raise body_too_large(self.limit)
            if chunk:
                yield chunk


def bearer_token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(("缺少访问令牌", "Missing bearer token"))
    return token.strip()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Proxy:
    def __init__(
        self,
        settings: Settings,
        engine: UpstreamEngine,
        verifier: GatewayVerifier,
        limits: RateLimits,
        idempotency: IdempotencyStore,
    ):
        self.settings = settings
        self.engine = engine
        self.verifier = verifier
        self.limits = limits
        self.idempotency = idempotency
        self.upstreams = {
            name: Upstream(
                name,
                url.rstrip("/"),
                CircuitBreaker(name, settings.breaker_failure_threshold, settings.breaker_open_s),
            )
            for name, url in settings.upstreams.items()
        }
        self.routes = RouteTable()
        # Longest prefix first, so "property/tickets" beats "property".
        self.timeouts = sorted(settings.route_timeouts_s.items(), key=lambda kv: -len(kv[0]))

    def timeout_for(self, service: str, path: str) -> float:
        target = f"{service}/{path}"
        for prefix, seconds in self.timeouts:
            if target.startswith(prefix):
                return seconds
        return self.settings.default_timeout_s

    async def handle(self, request: Request) -> Response:
        service = request.path_params["service"]
        upstream = self.upstreams.get(service)
        if upstream is None:
            raise UnknownService((f"没有名为 {service} 的服务", f"There is no service called {service}"))
        token = bearer_token(request)
        # The admission's Redis call runs without the request's context and its spans (see
        # `AdmissionBatcher`); nothing else here touches Redis or the network on the usual path.
        principal = await self.verifier.verify_signature(token)
        request.state.principal = principal
        await self.limits.admit_call(deny_key=self.verifier.deny.key(token), subject=principal.subject, ip=client_ip(request))
        path = request.path_params["path"]
        request.state.route = self.routes.template(service, "/" + path)

        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.settings.max_body_bytes):
            raise body_too_large(self.settings.max_body_bytes)
        method = request.method
        idem_key = request.headers.get("idempotency-key") if method == "POST" else None
        body: bytes | BodyStream
        if idem_key is not None or (length is not None and int(length) <= BUFFER_LIMIT):
            body = await self._read_body(request)
        elif length is None and "transfer-encoding" not in request.headers:
            body = b""
        else:
            body = self._stream_body(request)

        url = upstream.base_url + "/" + path
        query: bytes = request.scope.get("query_string", b"")
        if query:
            url += "?" + query.decode("latin-1")
        # What the caller's path has before the upstream's own (`/api/timebank`): the service names
        # its problems' `instance` with it, so a client sees the path it asked for.
        asked: str = request.scope["path"]
        prefix = asked[: len(asked) - len(path) - 1] if asked.endswith("/" + path) else ""
        headers = self._forward_headers(request, streaming=not isinstance(body, bytes), prefix=prefix)
        timeout = self.timeout_for(service, path)
        retryable = method in IDEMPOTENT_METHODS and isinstance(body, bytes)

        if idem_key is None:
            reply = await self._send(upstream, method, url, headers, body, timeout, retryable, request.state.route)
            return await self._relay(upstream, reply, timeout, prefix)

        assert isinstance(body, bytes)
        scope = f"{principal.community}:{principal.subject}:{service}/{path}"
        fingerprint = hashlib.sha256(body).hexdigest()
        stored = await self.idempotency.begin(scope, idem_key, fingerprint)
        if stored is not None:
            response = Response(stored.body, status_code=stored.status)
            response.raw_headers = [(k.encode(), v.encode()) for k, v in stored.headers] + [
                (b"content-length", str(len(stored.body)).encode()),
                (b"idempotency-replayed", b"true"),
            ]
            return response
        try:
            reply = await self._send(upstream, method, url, headers, body, timeout, False, request.state.route)
            content = await read_whole(upstream, reply, timeout)
        except BaseException:
            await self.idempotency.abandon(scope, idem_key)
            raise
        kept = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in answer_headers(reply.headers, upstream.base_url, prefix)
            if k != b"content-length"
        ]
        if reply.status >= 500:
            await self.idempotency.abandon(scope, idem_key)
        else:
            await self.idempotency.complete(scope, idem_key, fingerprint, StoredResponse(reply.status, kept, content))
        response = Response(content, status_code=reply.status)
        response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept] + [
            (b"content-length", str(len(content)).encode())
        ]
        return response

    async def _read_body(self, request: Request) -> bytes:
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise body_too_large(self.settings.max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    def _stream_body(self, request: Request) -> BodyStream:
        return BodyStream(request, self.settings.max_body_bytes)

    def _forward_headers(self, request: Request, *, streaming: bool, prefix: str = "") -> list[tuple[str, str]]:
        # One pass over the raw header list (lower-case bytes names, as the server hands them over),
        # without building Starlette's Headers or a set of names per request.
        raw: list[tuple[bytes, bytes]] = request.scope["headers"]
        drop = NOT_FORWARDED if streaming else NOT_FORWARDED_BUFFERED
        named = [value for name, value in raw if name == b"connection"]
        if named:
            drop = drop | {h.strip().lower() for v in named for h in v.decode("latin-1").split(",")}
        headers: list[tuple[str, str]] = []
        host = ""
        caller_trace: dict[str, str] = {}
        for name_b, value_b in raw:
            name = name_b.decode("latin-1")
            if name == "host" and not host:
                host = value_b.decode("latin-1")
            elif name in ("traceparent", "tracestate"):
                caller_trace[name] = value_b.decode("latin-1")
            if name not in drop:
                headers.append((name, value_b.decode("latin-1")))
        headers += [
            ("x-forwarded-for", client_ip(request)),
            ("x-forwarded-proto", request.scope.get("scheme", "http")),
            ("x-forwarded-host", host),
            ("x-request-id", getattr(request.state, "request_id", "")),
        ]
        if prefix:
            headers.append(("x-forwarded-prefix", prefix))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if "traceparent" not in carrier and "traceparent" in caller_trace:
            # No gateway span is recording: pass the caller's trace context on unchanged.
            carrier = caller_trace
        headers += list(carrier.items())
        return headers

    async def _send(
        self,
        upstream: Upstream,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | BodyStream,
        timeout_s: float,
        retryable: bool,
        route: str,
    ) -> UpstreamReply:
        attempts = 1 + (self.settings.idempotent_retries if retryable else 0)
        for attempt in range(attempts):
            upstream.breaker.before()
            start = time.perf_counter()
            try:
                async with asyncio.timeout(timeout_s):
                    response = await self.engine.send(method, url, headers, body, timeout_s)
            except (TimeoutError, UpstreamConnectionError) as exc:
                if isinstance(body, BodyStream) and body.overflowed:
                    upstream.breaker.abandon_trial()
                    raise body_too_large(body.limit) from None
                problem = upstream_failure(upstream, exc, timeout_s)
                # A malformed answer means the upstream took the request: it is not sent again.
                if attempt + 1 < attempts and not isinstance(exc, UpstreamProtocolError):
                    await asyncio.sleep(self.settings.retry_backoff_s * 2**attempt)
                    continue
                raise problem from None
            except InvalidUpstreamURL as exc:
                upstream.breaker.abandon_trial()
                raise BadRequest(("请求地址无效", "The request URL is not valid")) from exc
            except BaseException:
                upstream.breaker.abandon_trial()  # not the upstream's fault (e.g. the body was too large)
                raise
            UPSTREAM_LATENCY.labels(upstream.name, method, route, str(response.status)).observe(time.perf_counter() - start)
            if response.status in (502, 503, 504):
                upstream.breaker.failure()
                if attempt + 1 < attempts:
                    await response.close()
                    await asyncio.sleep(self.settings.retry_backoff_s * 2**attempt)
                    continue
            else:
                upstream.breaker.success()
            return response
        raise AssertionError("unreachable")

    async def _relay(self, upstream: Upstream, reply: UpstreamReply, timeout_s: float, prefix: str) -> Response:
        headers = answer_headers(reply.headers, upstream.base_url, prefix)
        # The status goes out only once the answer is whole or more than BUFFER_LIMIT of it is in:
        # an answer whose framing fails, or that ends early, within that is a 502 for the caller,
        # and a small answer goes back in one write. A break later in a long answer can only cut
        # the caller's connection.
        pieces = reply.chunks()
        held: list[bytes] = []
        size = 0
        try:
            async for piece in pieces:
                held.append(piece)
                size += len(piece)
                if size > BUFFER_LIMIT:
                    break
            else:
                response = Response(b"".join(held), status_code=reply.status)
                response.raw_headers = headers
                return response
        except (TimeoutError, UpstreamConnectionError) as exc:
            await reply.close()
            raise upstream_failure(upstream, exc, timeout_s) from None
        streamed = StreamingResponse(
            prepend(b"".join(held), pieces), status_code=reply.status, background=BackgroundTask(reply.close)
        )
        streamed.raw_headers = headers
        return streamed


def answer_headers(raw: list[tuple[bytes, bytes]], base_url: str, prefix: str) -> list[tuple[bytes, bytes]]:
    """The upstream's answer headers as the caller gets them, names in lower case.

    Dropped: hop-by-hop headers and any the upstream's `Connection` names (RFC 9110 §7.6.1), and
    its `Date` and `Server` (the gateway's server sets its own, and two of each confuse clients).
    A `Location` on the upstream itself is made relative to the path the caller used.
    """
    drop = ANSWER_NOT_RELAYED
    named = [value for name, value in raw if name.lower() == b"connection"]
    if named:
        drop = drop | {token.strip().lower() for value in named for token in value.split(b",")}
    headers = []
    for name, value in raw:
        lowered = name.lower()
        if lowered in drop:
            continue
        if lowered == b"location":
            value = relative_location(value, base_url, prefix)
        headers.append((lowered, value))
    return headers


def relative_location(location: bytes, base_url: str, prefix: str) -> bytes:
    """`Location` as the caller can follow it: a URL on the upstream (absolute, or a path from its
    root) becomes the gateway's path to it (`/api/timebank/...`); any other URL is left as it is.

    The upstream builds absolute URLs from the Host the gateway sends it, its own address, which a
    caller can neither reach nor should learn.
    """
    text = location.decode("latin-1")
    if text == base_url or text.startswith((base_url + "/", base_url + "?")):
        rest = text[len(base_url) :]
        return (prefix + (rest if rest.startswith("/") else "/" + rest)).encode("latin-1")
    if text.startswith("/") and not text.startswith("//"):
        return (prefix + text).encode("latin-1")
    return location


async def read_whole(upstream: Upstream, reply: UpstreamReply, timeout_s: float) -> bytes:
    """The answer's whole body; a body that breaks off is the upstream's failure, not a short body."""
    try:
        return await reply.read()
    except (TimeoutError, UpstreamConnectionError) as exc:
        raise upstream_failure(upstream, exc, timeout_s) from None


async def prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for piece in rest:
            yield piece
    finally:
        # The caller left mid-answer: the upstream client gives the connection back (or closes it).
        await rest.aclose()


def upstream_failure(upstream: Upstream, exc: TimeoutError | UpstreamConnectionError, timeout_s: float) -> Problem:
    """The caller's problem for an upstream that failed, counted against its breaker."""
    if isinstance(exc, TimeoutError):
        kind = "timeout"
        problem: Problem = UpstreamTimedOut(
            (f"{upstream.name} 服务未在 {timeout_s} 秒内响应", f"{upstream.name} did not answer within {timeout_s} s"),
            upstream=upstream.name,
        )
    elif isinstance(exc, UpstreamProtocolError):
        kind = "protocol"
        problem = BadUpstreamAnswer(
            (f"{upstream.name} 服务的响应无效", f"{upstream.name} sent an answer that is not valid HTTP"),
            upstream=upstream.name,
        )
    else:
        kind = "connect"
        problem = UpstreamUnavailable((f"无法连接 {upstream.name} 服务", f"Cannot reach {upstream.name}"), upstream=upstream.name)
    UPSTREAM_FAILURES.labels(upstream.name, kind).inc()
    upstream.breaker.failure()
    return problem
