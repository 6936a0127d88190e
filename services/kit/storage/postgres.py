"""Files in the service's own PostgreSQL database: every replica shares them with nothing new to run.

A file is one `kit_files` row and its bytes in `kit_file_chunks` rows of `storage_chunk_bytes` each;
reading sends one chunk at a time, each fetched by its own short query, so a slow client holds no
connection and no replica holds a whole file in memory. A service that uses this adapter creates the
tables in one of its migrations (`create_file_tables`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.db import new_metadata
from services.kit.storage.port import FileInfo, FileMissing, PresignedUpload, StorageUnavailable, StoredFile

log = logging.getLogger("kit.storage")

file_metadata = new_metadata()

files = Table(
    "kit_files",
    file_metadata,
    Column("key", Text, primary_key=True),
    Column("media_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

file_chunks = Table(
    "kit_file_chunks",
    file_metadata,
    Column("key", Text, ForeignKey("kit_files.key", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)


def create_file_tables() -> None:
    """For a service's migration: the adapter's tables, if missing."""
    from alembic import context, op  # migrations only: a serving process never loads alembic

    bind = context.get_bind()
    file_metadata.create_all(bind)
    # Photos and documents arrive compressed: storing chunks out of line without another
    # compression attempt saves the CPU and keeps reads to plain copies.
    op.execute("ALTER TABLE kit_file_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def drop_file_tables() -> None:
    from alembic import context

    file_metadata.drop_all(context.get_bind())


class PostgresFileStore:
    name = "postgres"

    def __init__(self, engine: AsyncEngine, chunk_bytes: int = 256 * 1024) -> None:
        self.engine = engine
        self.chunk_bytes = chunk_bytes

    async def put(self, key: str, content: bytes, media_type: str) -> None:
        pieces = [
            {"key": key, "seq": n, "data": content[start : start + self.chunk_bytes]}
            for n, start in enumerate(range(0, len(content), self.chunk_bytes))
        ]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(files).where(files.c.key == key))
                await conn.execute(insert(files).values(key=key, media_type=media_type, size_bytes=len(content)))
                if pieces:
                    await conn.execute(insert(file_chunks), pieces)
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise _unavailable("put", exc) from exc

    async def info(self, key: str, head_bytes: int = 16) -> FileInfo:
        query = select(files.c.size_bytes, files.c.media_type, func.substring(file_chunks.c.data, 1, head_bytes)).select_from(
            files.outerjoin(file_chunks, (file_chunks.c.key == files.c.key) & (file_chunks.c.seq == 0))
        )
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(query.where(files.c.key == key))).first()
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise _unavailable("info", exc) from exc
        if row is None:
            raise FileMissing(key)
        return FileInfo(size_bytes=int(row[0]), media_type=str(row[1]), head=bytes(row[2] or b""))

    async def open(self, key: str) -> StoredFile:
        found = await self.info(key, head_bytes=0)
        return StoredFile(size_bytes=found.size_bytes, media_type=found.media_type, chunks=self._chunks(key))

    async def _chunks(self, key: str) -> AsyncIterator[bytes]:
        query = select(file_chunks.c.data).where(file_chunks.c.key == key, file_chunks.c.seq == bindparam("seq"))
        seq = 0
        while True:
            try:
                async with self.engine.connect() as conn:
                    data = (await conn.execute(query, {"seq": seq})).scalar()
            except (DBAPIError, OSError, TimeoutError) as exc:
                raise _unavailable("read", exc) from exc
            if data is None:
                return
            yield bytes(data)
            seq += 1

    async def delete(self, key: str) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(files).where(files.c.key == key))
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise _unavailable("delete", exc) from exc

    async def upload_url(self, key: str, media_type: str, size_bytes: int, expires_s: int) -> PresignedUpload | None:
        return None  # the bytes come through the service's own upload route

    async def download_url(self, key: str, media_type: str, expires_s: int) -> str | None:
        return None

    async def check(self) -> str | None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(files.c.key).limit(1))
        except Exception as exc:
            return f"file storage unreachable: {exc.__class__.__name__}"
        return None

    async def close(self) -> None:
        pass  # the engine is the service's own and closes with it


def _unavailable(operation: str, exc: BaseException) -> StorageUnavailable:
    reason = f"postgres {operation}: {exc.__class__.__name__}"
    log.warning("file storage failed: %s", reason)
    return StorageUnavailable(reason)
