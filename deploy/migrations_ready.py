"""Wait until a service's database carries the migrations this image was built with.

Each Deployment's initContainer runs `python -m deploy.migrations_ready <service>`: it exits 0
once the release's migration Job has brought the database to this image's head (or past it: a
revision this image does not know means a newer release migrated it already), and 1 if that does
not happen within the timeout, so a pod of a new release never serves an older schema.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory

from gateway.settings import SERVICES as ROUTED_SERVICES
from services.kit.db import plain_url

ROOT = Path(__file__).resolve().parent.parent
SERVICES = (*ROUTED_SERVICES, "gateway")


def chain_dir(service: str) -> Path:
    return ROOT / "gateway" / "migrations" if service == "gateway" else ROOT / "services" / service / "migrations"


def database_url(service: str) -> str:
    module = "gateway.settings" if service == "gateway" else f"services.{service}.settings"
    return str(importlib.import_module(module).Settings().database_url)


async def applied_revisions(url: str) -> set[str]:
    """The revisions the database is at; empty while the database or its version table is missing."""
    try:
        conn = await asyncpg.connect(plain_url(url), timeout=5)
    except (OSError, asyncpg.PostgresError):
        return set()
    try:
        return {row["version_num"] for row in await conn.fetch("SELECT version_num FROM alembic_version")}
    except asyncpg.UndefinedTableError:
        return set()
    finally:
        await conn.close()


def is_migrated(script: ScriptDirectory, applied: set[str]) -> bool:
    known = {rev.revision for rev in script.walk_revisions()}
    return bool(applied) and (set(script.get_heads()) <= applied or bool(applied - known))


async def wait_until_migrated(service: str, url: str, timeout_s: float, every_s: float = 2.0) -> bool:
    script = ScriptDirectory(str(chain_dir(service)))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if is_migrated(script, await applied_revisions(url)):
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(every_s)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.migrations_ready")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the migration Job")
    args = parser.parse_args(argv)
    if asyncio.run(wait_until_migrated(args.service, database_url(args.service), args.timeout)):
        print(f"{args.service}: database migrated to this image's head")
        return
    print(f"{args.service}: database not migrated to this image's head within {args.timeout}s", file=sys.stderr)
    raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
