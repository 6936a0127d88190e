from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.timebank.app import create_app
from services.timebank.settings import Settings
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack
from tests.timebank.community import Community


@pytest.fixture
async def tb(stack: TestStack) -> AsyncIterator[RunningService]:
    async with run_service(stack, "timebank", create_app, Settings, db_pool_size=30) as svc:
        yield svc


@pytest.fixture
def community(stack: TestStack, tb: RunningService) -> Community:
    return Community(stack, tb)
