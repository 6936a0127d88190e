"""Cursor pagination with a bounded page size.

A cursor is an opaque base64url token holding the sort key of the last item returned; the next
page starts strictly after it, so inserts between pages never shift or repeat items.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

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
