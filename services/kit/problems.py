"""RFC 9457 problem details: one exception class per error, a stable `type`, localized titles.

A service declares its errors as subclasses::

    class InsufficientBalance(Problem):
        slug = "timebank/insufficient-balance"
        status = 409
        title_zh = "余额不足"
        title_en = "Insufficient balance"

and raises them with an optional detail (a string, or a (zh, en) pair) and extension members::

    raise InsufficientBalance(("余额不足以支付 30 分钟", "Balance does not cover 30 minutes"), needed=30)

The `type` is `urn:community:problem:<slug>`; it never changes once published, so clients may
switch on it. The title is in zh-CN unless the caller's Accept-Language prefers English.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:community:problem:"

log = logging.getLogger("kit.problems")

Localized = str | tuple[str, str]
RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


def preferred_language(accept_language: str | None) -> str:
    """'en' when the caller's Accept-Language ranks English above Chinese; zh-CN otherwise."""
    if not accept_language:
        return "zh-CN"
    best_lang, best_q = "zh-CN", -1.0
    for part in accept_language.split(","):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag.startswith("en") and q > best_q:
            best_lang, best_q = "en", q
        elif tag.startswith("zh") and q > best_q:
            best_lang, best_q = "zh-CN", q
    return best_lang


class Problem(Exception):
    slug: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    title_zh: ClassVar[str] = "服务器内部错误"
    title_en: ClassVar[str] = "Internal server error"

    def __init__(self, detail: Localized | None = None, *, headers: dict[str, str] | None = None, **extensions: Any):
        clash = RESERVED_MEMBERS.intersection(extensions)
        if clash:
            raise ValueError(f"problem extension members may not reuse RFC 9457 names: {sorted(clash)}")
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions
        super().__init__(self.detail_text("en") or self.title_en)

    @classmethod
    def type_uri(cls) -> str:
        return TYPE_PREFIX + cls.slug

    def detail_text(self, lang: str) -> str | None:
        if self.detail is None:
            return None
        if isinstance(self.detail, tuple):
            return self.detail[1] if lang == "en" else self.detail[0]
        return self.detail

    def body(self, lang: str, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri(),
            "title": self.title_en if lang == "en" else self.title_zh,
            "status": self.status,
        }
        detail = self.detail_text(lang)
        if detail:
            body["detail"] = detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class BadRequest(Problem):
    slug = "bad-request"
    status = 400
    title_zh = "请求无效"
    title_en = "Bad request"


class ValidationFailed(Problem):
    slug = "validation-error"
    status = 422
    title_zh = "请求参数校验失败"
    title_en = "Request validation failed"


class Unauthorized(Problem):
    slug = "unauthorized"
    status = 401
    title_zh = "未登录或凭证无效"
    title_en = "Missing or invalid credentials"

    def __init__(self, detail: Localized | None = None, **extensions: Any):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="community"'}, **extensions)


class Forbidden(Problem):
    slug = "forbidden"
    status = 403
    title_zh = "无权执行此操作"
    title_en = "Not allowed"


class NotFound(Problem):
    slug = "not-found"
    status = 404
    title_zh = "未找到"
    title_en = "Not found"


class MethodNotAllowed(Problem):
    slug = "method-not-allowed"
    status = 405
    title_zh = "不支持该请求方法"
    title_en = "Method not allowed"


class Conflict(Problem):
    slug = "conflict"
    status = 409
    title_zh = "与当前状态冲突"
    title_en = "Conflicts with the current state"


class PayloadTooLarge(Problem):
    slug = "payload-too-large"
    status = 413
    title_zh = "请求体过大"
    title_en = "Request body too large"


class IdempotencyKeyReused(Problem):
    slug = "idempotency-key-reused"
    status = 422
    title_zh = "幂等键已用于不同的请求"
    title_en = "Idempotency-Key was used with a different request"


class IdempotencyInProgress(Problem):
    slug = "idempotency-in-progress"
    status = 409
    title_zh = "相同幂等键的请求仍在处理中"
    title_en = "A request with this Idempotency-Key is still in progress"


class RateLimited(Problem):
    slug = "rate-limited"
    status = 429
    title_zh = "请求过于频繁"
    title_en = "Too many requests"


