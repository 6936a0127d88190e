"""The migrated database is what the models declare (tables, columns, types, keys, indexes and the
partial index's predicate), and the claim's condition is the index's predicate."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from services.kit.tables import kit_metadata
from services.notify.deliveries import CLAIM
from services.notify.models import OPEN_DELIVERY_SQL, NotifyModel
from tests.support.harness import RunningService


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
    return list(compare_metadata(context, [NotifyModel.metadata, kit_metadata]))  # type: ignore[arg-type]


async def test_the_migrated_schema_is_the_one_the_models_declare(notify: RunningService) -> None:
    async with notify.state.engine.connect() as conn:
        found = await conn.run_sync(differences)
        predicate = (
            await conn.execute(
                text(
                    "SELECT pg_get_expr(x.indpred, x.indrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "WHERE i.relname = 'ix_deliveries_due'"
                )
            )
        ).scalar()
    assert found == []
    assert predicate is not None and all(s in predicate for s in ("sent", "dead", "capped", "no_address"))
    assert OPEN_DELIVERY_SQL in str(CLAIM)
