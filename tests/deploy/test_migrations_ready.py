"""The initContainer's gate: a pod starts only once its release's migrations are applied."""

from __future__ import annotations

import asyncpg
from alembic.script import ScriptDirectory

from deploy.migrations_ready import chain_dir, wait_until_migrated
from services.kit.db import plain_url
from tests.support.stack import TestStack


async def test_a_database_at_the_images_head_lets_the_pod_start(stack: TestStack) -> None:
    url = await stack.fresh_database("timebank")
    try:
        assert await wait_until_migrated("timebank", url, timeout_s=5, every_s=0.1)
    finally:
        await stack.drop_database(url)


async def test_an_unmigrated_or_missing_database_holds_the_pod_back(stack: TestStack) -> None:
    url = await stack.empty_database("timebank")
    try:
        assert not await wait_until_migrated("timebank", url, timeout_s=0.3, every_s=0.1)
        conn = await asyncpg.connect(plain_url(url))
        try:
            await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            await conn.execute("INSERT INTO alembic_version VALUES ('0000_not_this_chain_head')")
        finally:
            await conn.close()
        # A revision the image does not know is a newer release's: the schema is past this image's head.
        assert await wait_until_migrated("timebank", url, timeout_s=1, every_s=0.1)
    finally:
        await stack.drop_database(url)
    assert not await wait_until_migrated("timebank", url, timeout_s=0.3, every_s=0.1)


async def test_a_database_one_revision_behind_holds_the_pod_back(stack: TestStack) -> None:
    url = await stack.fresh_database("timebank")
    try:
        conn = await asyncpg.connect(plain_url(url))
        try:
            script = ScriptDirectory(str(chain_dir("timebank")))
            head = script.get_revision(script.get_current_head())
            assert head is not None and isinstance(head.down_revision, str), "the chain has more than one revision"
            await conn.execute("UPDATE alembic_version SET version_num = $1", head.down_revision)
        finally:
            await conn.close()
        assert not await wait_until_migrated("timebank", url, timeout_s=0.3, every_s=0.1)
    finally:
        await stack.drop_database(url)
