"""The migrated database is what the models declare (tables, columns, types, keys, indexes)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from services.kit.tables import kit_metadata
from services.security.models import SecurityModel
from tests.support.harness import RunningService


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
    return list(compare_metadata(context, [SecurityModel.metadata, kit_metadata]))  # type: ignore[arg-type]


async def test_the_migrated_schema_is_the_one_the_models_declare(security: RunningService) -> None:
    async with security.state.engine.connect() as conn:
        found = await conn.run_sync(differences)
        sequence = (await conn.execute(text("SELECT to_regclass('pass_revocation_seq')"))).scalar()
    assert found == []
    assert sequence is not None
