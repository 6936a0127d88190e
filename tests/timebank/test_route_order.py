"""The time bank's routers are tried in `app.ROUTERS`' order, the everyday routes' first (the
confirmation, a member's own record), so that they are found early. That order may change no
answer: no path one router serves is also matched, for the same method, by a route of another
router."""

from __future__ import annotations

import re
import uuid

from fastapi.routing import APIRoute
from starlette.routing import compile_path

from services.timebank.api import settings_routes
from services.timebank.app import ROUTERS


def _example(path_format: str) -> str:
    """A concrete path the route serves: each parameter an id."""
    return re.sub(r"\{[^}]+\}", str(uuid.UUID(int=7)), path_format)


def test_no_path_is_matched_by_two_routers() -> None:
    routes = [(n, r) for n, router in enumerate(ROUTERS) for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 20
    overlaps = []
    for n, route in routes:
        for m, other in routes:
            if n != m and route.methods & other.methods:
                regex, _, _ = compile_path(other.path_format)
                if regex.match(_example(route.path_format)):
                    overlaps.append((route.path_format, other.path_format))
    assert overlaps == []


def test_the_everyday_routes_are_tried_first() -> None:
    """The confirmation first, a member's own record among the first three routes tried."""
    tried = [(sorted(r.methods)[0], r.path_format) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert tried[0] == ("POST", "/transfers/{pending_id}/confirm")
    assert ("GET", "/members/me") in tried[:3]
    assert ROUTERS[-1] is settings_routes
