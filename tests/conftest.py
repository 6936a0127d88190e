from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.support.stack import TestStack

# The default run is reproducible: the same examples every time, so a red CI run is a real failure
# anyone can re-run. `HYPOTHESIS_PROFILE=explore make test` searches fresh random examples (and more
# of them); what it finds belongs in an explicit example test.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session")
def stack() -> Iterator[TestStack]:
    s = TestStack.start()
    try:
        yield s
    finally:
        s.stop()
