"""The confirmation as a bare ASGI callable: the lean twin's work (`bench/lean_routes.py`'s
`lean_confirm`) with no FastAPI and no Starlette around it, to show what one uvicorn worker can do
when the framework costs nothing.

Per request, as the lean twin: the bearer token checked by the kit's cached `TokenVerifier`, the
path's pending id parsed as a UUID, the JSON body validated as `ConfirmIn`, the same
`tb_confirm_service` call with the same arguments (`resolution.confirmation_args`) from an asyncpg
pool of the same size, the row answered as `TransferOut` JSON with 201; a refusal is a 409 problem.
Anything else on the path is a 404 problem, another method a 405.

Served by `uvicorn --factory bench.confirm_parts.bare_route:create_bare_app` with
`LEAN_DATABASE_URL` and `LEAN_JWKS_URL`, the lean twin's variables.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.kit.auth import TokenVerifier
from services.kit.db import plain_url
from services.kit.direct_routes import read_body
from services.kit.problems import (
    PROBLEM_MEDIA_TYPE,
    Conflict,
    MethodNotAllowed,
    NotFound,
    Problem,
    Unauthorized,
    ValidationFailed,
    preferred_language,
)
from services.timebank.resolution import _CONFIRM_SERVICE, confirmation_args
from services.timebank.schemas import ConfirmIn, TransferOut

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX, SUFFIX = "/timebank/transfers/", "/confirm"


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def answer(send: Send, status: int, media_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BareConfirm:
    """The ASGI callable: its lifespan opens the pool; each request is one confirmation."""

    def __init__(self, database_url: str, jwks_url: str):
        self.database_url = database_url
        self.verifier = TokenVerifier(jwks_url, issuer="community-gateway", audience="community-platform")
        self.pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                body = await self.confirm(scope, receive)
            except Problem as problem:
                lang = preferred_language(header(scope, b"accept-language"))
                text = json.dumps(problem.body(lang, scope["path"]), ensure_ascii=False).encode()
                extra = [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
                await answer(send, problem.status, PROBLEM_MEDIA_TYPE.encode(), text, extra)
            else:
                await answer(send, 201, b"application/json", body, [])

    async def confirm(self, scope: Scope, receive: Receive) -> bytes:
        path: str = scope["path"]
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            raise NotFound()
        if scope["method"] != "POST":
            raise MethodNotAllowed()
        authorization = header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(("缺少访问令牌", "Missing bearer token"))
        principal = await self.verifier.verify(token)
        try:
            pending_id = uuid.UUID(path[len(PREFIX) : -len(SUFFIX)])
            data = ConfirmIn.model_validate_json(await read_body(receive))
        except (ValueError, ValidationError):  # pydantic's error is a ValueError too; named for the reader
            raise ValidationFailed() from None
        _, args = confirmation_args(principal, pending_id, data)
        assert self.pool is not None, "a request before the lifespan's start"
        row = await self.pool.fetchrow(_CONFIRM_SERVICE, *args)
        if row is None or row["outcome"] not in ("posted", "replayed"):
            raise Conflict(("未确认", "Not confirmed"))
        return TransferOut.model_validate(dict(row)).model_dump_json().encode()

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            self.pool = await asyncpg.create_pool(plain_url(self.database_url), min_size=4, max_size=10)
        except (OSError, asyncpg.PostgresError) as error:
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.pool.close()
        await send({"type": "lifespan.shutdown.complete"})


def create_bare_app() -> BareConfirm:
    return BareConfirm(os.environ["LEAN_DATABASE_URL"], os.environ["LEAN_JWKS_URL"])
