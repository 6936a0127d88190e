"""The sql/<function>.sql check itself: it passes on a faithful database and fails on a drifted one."""

from __future__ import annotations

import asyncpg

from services.kit.sqlfiles import function_sql
from tests.support.sqlfiles import mismatched_functions
from tests.support.stack import TestStack


async def test_a_function_created_from_its_file_matches_and_a_changed_one_is_reported(stack: TestStack) -> None:
    url = await stack.empty_database("kit_sqlfiles")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE kit_outbox (event_id text, topic text, key text, type text, source text,"
            " subject text, occurred_at timestamptz, data jsonb, traceparent text, tracestate text)"
        )
        await conn.execute(function_sql("kit", "kit_write_outbox"))
        assert await mismatched_functions(url, "kit") == {}

        await conn.execute("SELECT kit_write_outbox('e1', 't', 'k', 'x.v1', 'src', NULL, now(), '{\"a\": 1}', NULL, NULL)")
        assert await conn.fetchval("SELECT data->>'a' FROM kit_outbox WHERE event_id = 'e1'") == "1"

        drifted = function_sql("kit", "kit_write_outbox").replace("p_subject, p_occurred_at", "NULL, p_occurred_at")
        await conn.execute(drifted)
        differ = await mismatched_functions(url, "kit")
        assert list(differ) == ["kit_write_outbox"]
        migrated, from_file = differ["kit_write_outbox"]
        assert migrated is not None and "NULL, p_occurred_at" in migrated and "NULL, p_occurred_at" not in from_file
    finally:
        await conn.close()
        await stack.drop_database(url)
