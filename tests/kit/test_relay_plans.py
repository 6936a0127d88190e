"""The relay's claim and its marking of a batch are planned by their indexes whatever the outbox's
statistics say: a backlog written since the last ANALYZE (the table looks empty to the planner)
must not make each claim sort every unsent row, nor each mark scan the whole table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.db import make_engine
from services.kit.relay import _MARK_SENT, PLAN_BY_INDEX, claim_statement
from services.kit.tables import outbox
from tests.support.stack import TestStack

BACKLOG = 5000


async def plan(conn: AsyncConnection, statement: Any, params: dict[str, Any] | None = None) -> str:
    """EXPLAIN of `statement`, with its parameters bound as the relay binds them."""
    compiled = statement.compile(dialect=conn.dialect)
    values = compiled.construct_params(params)
    positions = compiled.positiontup or []
    answer = await conn.exec_driver_sql(f"EXPLAIN {compiled}", tuple(values[name] for name in positions))
    return "\n".join(row[0] for row in answer)


async def test_a_backlog_unknown_to_the_statistics_is_claimed_and_marked_by_index(stack: TestStack) -> None:
    url = await stack.fresh_database("parking")
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            # A fresh table, then a backlog with no ANALYZE since: the statistics say "empty" (and
            # autovacuum is kept from analyzing it during the test).
            await conn.execute(text("ALTER TABLE kit_outbox SET (autovacuum_enabled = false)"))
            await conn.execute(text("ANALYZE kit_outbox"))
            now = datetime.now(UTC)
            rows = [
                {"event_id": f"e-{i}", "topic": "t", "key": f"k-{i % 50}", "type": "x.v1", "source": "/s", "occurred_at": now}
                | {"data": {"n": i}}
                for i in range(BACKLOG)
            ]
            await conn.execute(insert(outbox), rows)
        async with engine.begin() as conn:
            ids = [row[0] for row in await conn.execute(text("SELECT id FROM kit_outbox ORDER BY id LIMIT 500"))]
            mark = {"ids": ids, "partitions": [0] * len(ids), "offsets": list(range(len(ids)))}
            # Without the relay's settings, the planner misjudges the backlog (this is what the
            # settings are for; if a PostgreSQL release plans it well alone, only this line goes).
            unplanned = await plan(conn, claim_statement(500, {}))
            assert "Sort" in unplanned or "Seq Scan" in unplanned or "Bitmap" in unplanned, unplanned
            await conn.execute(PLAN_BY_INDEX)
            claim = await plan(conn, claim_statement(500, {}))
            held = await plan(conn, claim_statement(500, {("t", "k-1"): 7}))
            marking = await plan(conn, _MARK_SENT, mark)
        for found in (claim, held):
            assert "Index Scan using ix_kit_outbox_unsent" in found, found
            assert "Sort" not in found and "Seq Scan on kit_outbox" not in found, found
        assert "Index Scan using pk_kit_outbox" in marking and "Seq Scan on kit_outbox" not in marking, marking
    finally:
        await engine.dispose()
        await stack.drop_database(url)
