"""Alembic wiring shared by every service: one migration chain per service, in its own folder.

`services/<svc>/migrations/env.py` is two lines (`run_env(target_metadata)`); the first revision
of each chain calls `create_kit_tables()` so the outbox, inbox and idempotency tables exist in
every service's database; when the kit's tables change, each chain gets a revision that calls
`upgrade_kit_tables()`. `upgrade_database(...)` runs a chain programmatically (the local stack
and the tests use it); `python -m services.kit.migrations <svc> [revision]` from the shell.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, inspect, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.schema import CreateColumn

from services.kit.db import asyncpg_url, plain_url
from services.kit.settings import with_database
from services.kit.tables import kit_metadata

SERVICES_DIR = Path(__file__).resolve().parent.parent


def alembic_config(service: str, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", asyncpg_url(database_url).replace("%", "%%"))
    cfg.set_main_option("version_table", "alembic_version")
    return cfg


def create_kit_tables() -> None:
    """Create the kit's tables; call from the first revision of a service's chain."""
    kit_metadata.create_all(context.get_bind())


def upgrade_kit_tables() -> None:
    """Bring an existing database's kit tables to what `services/kit/tables.py` declares now.

    Creates the kit tables it lacks, adds the columns and indexes added since (columns the kit adds
    are nullable or have defaults). Idempotent: after a change to the kit's tables, every service
    gets a migration that calls this, and a database made after the change finds nothing to do.
    """
    bind = context.get_bind()
    kit_metadata.create_all(bind)
    inspector = inspect(bind)
    for table in kit_metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                spec = CreateColumn(column).compile(dialect=bind.dialect)
                op.execute(f"ALTER TABLE {table.name} ADD COLUMN {spec}")
        for index in table.indexes:
            index.create(bind, checkfirst=True)


def drop_kit_tables() -> None:
    kit_metadata.drop_all(context.get_bind())


def _configure_and_run(connection: Connection, target_metadata: list[MetaData]) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True, render_as_batch=False)
    with context.begin_transaction():
        context.run_migrations()


def run_env(service_metadata: MetaData) -> None:
    """The body of every service's `env.py`."""
    target = [service_metadata, kit_metadata]
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection, target)
        return
    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def online() -> None:
        engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(_configure_and_run, target)
            await conn.commit()
        await engine.dispose()

    asyncio.run(online())


async def ensure_database(database_url: str) -> None:
    """Create the database named in the URL if the server does not have it yet."""
    url = plain_url(database_url)
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


async def upgrade_database(service: str, database_url: str, revision: str = "head") -> None:
    """Create the service's database if needed and run its migrations up to `revision`."""
    await ensure_database(database_url)
    engine = create_async_engine(asyncpg_url(database_url), poolclass=pool.NullPool)
    cfg = alembic_config(service, database_url)

    def run(sync_conn: Connection, *_: Any) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> None:
    if not argv:
        print("usage: python -m services.kit.migrations <service> [revision]", file=sys.stderr)
        raise SystemExit(2)
    service = argv[0]
    revision = argv[1] if len(argv) > 1 else "head"
    import importlib

    settings_mod = importlib.import_module(f"services.{service}.settings")
    settings = settings_mod.Settings()
    asyncio.run(upgrade_database(service, settings.database_url, revision))
    print(f"{service}: migrated to {revision}")


if __name__ == "__main__":
    main(sys.argv[1:])
