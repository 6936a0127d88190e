"""An upstream service as the proxy sees it: its circuit breaker, the latency and failures counted
by route, and its answer read whole or streamed on."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Histogram

from gateway.breaker import CircuitBreaker
from gateway.problems import BadUpstreamAnswer, UpstreamTimedOut, UpstreamUnavailable
from gateway.upstream import UpstreamConnectionError, UpstreamProtocolError, UpstreamReply
from services.kit.problems import Problem

UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_duration_seconds",
    "Time to the upstream's response headers, by route",
    ["upstream", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@lru_cache(maxsize=4096)
def upstream_latency(upstream: str, method: str, route: str, status: int) -> Any:
    """The histogram's child for these labels, looked up once (routes are templates: few labels)."""
    return UPSTREAM_LATENCY.labels(upstream, method, route, str(status))


UPSTREAM_FAILURES = Counter("gateway_upstream_failures_total", "Upstream connection failures and timeouts", ["upstream", "kind"])


@dataclass
class Upstream:
    name: str
    base_url: str
    breaker: CircuitBreaker


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
