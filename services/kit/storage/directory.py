"""Files in a local directory: `make run` and tests on one machine only (the settings refuse it elsewhere).

Reads and writes run in a worker thread; a write goes to a temporary name and is renamed into place,
so a reader never sees half a file. The media type is kept beside the file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from services.kit.storage.port import FileInfo, FileMissing, PresignedUpload, StorageUnavailable, StoredFile

CHUNK_BYTES = 256 * 1024


class DirectoryFileStore:
    name = "directory"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not a file key: {key!r}")
        return self.root.joinpath(*parts)

    async def put(self, key: str, content: bytes, media_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            for target, data in ((path.with_name(path.name + ".type"), media_type.encode()), (path, content)):
                tmp = target.with_name(target.name + ".part")
                tmp.write_bytes(data)
                tmp.replace(target)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise StorageUnavailable(f"directory put: {exc.__class__.__name__}") from exc

    async def info(self, key: str, head_bytes: int = 16) -> FileInfo:
        path = self._path(key)

        def read() -> FileInfo:
            with path.open("rb") as f:
                head = f.read(head_bytes)
                size = os.fstat(f.fileno()).st_size
            return FileInfo(size_bytes=size, media_type=_media_type(path), head=head)

        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError:
            raise FileMissing(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"directory info: {exc.__class__.__name__}") from exc

    async def open(self, key: str) -> StoredFile:
        found = await self.info(key, head_bytes=0)
        return StoredFile(size_bytes=found.size_bytes, media_type=found.media_type, chunks=self._chunks(self._path(key)))

    async def _chunks(self, path: Path) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:
            raise StorageUnavailable(f"directory read: {exc.__class__.__name__}") from exc
        try:
            while chunk := await asyncio.to_thread(f.read, CHUNK_BYTES):
                yield chunk
        finally:
            f.close()

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            for target in (path, path.with_name(path.name + ".type")):
                await asyncio.to_thread(target.unlink, True)
        except OSError as exc:
            raise StorageUnavailable(f"directory delete: {exc.__class__.__name__}") from exc

    async def upload_url(self, key: str, media_type: str, size_bytes: int, expires_s: int) -> PresignedUpload | None:
        return None

    async def download_url(self, key: str, media_type: str, expires_s: int) -> str | None:
        return None

    async def check(self) -> str | None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            return f"file storage unusable: {exc.__class__.__name__}"
        return None

    async def close(self) -> None:
        pass


def _media_type(path: Path) -> str:
    try:
        return path.with_name(path.name + ".type").read_text() or "application/octet-stream"
    except FileNotFoundError:
        return "application/octet-stream"
