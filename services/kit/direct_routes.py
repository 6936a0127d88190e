"""Everyday writes answered ahead of FastAPI's routing and dependency solving, as plain ASGI.

On a one-worker service FastAPI's own work per request (the walk through the included routers,
the dependencies, the body's validation, the response model's second validation) is about a third
of a time-bank confirmation's Python (docs/architecture.md). A direct route does the same steps
for the requests that need nothing else: a bearer token the kit's verifier accepts, no query
string, a JSON body (parsed and validated as FastAPI does: `json.loads`, then the model), path
parameters that are ids. Any other request, and one whose token, ids or body do not pass, goes on
untouched (its body replayed) to the FastAPI route of the same path, which documents the route and
answers it as always: what a client sees is the same either way (tests/kit/test_direct_routes.py;
each service's direct route has a test that compares the two).

It sits inside the request's span and metrics (named by the documented route) and the sessions'
clean-up; the app's exception handlers answer what the use case raises, as they do for a route.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.auth import Principal
from services.kit.db import open_session
from services.kit.problems import Problem

# serve(session, principal, the path's ids by name, the validated body) -> the response model.
Serve = Callable[[AsyncSession, Principal, dict[str, uuid.UUID], Any], Awaitable[BaseModel]]
_PARAM = re.compile(r"\{(\w+)\}")
_ID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class DirectRoute:
    """`serve` answers the documented route's requests that need nothing but it (see above)."""

    router: APIRouter
    endpoint: Callable[..., Any]
    body: type[BaseModel]
    serve: Serve


@dataclass(frozen=True)
class _Compiled:
    method: str
    pattern: re.Pattern[str]
    documented: APIRoute
    body: type[BaseModel]
    serve: Serve
    start: Message


def documented_route(router: APIRouter, endpoint: Callable[..., Any]) -> APIRoute:
    """The router's FastAPI route for `endpoint` (a direct route always has one)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route
    raise ValueError(f"{endpoint.__name__} is not a route of this router")


def _path_pattern(path: str) -> re.Pattern[str]:
    """The path with each `{name}` an id's group: only a canonical UUID, which parses the same in FastAPI."""
    pieces = _PARAM.split(path)  # literal, name, literal, name, ..., literal
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_ID})" for i, p in enumerate(pieces))
    return re.compile(f"^{regex}$")


def _compile(direct: DirectRoute) -> _Compiled:
    route = documented_route(direct.router, direct.endpoint)
    (method,) = route.methods or {"GET"}
    start = {"type": "http.response.start", "status": route.status_code or 200}
    return _Compiled(method, _path_pattern(route.path), route, direct.body, direct.serve, start)


def _bearer(scope: Scope) -> str | None:
    """The bearer token, or None when there is none or the body is not declared JSON."""
    token = None
    json_body = False
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            token = credentials if scheme.lower() == "bearer" and credentials else None
        elif name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return token if json_body else None


async def read_body(receive: Receive) -> bytes:
    """The request's whole body (ClientDisconnect if the client leaves before sending it)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class _Replay:
    """A receive that gives the body already read once, then the client's own messages."""

    def __init__(self, body: bytes, receive: Receive):
        self.pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        self.receive = receive

    async def __call__(self) -> Message:
        return self.pending.pop() if self.pending else await self.receive()


class DirectRoutes:
    """Plain ASGI in front of the app's router: the direct routes, each tried by method and path."""

    def __init__(self, app: ASGIApp, routes: Sequence[DirectRoute]):
        self.app = app
        self.routes = [_compile(r) for r in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["query_string"]:
            for route in self.routes:
                if scope["method"] == route.method and (match := route.pattern.match(scope["path"])):
                    await self._answer(route, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, route: _Compiled, ids: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["app"]
        try:
            body = await read_body(receive)
        except ClientDisconnect as exc:
            await _handled(exc, scope, receive, send)
            return
        token = _bearer(scope)
        verifier = getattr(app.state, "token_verifier", None)
        try:
            if token is None or verifier is None:
                raise LookupError
            principal = await verifier.verify(token)
            data = route.body.model_validate(json.loads(body))
        except (LookupError, Problem, ValueError, RecursionError):
            # Not one the direct route answers (pydantic's error and a JSON error are ValueErrors;
            # JSON nested too deep is a RecursionError): the documented route answers it, with the
            # body it would have read.
            await self.app(scope, _Replay(body, receive), send)
            return
        scope["route"] = route.documented
        try:
            session = open_session(scope, app)
            model = await route.serve(session, principal, {k: uuid.UUID(v) for k, v in ids.items()}, data)
        except Exception as exc:
            await _handled(exc, scope, receive, send)
            return
        payload = model.model_dump_json().encode()
        headers = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
        await send({**route.start, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _handled(exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer `exc` with the app's handler for it (the nearest class in its MRO), as Starlette's
    exception middleware does for a route. `Exception`'s handler is the server-error layer's, which
    answers and then re-raises: so the exception propagates to it, as from a route."""
    handlers = scope["app"].exception_handlers
    handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers and cls is not Exception), None)
    if handler is None:
        raise exc
    response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)
