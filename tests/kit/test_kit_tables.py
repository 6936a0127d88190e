"""Every service's database holds the kit's tables as `services/kit/tables.py` declares them, both
when made fresh and when upgraded from before a change to them (`upgrade_kit_tables`)."""

from __future__ import annotations

import asyncpg
import pytest

from services.kit.migrations import upgrade_database
from services.kit.tables import kit_metadata
from tests.support.stack import TestStack

SERVICES = ["citysync", "governance", "parking", "property", "timebank"]


async def kit_columns(database_url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_name = ANY($1::text[])",
            [t.name for t in kit_metadata.sorted_tables],
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


DECLARED = {t.name: {c.name for c in t.columns} for t in kit_metadata.sorted_tables}


@pytest.mark.parametrize("service", SERVICES)
async def test_a_fresh_database_has_the_kit_tables_as_declared(stack: TestStack, service: str) -> None:
    url = await stack.fresh_database(service)
    try:
        assert await kit_columns(url) == DECLARED
    finally:
        await stack.drop_database(url)


async def test_a_database_from_before_the_outbox_offsets_is_brought_up_to_date(stack: TestStack) -> None:
    url = await stack.empty_database("parking_old")
    try:
        await upgrade_database("parking", url, "0001")
        # The kit's tables as they were before the relay kept offsets.
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DROP TABLE kit_outbox_partitions")
            await conn.execute(
                "ALTER TABLE kit_outbox DROP COLUMN kafka_partition, DROP COLUMN kafka_offset, DROP COLUMN set_aside_at"
            )
        finally:
            await conn.close()
        assert "kit_outbox_partitions" not in await kit_columns(url)
        await upgrade_database("parking", url)
        assert await kit_columns(url) == DECLARED
        conn = await asyncpg.connect(url)
        try:
            index = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_kit_outbox_partition_offset'")
        finally:
            await conn.close()
        assert index is not None and "kafka_offset" in index
    finally:
        await stack.drop_database(url)
