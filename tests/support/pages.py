"""Walking a cursor-paged list as a client does, for the page tests of every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx


async def walk(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    *,
    limit: int = 2,
    params: dict[str, Any] | None = None,
    meanwhile: Callable[[], Awaitable[Any]] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Every item of the list, following `next_cursor`, and the number of pages read.

    `meanwhile()` (inserts, say) runs concurrently with the fetch of every page after the first,
    so the list changes between the pages a client reads.
    """
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {**(params or {}), "limit": limit, **({"cursor": cursor} if cursor else {})}
        fetch = client.get(path, params=query, headers=headers)
        if meanwhile is not None and pages:
            r, _ = await asyncio.gather(fetch, meanwhile())
        else:
            r = await fetch
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        body = r.json()
        assert set(body) == {"items", "next_cursor"}, body
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def assert_whole(walked: list[dict[str, Any]], before: set[str], key: str = "id") -> list[str]:
    """No item twice, and every item that existed before the walk began was read (no gap)."""
    ids = [str(item[key]) for item in walked]
    assert len(ids) == len(set(ids)), f"an item came twice: {ids}"
    assert before <= set(ids), f"items missed: {sorted(before - set(ids))}"
    return ids


async def assert_cursor_refused(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    """A cursor that is not one, or one of another list's shape, is the invalid-cursor problem (400)."""
    # base64url of ["x"], [1, 2, 3, 4] and {"a": 1}: decodable, but no list's key here is shaped so.
    for cursor in ("%%%", "WyJ4Il0", "WzEsMiwzLDRd", "eyJhIjoxfQ"):
        r = await client.get(path, params={"cursor": cursor}, headers=headers)
        if cursor == "WyJ4Il0" and r.status_code == 200:
            continue  # a one-text key (an id or a code) is that list's own shape
        assert r.status_code == 400, (path, cursor, r.status_code, r.text[:300])
        assert r.json()["type"].endswith("invalid-cursor"), r.text
