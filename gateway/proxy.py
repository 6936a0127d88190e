"""Routing `/api/<service>/<path>` to the services over the gateway's pooled upstream client.

Per request: find the upstream, verify the token (passed on untouched: the services verify it
again and read identity only from it), apply the rate limits, check the body size, honour an
`Idempotency-Key` on POSTs, then send the request through the upstream's circuit breaker with the
route's timeout, retrying only idempotent methods, and stream the answer back.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from functools import partial

from opentelemetry import propagate
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.bodies import BodyStream, read_piece
from gateway.breaker import CircuitBreaker
from gateway.headers import (
    NOT_FORWARDED,
    NOT_FORWARDED_BUFFERED,
    READ_HEADERS,
    REGION_HEADER,
    answer_headers,
    bearer_token_in,
    client_ip,
)
from gateway.identity import GatewayVerifier
from gateway.limits import body_too_large
from gateway.problems import (
    NotRouted,
    TokenRevoked,
    UnknownService,
)
from gateway.protection import IdempotencyStore, RateLimits, StoredResponse
from gateway.revocations import token_digest
from gateway.routes import RouteTable, public_path, service_own_route, through_city_door
from gateway.settings import Settings
from gateway.streams import StreamSlots, is_event_stream, relay_stream
from gateway.upstream import (
    InvalidUpstreamURL,
    UpstreamConnectionError,
    UpstreamEngine,
    UpstreamProtocolError,
    UpstreamReply,
)
from gateway.upstreams import Upstream, prepend, read_whole, upstream_failure, upstream_latency
from services.kit.auth import Principal
from services.kit.problems import BadRequest

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Bodies up to this size are read whole (so they can be retried or fingerprinted); larger ones stream.
BUFFER_LIMIT = 64 * 1024
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REDIS_UNAVAILABLE = Counter(
    "gateway_redis_unavailable_total", "Checks answered without Redis (fail-open or fail-closed, docs/gateway.md)", ["check"]
)


class Proxy:
    def __init__(
        self,
        settings: Settings,
        engine: UpstreamEngine,
        verifier: GatewayVerifier,
        limits: RateLimits,
        idempotency: IdempotencyStore,
        stream_engine: UpstreamEngine | None = None,
    ):
        self.settings = settings
        self.engine = engine
        # Event streams hold their upstream connection as long as they last: their own engine, so
        # they never take the pooled connections of ordinary requests (gateway/streams.py).
        self.stream_engine = stream_engine or engine
        self.stream_routes = frozenset(settings.stream_routes)
        self.stream_slots = StreamSlots(settings.stream_max_per_user, settings.stream_max_open)
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
        path = request.path_params["path"]
        if service_own_route(path):
            raise NotRouted((f"{service} 服务的 /{path} 不经网关开放", f"{service}'s /{path} is not served through the gateway"))
        if through_city_door(service, path) != request.path_params.get("city_door", False):
            # One public path per route: the city's feeds only at /city/v1/, the rest only at /api/.
            where = public_path(service, "/" + path.partition("?")[0])
            raise NotRouted((f"该路径不存在，请使用 {where}", f"No such path; this route is served at {where}"))
        read: dict[bytes, str] = {}
        for name_b, value_b in request.scope["headers"]:  # one pass, no Starlette `Headers`
            if name_b in READ_HEADERS and name_b not in read:
                read[name_b] = value_b.decode("latin-1")
        token = bearer_token_in(read.get(b"authorization", ""))
        client = request.scope.get("client")
        # The admission's Redis call runs without the request's context and its spans (see
        # `AdmissionBatcher`); nothing else here touches Redis or the network on the usual path.
        principal = await self.verifier.verify_signature(token)
        request.state.principal = principal
        deny, digest = self.verifier.deny, token_digest(token)
        try:
            deny_list_whole = await self.limits.admit_call(
                deny_key=deny.PREFIX + digest, subject=principal.subject, ip=client[0] if client else "unknown"
            )
        except RedisError:
            # Redis is down: the rate limits fail open (the services still hold their own rules);
            # the deny-list fails closed, answered by the database.
            REDIS_UNAVAILABLE.labels("admission").inc()
            deny_list_whole = False
        if not deny_list_whole and await deny.revoked_durably(digest):
            raise TokenRevoked()
        route = request.state.route = self.routes.template(service, "/" + path)

        length = read.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.settings.max_body_bytes):
            raise body_too_large(self.settings.max_body_bytes)
        method = request.method
        idem_key = read.get(b"idempotency-key") if method == "POST" else None
        body: bytes | BodyStream
        if idem_key is not None or (length is not None and int(length) <= BUFFER_LIMIT):
            body = await self._read_body(request)
        elif length is None and b"transfer-encoding" not in read:
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
        if service == "citysync":
            region = self.verifier.communities.region_code(principal.community)
            if region is not None:
                headers.append((REGION_HEADER, region))
        timeout = self.timeout_for(service, path)
        retryable = method in IDEMPOTENT_METHODS and isinstance(body, bytes)

        if method == "GET" and f"{service}/{path}" in self.stream_routes:
            return await self._open_stream(upstream, url, headers, timeout, route, prefix, principal)
        if idem_key is None:
            reply = await self._send(upstream, method, url, headers, body, timeout, retryable, route)
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
            reply = await self._send(upstream, method, url, headers, body, timeout, False, route)
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

    async def _open_stream(
        self,
        upstream: Upstream,
        url: str,
        headers: list[tuple[str, str]],
        timeout_s: float,
        route: str,
        prefix: str,
        principal: Principal,
    ) -> Response:
        """A GET on a stream route: the route's timeout to the status, then the stream's idle timeout."""
        owner = (principal.community, principal.subject)
        self.stream_slots.take(owner)
        try:
            reply = await self._send(
                upstream,
                "GET",
                url,
                headers,
                b"",
                timeout_s,
                True,
                route,
                engine=self.stream_engine,
                read_timeout_s=self.settings.stream_idle_timeout_s,
            )
        except BaseException:
            self.stream_slots.give_back(owner)
            raise
        if not is_event_stream(reply):
            # A refusal (401, 429...) or any other answer: relayed like an ordinary one.
            self.stream_slots.give_back(owner)
            return await self._relay(upstream, reply, timeout_s, prefix)
        headers_out = answer_headers(reply.headers, upstream.base_url, prefix)
        return relay_stream(upstream.name, reply, headers_out, partial(self.stream_slots.give_back, owner))

    async def _read_body(self, request: Request) -> bytes:
        chunks = []
        size = 0
        pieces = request.stream()
        while True:
            try:
                chunk = await read_piece(pieces, self.settings.body_read_timeout_s)
            except StopAsyncIteration:
                break
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise body_too_large(self.settings.max_body_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    def _stream_body(self, request: Request) -> BodyStream:
        return BodyStream(request, self.settings.max_body_bytes, self.settings.body_read_timeout_s)

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
        *,
        engine: UpstreamEngine | None = None,
        read_timeout_s: float | None = None,
    ) -> UpstreamReply:
        engine = engine or self.engine
        attempts = 1 + (self.settings.idempotent_retries if retryable else 0)
        for attempt in range(attempts):
            upstream.breaker.before()
            start = time.perf_counter()
            try:
                async with asyncio.timeout(timeout_s) as clock:
                    if isinstance(body, BodyStream):
                        body.upstream_clock, body.upstream_timeout_s = clock, timeout_s
                    response = await engine.send(method, url, headers, body, timeout_s, read_timeout_s)
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
            upstream_latency(upstream.name, method, route, response.status).observe(time.perf_counter() - start)
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
