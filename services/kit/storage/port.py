"""The file storage port: what a service needs from wherever its files live.

A service names a file by a key (`photos/<community>/<id>`) and never by a path: every replica reads
what any replica wrote. The adapters are PostgreSQL (the default: nothing new to run), an
S3-compatible object store (production; it can hand out presigned URLs so the bytes pass between
the client and the store, not through the service) and a directory (local mode only).

Any failure of the store itself is `StorageUnavailable`, a 503 problem of its own type, never the
"database unavailable" the kit answers for the service's database: an operator must know which to fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.kit.problems import Problem


class StorageUnavailable(Problem):
    """The file store failed or cannot be reached; the request did nothing and may be retried."""

    slug = "storage-unavailable"
    status = 503
    title_zh = "文件存储暂不可用"
    title_en = "File storage unavailable"

    def __init__(self, reason: str) -> None:
        # The reason (an error code, an exception's class) goes to the log, not to the client.
        self.reason = reason
        super().__init__(
            ("文件存储暂不可用，请稍后重试", "File storage is unavailable; retry shortly"), headers={"Retry-After": "2"}
        )


class FileMissing(LookupError):
    """No file under this key (never written, deleted, or not yet uploaded to a presigned URL)."""


@dataclass(frozen=True)
class FileInfo:
    """What the store knows of a file without reading it: its size, type, and its first bytes."""

    size_bytes: int
    media_type: str
    head: bytes


@dataclass
class StoredFile:
    """An open file: its size and type, and its bytes as an iterator of chunks, read as they are sent."""

    size_bytes: int
    media_type: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class PresignedUpload:
    """Where a client sends a file itself: one `method` request to `url` with exactly these `headers`."""

    method: str
    url: str
    headers: dict[str, str]
    expires_at: datetime


class FileStore(Protocol):
    """Every adapter offers these; `upload_url` and `download_url` are None when it has no URLs to give."""

    name: str

    async def put(self, key: str, content: bytes, media_type: str) -> None:
        """Store `content` under `key`, replacing what was there; done when it returns."""

    async def open(self, key: str) -> StoredFile:
        """The file under `key`, streamed; `FileMissing` if there is none."""

    async def info(self, key: str, head_bytes: int = 16) -> FileInfo:
        """Size, type and the first `head_bytes` of the file under `key`; `FileMissing` if there is none."""

    async def delete(self, key: str) -> None:
        """Remove the file under `key`; nothing happens if there is none."""

    async def upload_url(self, key: str, media_type: str, size_bytes: int, expires_s: int) -> PresignedUpload | None:
        """A URL the client may send exactly `size_bytes` of `media_type` to, or None if this store
        takes files only through `put`."""

    async def download_url(self, key: str, media_type: str, expires_s: int) -> str | None:
        """A URL the client may fetch the file from directly, or None if the service must stream it."""

    async def check(self) -> str | None:
        """None if the store answers, else why not (a readiness check)."""

    async def close(self) -> None:
        """Release connections at shutdown."""
