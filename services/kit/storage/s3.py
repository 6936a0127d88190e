"""Files in an S3-compatible object store (AWS S3, Aliyun OSS, Tencent COS, MinIO, Ceph, SeaweedFS).

The service talks to the store with aiobotocore (asyncio, one connection pool per replica) and hands
clients presigned URLs, signed for `storage_s3_public_endpoint_url` when clients reach the store by
another address, so uploads and downloads need not pass through the service. Every failure of the
store, whatever its cause (refused credentials, a missing bucket, a timeout), is
`StorageUnavailable`; a missing object is `FileMissing`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from services.kit.storage.port import FileInfo, FileMissing, PresignedUpload, StorageUnavailable, StoredFile
from services.kit.storage.settings import StorageSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger("kit.storage")

CHUNK_BYTES = 256 * 1024
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Errors of the store or of the way to it, as opposed to a missing object.
TRANSPORT_ERRORS = (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)


class S3FileStore:
    name = "s3"

    def __init__(self, settings: StorageSettings) -> None:
        self.bucket = settings.storage_s3_bucket
        self.settings = settings
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None
        self._presigner: S3Client | None = None

    async def start(self) -> None:
        s = self.settings
        session = get_session()
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": s.storage_s3_addressing_style},
            connect_timeout=s.storage_timeout_s,
            read_timeout=s.storage_timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        secret = s.storage_s3_secret_access_key.get_secret_value() if s.storage_s3_secret_access_key else None
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=s.storage_s3_endpoint_url,
                region_name=s.storage_s3_region,
                aws_access_key_id=s.storage_s3_access_key_id,
                aws_secret_access_key=secret,
                config=config,
            )
        )
        self._presigner = self._client
        if s.storage_s3_public_endpoint_url:
            # Signing happens here, offline; the signature covers the host, so it must be the one clients use.
            self._presigner = await self._stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=s.storage_s3_public_endpoint_url,
                    region_name=s.storage_s3_region,
                    aws_access_key_id=s.storage_s3_access_key_id,
                    aws_secret_access_key=secret,
                    config=config,
                )
            )

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("S3FileStore.start() was not awaited")
        return self._client

    async def put(self, key: str, content: bytes, media_type: str) -> None:
        try:
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=content, ContentType=media_type)
        except ClientError as exc:
            raise _unavailable("put", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise _unavailable("put", exc) from exc

    async def info(self, key: str, head_bytes: int = 16) -> FileInfo:
        # A ranged GET, not a HEAD: a HEAD's error has no body, so a missing bucket (the store is
        # misconfigured) would look like a missing object. The total size is in Content-Range.
        try:
            part = await self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{max(head_bytes, 1) - 1}")
            async with part["Body"] as body:
                head = (await body.read())[:head_bytes]
            total = part.get("ContentRange", "").rpartition("/")[2]
            size = int(total) if total.isdigit() else int(part["ContentLength"])
            media_type = part.get("ContentType") or "application/octet-stream"
        except ClientError as exc:
            if _code(exc) != "InvalidRange":
                raise _missing_or_unavailable("info", key, exc) from exc
            return await self._empty_info(key)  # an empty object has no byte 0 to range over
        except TRANSPORT_ERRORS as exc:
            raise _unavailable("info", exc) from exc
        return FileInfo(size_bytes=size, media_type=media_type, head=head)

    async def _empty_info(self, key: str) -> FileInfo:
        try:
            found = await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise _missing_or_unavailable("info", key, exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise _unavailable("info", exc) from exc
        return FileInfo(size_bytes=0, media_type=found.get("ContentType") or "application/octet-stream", head=b"")

    async def open(self, key: str) -> StoredFile:
        try:
            found = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise _missing_or_unavailable("open", key, exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise _unavailable("open", exc) from exc

        async def chunks() -> AsyncIterator[bytes]:
            async with found["Body"] as body:
                try:
                    async for chunk in body.iter_chunks(CHUNK_BYTES):
                        yield chunk
                except TRANSPORT_ERRORS as exc:
                    raise _unavailable("read", exc) from exc

        return StoredFile(
            size_bytes=int(found["ContentLength"]),
            media_type=found.get("ContentType") or "application/octet-stream",
            chunks=chunks(),
        )

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise _unavailable("delete", exc) from exc
        except TRANSPORT_ERRORS as exc:
            raise _unavailable("delete", exc) from exc

    async def upload_url(self, key: str, media_type: str, size_bytes: int, expires_s: int) -> PresignedUpload:
        assert self._presigner is not None
        # The content type and length are signed headers: the store refuses an upload of any other
        # type or size, so a client cannot park a larger file than it declared.
        params = {"Bucket": self.bucket, "Key": key, "ContentType": media_type, "ContentLength": size_bytes}
        url = await self._presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_s)
        headers = {"Content-Type": media_type, "Content-Length": str(size_bytes)}
        return PresignedUpload(method="PUT", url=url, headers=headers, expires_at=expires_at)

    async def download_url(self, key: str, media_type: str, expires_s: int) -> str:
        assert self._presigner is not None
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentType": media_type,
            # The URL is a bearer credential for one photo: no shared cache may keep the answer.
            "ResponseCacheControl": "private, no-store",
        }
        return await self._presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)

    async def check(self) -> str | None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return f"file storage refused: {_code(exc)}"
        except Exception as exc:
            return f"file storage unreachable: {exc.__class__.__name__}"
        return None

    async def close(self) -> None:
        await self._stack.aclose()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def _missing_or_unavailable(operation: str, key: str, exc: ClientError) -> FileMissing | StorageUnavailable:
    if _code(exc) in MISSING_CODES:
        return FileMissing(key)
    return _unavailable(operation, exc)


def _unavailable(operation: str, exc: BaseException) -> StorageUnavailable:
    reason = f"s3 {operation}: {_code(exc) if isinstance(exc, ClientError) else exc.__class__.__name__}"
    log.warning("file storage failed: %s", reason)
    return StorageUnavailable(reason)
