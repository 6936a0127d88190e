"""A consumer that pulls with random page sizes, crashes at random points (losing what it had not
yet saved) and restarts from its saved cursor, while the feed keeps growing, reads every record
exactly once and in order (Hypothesis)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.kit.envelope import CloudEvent
from tests.citysync import factory
from tests.citysync.conftest import Community, ingest_all
from tests.support.harness import RunningService
from tests.support.stack import TestStack


@dataclass
class SavedState:
    """What a sync job keeps in its own store: the cursor and the records, saved together."""

    cursor: str = "0"
    records: list[int] = field(default_factory=list)


def confirmed(community: str, n: int) -> list[CloudEvent]:
    now = datetime.now(UTC)
    return [
        factory.event(
            "timebank.service.confirmed.v1",
            {
                "transfer_id": str(uuid.uuid4()),
                "community": community,
                "volunteer_id": str(uuid.uuid4()),
                "elder_id": str(uuid.uuid4()),
                "minutes": 30,
                "service_type": "meal",
                "confirmed_at": now.isoformat(),
            },
            str(uuid.uuid4()),
            "/services/timebank",
            now,
        )
        for _ in range(n)
    ]


# Each step: a page size, whether the job crashes after receiving the page (before saving it), and
# how many records the services add to the feed before the next pull.
steps = st.lists(st.tuples(st.integers(1, 40), st.booleans(), st.integers(0, 6)), min_size=1, max_size=25)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.integers(0, 60), plan=steps)
async def test_random_pages_and_restarts_read_everything_exactly_once(
    stack: TestStack, citysync: RunningService, initial: int, plan: list[tuple[int, bool, int]]
) -> None:
    community = Community(stack, citysync)
    await ingest_all(citysync, confirmed(community.id, initial))
    headers = await community.register("city-sync-job", scenes=["timebank"])
    saved = SavedState()
    written = initial
    for limit, crash, grow in plan:
        r = await citysync.client.get("/feeds/timebank", params={"after": saved.cursor, "limit": limit}, headers=headers)
        assert r.status_code == 200
        page = r.json()
        if not crash:  # a crash loses the page: the restarted job asks again from the saved cursor
            saved = SavedState(page["next_cursor"], saved.records + [rec["seq"] for rec in page["records"]])
        if grow:
            await ingest_all(citysync, confirmed(community.id, grow))
            written += grow
    # The job catches up at the end, with whatever page size it last used.
    while True:
        page = (
            await citysync.client.get("/feeds/timebank", params={"after": saved.cursor, "limit": plan[-1][0]}, headers=headers)
        ).json()
        saved = SavedState(page["next_cursor"], saved.records + [rec["seq"] for rec in page["records"]])
        if not page["has_more"]:
            break
    assert saved.records == list(range(1, written + 1))
