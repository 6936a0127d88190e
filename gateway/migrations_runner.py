"""The hook `make run` (deploy/local/stack.py) calls to migrate the gateway's database."""

from __future__ import annotations

from gateway.migrate import upgrade_gateway_database


async def upgrade(database_url: str) -> None:
    await upgrade_gateway_database(database_url)
