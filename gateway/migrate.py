"""Run the gateway's migration chain (gateway/migrations), which lives outside services/.

`services.kit.migrations.upgrade_database(service, url)` resolves the chain at
services/<service>/migrations; this is the same thing for the gateway's folder.
`python -m gateway.migrate [revision]` from the shell.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.kit.db import asyncpg_url
from services.kit.migrations import ensure_database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", asyncpg_url(database_url).replace("%", "%%"))
    cfg.set_main_option("version_table", "alembic_version")
    return cfg


async def upgrade_gateway_database(database_url: str, revision: str = "head") -> None:
    await ensure_database(database_url)
    engine = create_async_engine(asyncpg_url(database_url), poolclass=pool.NullPool)
    cfg = alembic_config(database_url)

    def run(sync_conn: Connection, *_: Any) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> None:
    from gateway.settings import Settings

    revision = argv[0] if argv else "head"
    asyncio.run(upgrade_gateway_database(Settings().database_url, revision))
    print(f"gateway: migrated to {revision}")


if __name__ == "__main__":
    main(sys.argv[1:])