class ServiceUnavailable(Problem):
    slug = "service-unavailable"
    status = 503
    title_zh = "服务暂不可用"
    title_en = "Service unavailable"


class UpstreamTimeout(Problem):
    slug = "upstream-timeout"
    status = 504
    title_zh = "上游服务超时"
    title_en = "Upstream timed out"


_STATUS_PROBLEMS: dict[int, type[Problem]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: ServiceUnavailable,
    504: UpstreamTimeout,
}


# The path the gateway's caller used before this service's own (`/api/timebank`), as the gateway
# says in `X-Forwarded-Prefix`; anything not shaped like a path is ignored.
_FORWARDED_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]{1,64}){1,4}$")


def request_instance(request: Request) -> str:
    """The problem's `instance`: the path as the client asked for it, through the gateway or not."""
    prefix = request.headers.get("x-forwarded-prefix", "")
    path: str = request.scope["path"]
    return prefix + path if prefix and _FORWARDED_PREFIX.match(prefix) else path


def problem_response(problem: Problem, request: Request | None) -> JSONResponse:
    lang = preferred_language(request.headers.get("accept-language") if request else None)
    instance = request_instance(request) if request else None
    return JSONResponse(
        problem.body(lang, instance),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers={**problem.headers, "Content-Language": lang},
    )


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "field": ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc),
                "in": loc[0] if loc else "body",
                "message": err.get("msg", ""),
                "code": err.get("type", ""),
            }
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        if exc.status >= 500:
            log.error("problem %s at %s", exc.slug, request.url.path)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _field_errors(exc.errors())
        fields = ", ".join(e["field"] for e in errors)
        return problem_response(
            ValidationFailed((f"以下字段无效: {fields}", f"Invalid fields: {fields}"), errors=errors), request
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        cls = _STATUS_PROBLEMS.get(exc.status_code)
        if cls is None:
            generic = Problem(str(exc.detail) if exc.detail else None)
            body = generic.body(preferred_language(request.headers.get("accept-language")), request_instance(request))
            body["status"] = exc.status_code
            body["type"] = TYPE_PREFIX + f"http-{exc.status_code}"
            return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in ("Not Found", "Method Not Allowed") else None
        if exc.headers and cls is not Unauthorized:
            return problem_response(cls(detail, headers=dict(exc.headers)), request)
        return problem_response(cls(detail), request)

    async def on_outage(request: Request, exc: Exception) -> JSONResponse:
        from services.kit.inbox import is_outage

        if is_outage(exc):
            log.warning("dependency outage at %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
            unavailable = ServiceUnavailable(
                ("数据库暂不可用，请稍后重试", "The database is unavailable; retry shortly"), headers={"Retry-After": "2"}
            )
            return problem_response(unavailable, request)
        return await on_unexpected(request, exc)

    async def on_pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
        # Every connection of the pool stayed in use past its timeout: the request did nothing.
        log.warning("database pool exhausted at %s %s", request.method, request.url.path)
        busy = ServiceUnavailable(
            ("服务繁忙，请稍后重试", "The service is busy (every database connection is in use); retry shortly"),
            headers={"Retry-After": "2"},
        )
        return problem_response(busy, request)

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        # The client went away while sending its request: nothing failed here, and no one is left
        # to answer. 499 ("client closed request") is what the metrics record.
        log.info("client disconnected at %s %s", request.method, request.url.path)
        return Response(status_code=499)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error at %s %s", request.method, request.url.path)
        return problem_response(Problem(), request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    # Outages map to 503 with Retry-After: the request did nothing and may be retried as it is.
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    for outage in (OSError, TimeoutError, DBAPIError):
        app.add_exception_handler(outage, on_outage)
    app.add_exception_handler(PoolTimeout, on_pool_exhausted)
    app.add_exception_handler(Exception, on_unexpected)


def problem_responses(*problems: type[Problem]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting which problems a route may return."""
    out: dict[int | str, dict[str, Any]] = {}
    for cls in problems:
        schema = {"schema": {"$ref": "#/components/schemas/Problem"}}
        entry = out.setdefault(cls.status, {"description": "", "content": {PROBLEM_MEDIA_TYPE: schema}})
        line = f"{cls.type_uri()} ({cls.title_en})"
        entry["description"] = f"{entry['description']}; {line}" if entry["description"] else line
    return out
