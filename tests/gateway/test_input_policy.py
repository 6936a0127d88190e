"""The gateway's own routes refuse malformed input with a 422 problem naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.conftest import COMMUNITY
from tests.support.harness import RunningService
from tests.support.refusals import assert_refused, post_json
from tests.support.stack import TestStack

PASSWORD_GRANT = {"grant_type": "password", "community": COMMUNITY, "username": "steward.test", "password": "correct horse"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "steward\x00test"}, "password.username"),
        ({"password": "correct\x00horse"}, "password.password"),
        ({"username": "steward\udc80"}, "password.username"),
        ({"password": 12345678}, "password.password"),
        ({"scope": "admin"}, "password.scope"),
    ],
)
async def test_a_password_login_with_nul_text_a_number_or_an_unknown_field_is_refused(
    gateway: RunningService, change: dict[str, Any], field: str
) -> None:
    r = await post_json(gateway.client, "/auth/token", {**PASSWORD_GRANT, **change})
    assert_refused(r, field)


async def test_a_code_request_with_a_nul_in_the_community_is_refused(gateway: RunningService) -> None:
    r = await gateway.client.post("/auth/otp", json={"community": f"{COMMUNITY}\x00", "phone": "13800000001"})
    assert_refused(r, "community")


async def test_a_staff_id_with_a_nul_is_refused(stack: TestStack, gateway: RunningService) -> None:
    admin = stack.auth("00000000-0000-0000-0000-00000000a001", "property_admin", community=COMMUNITY)
    r = await gateway.client.put("/auth/staff/steward%00test/password", json={"password": "correct horse battery"}, headers=admin)
    assert_refused(r, "staff_id", "path")
