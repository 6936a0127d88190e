"""Photos from before the file store: `python -m services.property.photo_import DIR`.

Until the storage port, each replica wrote a photo's bytes to `<PROPERTY_PHOTO_STORE_DIR>/<community>/<photo id>`
(default `.local/property-photos`) on its own disk, with the row in `photos`. This command copies
each photo whose row exists into the configured store (`PROPERTY_STORAGE_BACKEND`) under its key,
checking the bytes against the row's sha256. Run it on each old pod's volume (or a copy of it).

Idempotent and resumable: a photo already in the store is counted and left alone, so a run stopped
half-way is simply run again. A file never gets a row of its own here: files without a row are
counted (`no_row`) and left on disk, as are files whose bytes differ from their row (`mismatched`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import make_engine
from services.kit.storage import FileMissing, FileStore, open_file_store
from services.property.models import PHOTOS
from services.property.settings import Settings

# Rows read per query; a photo is at most `photo_max_bytes` (2 MiB), read one at a time.
BATCH = 500


async def import_photos(engine: AsyncEngine, store: FileStore, old_dir: Path) -> Counter[str]:
    """Copy every photo with a row and a file under `old_dir` into `store`; counts by outcome:
    `copied`, `already` (in the store), `not_here` (a row whose file is not in this directory:
    another pod's, or uploaded since), `mismatched` (bytes differ from the row), `no_row`."""
    counts: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    after = ""
    while True:
        query = (
            select(PHOTOS.c.id, PHOTOS.c.community, PHOTOS.c.media_type, PHOTOS.c.sha256)
            .where(PHOTOS.c.id > after, PHOTOS.c.pending.is_(False))
            .order_by(PHOTOS.c.id)
            .limit(BATCH)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        for photo_id, community, media_type, sha256 in rows:
            seen.add((community, photo_id))
            counts[
                await _import_one(store, old_dir / community / photo_id, f"photos/{community}/{photo_id}", media_type, sha256)
            ] += 1
        if len(rows) < BATCH:
            break
        after = rows[-1][0]
    counts["no_row"] = await asyncio.to_thread(_files_without_row, old_dir, seen)
    return counts


def _files_without_row(old_dir: Path, seen: set[tuple[str, str]]) -> int:
    # `.part` files are the old code's half-written ones (it renamed each into place when complete).
    return sum(
        1
        for path in old_dir.glob("*/*")
        if path.is_file() and path.suffix != ".part" and (path.parent.name, path.name) not in seen
    )


async def _import_one(store: FileStore, path: Path, key: str, media_type: str, sha256: str | None) -> str:
    try:
        await store.info(key)
        return "already"
    except FileMissing:
        pass
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        return "not_here"
    if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
        return "mismatched"
    await store.put(key, content, media_type)
    return "copied"


async def run(old_dir: Path) -> Counter[str]:
    settings = Settings()
    engine = make_engine(settings.database_url, pool_size=2)
    store = await open_file_store(settings, engine)
    try:
        return await import_photos(engine, store, old_dir)
    finally:
        await store.close()
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.property.photo_import", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="the old photo directory (PROPERTY_PHOTO_STORE_DIR)")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory} is not a directory")
    counts = asyncio.run(run(args.directory))
    # One JSON line: what an operator's runbook (or a script looping over old volumes) reads.
    print(json.dumps({k: counts[k] for k in ("copied", "already", "not_here", "mismatched", "no_row")}))


if __name__ == "__main__":
    main()
