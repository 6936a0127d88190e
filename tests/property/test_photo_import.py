"""Photos from before the file store, on an old pod's disk, copied into the store by the operator's
command (`python -m services.property.photo_import DIR`): counted by outcome, idempotent, resumable."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from services.kit.db import make_engine
from services.kit.storage import FileMissing, FileStore, StoredFile
from services.kit.storage.postgres import PostgresFileStore
from services.property.models import PHOTOS
from services.property.photo_import import import_photos
from tests.support.stack import TestStack

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def photo_bytes() -> bytes:
    return PNG + os.urandom(40_000)


@pytest.fixture
async def database(stack: TestStack) -> AsyncIterator[str]:
    url = await stack.fresh_database("property")
    yield url
    await stack.drop_database(url)


async def old_photos(url: str, old_dir: Path, count: int) -> dict[str, bytes]:
    """`count` photos as the old code left them: a row each, the bytes at `<dir>/<community>/<id>`."""
    photos = {}
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for n in range(count):
                photo_id, community, content = str(uuid.uuid4()), f"c{n % 2}", photo_bytes()
                await conn.execute(
                    insert(PHOTOS).values(
                        id=photo_id,
                        community=community,
                        uploader_id="u-1",
                        media_type="image/png",
                        size_bytes=len(content),
                        sha256=hashlib.sha256(content).hexdigest(),
                    )
                )
                (old_dir / community).mkdir(parents=True, exist_ok=True)
                (old_dir / community / photo_id).write_bytes(content)
                photos[f"photos/{community}/{photo_id}"] = content
    finally:
        await engine.dispose()
    return photos


def import_command(url: str, old_dir: Path) -> dict[str, int]:
    """The command as an operator runs it, its settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROPERTY_")}
    env |= {"PYTHONPATH": str(ROOT), "PROPERTY_DATABASE_URL": url, "PROPERTY_STORAGE_BACKEND": "postgres"}
    run = subprocess.run(
        [sys.executable, "-m", "services.property.photo_import", str(old_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    counts: dict[str, int] = json.loads(run.stdout.strip().splitlines()[-1])
    return counts


async def stored(store: FileStore, key: str) -> bytes:
    opened: StoredFile = await store.open(key)
    return b"".join([chunk async for chunk in opened.chunks])


async def test_the_command_copies_old_photos_into_the_store_once_and_counts_what_it_left(database: str, tmp_path: Path) -> None:
    old_dir = tmp_path / "property-photos"
    photos = await old_photos(database, old_dir, 4)
    keys = sorted(photos)
    # One file whose bytes differ from its row, one row whose file is on another pod's disk, one
    # file without a row, and a half-written file the old code left.
    mismatched = old_dir / keys[0].split("/", 1)[1]
    mismatched.write_bytes(photo_bytes())
    (old_dir / keys[1].split("/", 1)[1]).unlink()
    (old_dir / "c0" / str(uuid.uuid4())).write_bytes(photo_bytes())
    (old_dir / "c0" / "x.part").write_bytes(b"half")

    first = import_command(database, old_dir)
    assert first == {"copied": 2, "already": 0, "not_here": 1, "mismatched": 1, "no_row": 1}
    again = import_command(database, old_dir)
    assert again == {"copied": 0, "already": 2, "not_here": 1, "mismatched": 1, "no_row": 1}

    engine = make_engine(database, pool_size=1)
    try:
        store = PostgresFileStore(engine)
        for key in keys[2:]:
            assert await stored(store, key) == photos[key]
        for key in keys[:2]:
            with pytest.raises(FileMissing):
                await store.info(key)
    finally:
        await engine.dispose()


class FailingAfter:
    """A store that fails after `puts` writes, as a run cut short does."""

    def __init__(self, store: FileStore, puts: int) -> None:
        self.store, self.left = store, puts

    async def info(self, key: str, head_bytes: int = 16) -> object:
        return await self.store.info(key, head_bytes)

    async def put(self, key: str, content: bytes, media_type: str) -> None:
        if self.left == 0:
            raise ConnectionError("the run was stopped")
        self.left -= 1
        await self.store.put(key, content, media_type)


async def test_a_run_cut_short_is_finished_by_running_it_again(database: str, tmp_path: Path) -> None:
    old_dir = tmp_path / "property-photos"
    photos = await old_photos(database, old_dir, 5)
    engine = make_engine(database, pool_size=2)
    try:
        store = PostgresFileStore(engine)
        with pytest.raises(ConnectionError):
            await import_photos(engine, FailingAfter(store, 2), old_dir)  # type: ignore[arg-type]
        resumed = await import_photos(engine, store, old_dir)
        assert (resumed["already"], resumed["copied"]) == (2, 3)
        for key, content in photos.items():
            assert await stored(store, key) == content
    finally:
        await engine.dispose()
