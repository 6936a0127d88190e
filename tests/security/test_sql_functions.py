"""The migrated database holds each of security's `sql/<function>.sql` files exactly as written."""

from __future__ import annotations

from services.kit.db import plain_url
from tests.support.harness import RunningService
from tests.support.sqlfiles import mismatched_functions


async def test_the_migrated_database_holds_every_function_as_its_file_says(security: RunningService) -> None:
    assert await mismatched_functions(plain_url(security.database_url), "security") == {}
