"""Cursor pagination with a bounded page size.

A cursor is an opaque base64url token holding the sort key of the last item returned; the next
page starts strictly after it, so inserts between pages never shift or repeat items.
"""

from __future__ import annotations

import base64
import json
import types
import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, literal, tuple_

from services.kit.inputs import printable_text
from services.kit.problems import BadRequest

T = TypeVar("T")

MAX_PAGE_SIZE = 200


class InvalidCursor(BadRequest):
    slug = "invalid-cursor"
    title_zh = "分页游标无效"
    title_en = "Invalid page cursor"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to fetch the next page; null on the last page.")


class PageParams(BaseModel):
    limit: int
    cursor: str | None

    def after(self) -> list[Any] | None:
        return decode_cursor(self.cursor) if self.cursor else None

    def after_key(self, *kinds: Any) -> tuple[Any, ...] | None:
        """The cursor's sort key typed as `kinds` (str, int, datetime, uuid.UUID, or one of them
        `| None` for a nullable sort column), or None on the first page.

        A cursor of another shape is the invalid-cursor problem, never a database error: it is
        client input, and a forged one must not reach the query as the wrong type.
        """
        after = self.after()
        if after is None:
            return None
        if len(after) != len(kinds):
            raise InvalidCursor(("游标不属于此列表", "The cursor was made for another list"))
        return tuple(_typed(kind, value) for kind, value in zip(kinds, after, strict=True))


# An int in a cursor is bound as a PostgreSQL bigint: a larger one would be a database error.
_BIGINT = 2**63


def _typed(kind: Any, value: Any) -> Any:
    if isinstance(kind, types.UnionType):  # `datetime | None`
        if value is None and type(None) in kind.__args__:
            return None
        kind = next(k for k in kind.__args__ if k is not type(None))
    try:
        if kind is int and isinstance(value, int) and not isinstance(value, bool) and -_BIGINT <= value < _BIGINT:
            return value
        if kind is str and isinstance(value, str):
            return value
        if kind is uuid.UUID and isinstance(value, str):
            return uuid.UUID(value)
        if kind is datetime and isinstance(value, str):
            at = datetime.fromisoformat(value)
            if at.tzinfo is not None:  # every stored time is aware; a naive one names no instant
                return at
    except ValueError:
        pass
    raise InvalidCursor(("游标不属于此列表", "The cursor was made for another list"))


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor(("无法解析游标", "The cursor could not be decoded")) from None
    if not isinstance(values, list):
        raise InvalidCursor(("无法解析游标", "The cursor could not be decoded"))
    # A cursor comes back from the client: its text is held to the input policy before any query.
    try:
        for value in values:
            if isinstance(value, str):
                printable_text(value)
    except ValueError:
        raise InvalidCursor(("无法解析游标", "The cursor could not be decoded")) from None
    return values


# A coroutine: FastAPI runs a plain-function dependency in a worker thread, a thread hand-off
# per request for two query parameters.
async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="Opaque cursor from `next_cursor`")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


def make_page(rows: list[T], limit: int, key: Any) -> tuple[list[T], str | None]:
    """Given up to limit+1 rows, return the page and the cursor for the next one.

    `key(row)` returns the row's sort key as a list of JSON-able values.
    """
    if len(rows) > limit:
        page = rows[:limit]
        return page, encode_cursor(key(page[-1]))
    return rows, None


def after_key_condition(columns: list[Any], key: tuple[Any, ...], descending: bool = False) -> ColumnElement[bool]:
    """The keyset condition "strictly after `key`" on the sort columns, one row comparison.

    A row comparison (`(a, b) > (x, y)`) is what a b-tree index on (a, b) serves as a range scan,
    where the spelled-out `a > x OR (a = x AND b > y)` may not be.
    """
    row = tuple_(*columns)
    bound = tuple_(*(literal(value, column.type) for column, value in zip(columns, key, strict=True)))
    return row < bound if descending else row > bound
