"""What a refused input looks like to the client: a 422 problem naming the field."""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.kit.problems import PROBLEM_MEDIA_TYPE


def assert_refused(r: httpx.Response, field: str, where: str = "body") -> None:
    assert r.status_code == 422, f"{r.request.method} {r.request.url.path} -> {r.status_code}: {r.text[:400]}"
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    named = [(e["in"], e["field"]) for e in r.json()["errors"]]
    assert (where, field) in named, named


async def post_json(client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST `body` as ASCII JSON, so a lone surrogate travels as a \\udXXX escape (httpx's own
    `json=` encodes UTF-8, which has no lone surrogates)."""
    return await client.post(path, content=json.dumps(body), headers={**(headers or {}), "Content-Type": "application/json"})
