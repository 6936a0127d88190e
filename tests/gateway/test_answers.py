"""What a caller gets back: headers of proxied answers, and the gateway's own redirects (none)."""

from __future__ import annotations

import uuid

from tests.gateway.conftest import COMMUNITY
from tests.support.harness import RunningService
from tests.support.stack import TestStack


def resident(stack: TestStack) -> dict[str, str]:
    return stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)


async def test_a_services_redirect_points_at_the_gateways_path_not_the_services_address(
    stack: TestStack, gateway: RunningService
) -> None:
    r = await gateway.client.get("/api/timebank/notes/?page=2", headers=resident(stack))
    assert r.status_code == 307, r.text
    assert r.headers["location"] == "/api/timebank/notes?page=2"
    assert "127.0.0.1" not in r.headers["location"]


async def test_the_gateways_own_routes_do_not_redirect_on_a_trailing_slash(stack: TestStack, gateway: RunningService) -> None:
    r = await gateway.client.get("/auth/me/", headers={**resident(stack), "Host": "evil.example"})
    assert r.status_code == 404
    assert "location" not in r.headers
