"""The gateway's problems (RFC 9457), each with a stable type."""

from __future__ import annotations

from services.kit.problems import Problem


class InvalidGrant(Problem):
    """Wrong code, password, secret or refresh token; deliberately one answer for all of them."""

    slug = "gateway/invalid-grant"
    status = 401
    title_zh = "登录凭证无效"
    title_en = "Invalid credentials"

    def __init__(self, detail: str | tuple[str, str] | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="community"'})


class TokenRevoked(Problem):
    slug = "gateway/token-revoked"
    status = 401
    title_zh = "令牌已被吊销"
    title_en = "The token has been revoked"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": 'Bearer realm="community", error="invalid_token"'})


class CommunityNotServed(Problem):
    slug = "gateway/community-not-served"
    status = 401
    title_zh = "令牌所属社区不由本网关服务"
    title_en = "The token is for a community this gateway does not serve"

    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": 'Bearer realm="community", error="invalid_token"'})


class UnknownService(Problem):
    slug = "gateway/unknown-service"
    status = 404
    title_zh = "没有该服务"
    title_en = "No such service"


class NotRouted(Problem):
    """A service's own operational or documentation route, served on its port, never through the door."""

    slug = "gateway/not-routed"
    status = 404
    title_zh = "该路径不经网关开放"
    title_en = "This path is not served through the gateway"


class UpstreamUnavailable(Problem):
    slug = "gateway/upstream-unavailable"
    status = 503
    title_zh = "服务暂不可用"
    title_en = "The service is unavailable"


class BadUpstreamAnswer(Problem):
    """The service's answer broke HTTP/1.1's framing or ended early; nothing of it is passed on."""

    slug = "gateway/bad-upstream-answer"
    status = 502
    title_zh = "服务的响应无效"
    title_en = "The service's answer was not valid HTTP"


class StoreUnavailable(Problem):
    """Redis, which holds one-time codes, login throttles and idempotency keys, cannot be reached.

    The checks that must not run without it fail closed with this answer (docs/gateway.md).
    """

    slug = "gateway/store-unavailable"
    status = 503
    title_zh = "网关暂时无法处理该请求"
    title_en = "The gateway cannot serve this request for a moment"


def store_unavailable() -> StoreUnavailable:
    return StoreUnavailable(
        ("网关的缓存暂时不可用, 请稍后重试", "The gateway's store is unavailable: retry shortly"), headers={"Retry-After": "5"}
    )


class CircuitOpen(Problem):
    """The upstream failed repeatedly; the gateway fails fast until it has had time to recover."""

    slug = "gateway/circuit-open"
    status = 503
    title_zh = "服务暂时熔断"
    title_en = "The service is temporarily cut off after repeated failures"


class UpstreamTimedOut(Problem):
    slug = "gateway/upstream-timeout"
    status = 504
    title_zh = "上游服务超时"
    title_en = "The service did not answer in time"


class BodyTooLarge(Problem):
    slug = "gateway/body-too-large"
    status = 413
    title_zh = "请求体过大"
    title_en = "Request body too large"


class HeadTooLarge(Problem):
    """A request line, header count or header size past the gateway's limits (gateway/limits.py)."""

    slug = "gateway/head-too-large"
    status = 431
    title_zh = "请求头过大"
    title_en = "Request header fields too large"


class HeadTimedOut(Problem):
    """A request head that did not arrive whole in time (gateway/limits.py)."""

    slug = "gateway/head-timeout"
    status = 408
    title_zh = "请求头超时"
    title_en = "The request head did not arrive in time"


class BodyTimedOut(Problem):
    """A request body that stopped arriving: the caller's slowness, never counted against a service."""

    slug = "gateway/body-timeout"
    status = 408
    title_zh = "请求体超时"
    title_en = "The request body did not arrive in time"


class TooManyRequests(Problem):
    slug = "gateway/rate-limited"
    status = 429
    title_zh = "请求过于频繁"
    title_en = "Too many requests"


class IdempotencyKeyReused(Problem):
    slug = "gateway/idempotency-key-reused"
    status = 422
    title_zh = "幂等键已用于不同的请求"
    title_en = "Idempotency-Key was used with a different request"


class IdempotencyInProgress(Problem):
    slug = "gateway/idempotency-in-progress"
    status = 409
    title_zh = "相同幂等键的请求仍在处理中"
    title_en = "A request with this Idempotency-Key is still in progress"


class NotRegistered(Problem):
    slug = "gateway/not-registered"
    status = 404
    title_zh = "登记簿中没有此人"
    title_en = "Not in the registry"


class TooManyStreams(Problem):
    """One person's open event streams on this gateway replica are at their bound."""

    slug = "gateway/too-many-streams"
    status = 429
    title_zh = "实时连接过多"
    title_en = "Too many open streams"


class StreamsExhausted(Problem):
    """The replica holds `stream_max_open` event streams: a bound on its memory, not the caller's fault."""

    slug = "gateway/streams-exhausted"
    status = 503
    title_zh = "实时连接已满"
    title_en = "No room for another stream"
