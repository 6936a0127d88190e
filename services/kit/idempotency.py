"""`Idempotency-Key` on POSTs that create something, kept in the service's own database.

The key is claimed in the same transaction as the work it guards: the first request inserts the
key and does the work; a concurrent retry waits on the key's row lock and then replays the stored
response; a retry after a failure (rolled back, so no key) does the work afresh. The same key with
another body is a 422 problem. Keys are scoped per caller and route, so two residents cannot
collide or read each other's responses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import driver_statement, fetch_alone, transaction
from services.kit.problems import IdempotencyKeyReused
from services.kit.tables import idempotency_keys

T = TypeVar("T")
REPLAY_HEADER = "Idempotency-Replayed"

# Compiled once to the driver's SQL: SQLAlchemy caches no PostgreSQL `INSERT ... ON CONFLICT`
# (its `Insert` is not cacheable), so built per request the claim was compiled on every keyed POST.
_KEY = (idempotency_keys.c.scope == bindparam("scope")) & (idempotency_keys.c.key == bindparam("key"))
_CLAIM = driver_statement(
    insert(idempotency_keys)
    .values(scope=bindparam("scope"), key=bindparam("key"), fingerprint=bindparam("fingerprint"), status_code=0)
    .on_conflict_do_nothing()
    .returning(idempotency_keys.c.key)
)
_STORED = driver_statement(
    select(idempotency_keys.c.fingerprint, idempotency_keys.c.status_code, idempotency_keys.c.body).where(_KEY)
)
_STORE = driver_statement(
    update(idempotency_keys).where(_KEY).values(status_code=bindparam("status_code"), body=bindparam("body"))
)


class IdempotentRequest:
    def __init__(self, key: str | None, scope: str):
        self.key = key
        self.scope = scope

    @staticmethod
    def fingerprint(body: Any) -> str:
        payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else jsonable_encoder(body)
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def run(
        self,
        session: AsyncSession,
        body: Any,
        create: Callable[[], Awaitable[T]],
        response_model: type[BaseModel] | None = None,
        status_code: int = 201,
    ) -> T | JSONResponse:
        """Run `create` once per key; replay its stored response on a retry."""
        if self.key is None:
            async with transaction(session):
                return await create()
        fingerprint = self.fingerprint(body)
        key = {"scope": self.scope, "key": self.key}
        async with transaction(session):
            claimed = await fetch_alone(session, _CLAIM.sql, *_CLAIM.args(**key, fingerprint=fingerprint))
            if claimed is None:
                row = await fetch_alone(session, _STORED.sql, *_STORED.args(**key))
                if row.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(("该幂等键已用于另一个请求体", "This key was used with another request body"))
                return JSONResponse(row.body, status_code=row.status_code, headers={REPLAY_HEADER: "true"})
            result = await create()
            if response_model is not None:
                stored = response_model.model_validate(result, from_attributes=True).model_dump_json()
            else:
                stored = json.dumps(jsonable_encoder(result))  # as SQLAlchemy's JSONB wrote it
            # The body as JSON text: the driver's jsonb codec takes text.
            await fetch_alone(session, _STORE.sql, *_STORE.args(**key, status_code=status_code, body=stored))
            return result


async def idempotency_key(
    request: Request,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Retries with the same key replay the first response",
        ),
    ] = None,
) -> IdempotentRequest:
    principal = getattr(request.state, "principal", None)
    verifier = getattr(request.app.state, "token_verifier", None)
    auth = request.headers.get("authorization", "")
    if principal is None and verifier is not None and auth.lower().startswith("bearer "):
        principal = await verifier.verify(auth[7:].strip())
    caller = principal.subject if principal is not None else "anonymous"
    # The concrete path, not the route template: the same key on /spots/a/windows and
    # /spots/b/windows are two different requests.
    return IdempotentRequest(key, f"{caller}:{request.method}:{request.url.path}")


IdempotencyDep = Annotated[IdempotentRequest, Depends(idempotency_key)]
