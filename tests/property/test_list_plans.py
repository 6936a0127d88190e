"""Staff's list of the community's tickets, newest first (a steward's default `GET /tickets`), is
read by its index: a page reads its rows in order instead of sorting every ticket of the community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from services.kit.db import plain_url
from services.property.listing import _list_statement
from tests.support.stack import TestStack

TICKETS = 5000


async def test_the_community_list_newest_first_is_read_by_its_index_not_sorted(stack: TestStack) -> None:
    url = await stack.fresh_database("property")
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute(
            """
            INSERT INTO tickets (id, community, resident_id, household_id, building_id, category, quantity,
                description, priority, status, payment_status, created_at, response_due_at, resolution_due_at,
                due_at, paused_minutes, hurry_count)
            SELECT 't-' || g, 'c-' || (g % 2), 'r', 'h', 'b', 'repair', 1, 'x', 'normal', 'queued', 'none',
                now() - (g || ' minutes')::interval, now(), now(), now(), 0, 0
            FROM generate_series(1, $1) AS g""",
            TICKETS,
        )
        await conn.execute("ANALYZE tickets")
        after = {"after_at": datetime.now(UTC) - timedelta(minutes=99), "after_id": "t-99"}
        for cursor in (False, True):
            statement = _list_statement("community", frozenset(), None, "-created_at", cursor)
            params = {"community": "c-1", "limit": 21} | (after if cursor else {})
            args = statement.args(**params)
            lines = [r[0] for r in await conn.fetch("EXPLAIN " + statement.sql, *args)]
            # Under the page's limit, the tickets come straight from the index, in order (the only
            # sort left is of one ticket's photo ids, in its subquery).
            assert lines[0].startswith("Limit"), lines
            assert "Index Scan Backward using ix_tickets_community_created on tickets" in lines[1], lines
    finally:
        await conn.close()
        await stack.drop_database(url)
