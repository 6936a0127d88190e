"""The file storage port: every adapter keeps the same contract; the S3 adapter passes a real
S3-protocol server's signature checks (SeaweedFS), its presigned URLs work and are refused when
changed or expired, and every store failure is `storage-unavailable`, never a database problem."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from services.kit.db import make_engine
from services.kit.storage import FileMissing, FileStore, StorageSettings, StorageUnavailable, open_file_store
from services.kit.storage.directory import DirectoryFileStore
from services.kit.storage.postgres import PostgresFileStore
from services.kit.storage.s3 import S3FileStore
from tests.support.objectstore import ObjectStore, object_store  # noqa: F401 (the fixture)
from tests.support.stack import TestStack

CONTENT = os.urandom(700_000)  # several PostgreSQL chunks and several S3 read chunks


@pytest.fixture(params=["postgres", "directory", "s3"])
async def store(
    request: pytest.FixtureRequest,
    stack: TestStack,
    tmp_path: Path,
    object_store: ObjectStore,  # noqa: F811
) -> AsyncIterator[FileStore]:
    if request.param == "postgres":
        url = await stack.fresh_database("property")  # its migrations create the adapter's tables
        engine = make_engine(url)
        try:
            yield PostgresFileStore(engine, chunk_bytes=100_000)
        finally:
            await engine.dispose()
            await stack.drop_database(url)
    elif request.param == "directory":
        yield DirectoryFileStore(tmp_path / "files")
    else:
        settings = StorageSettings(**object_store.settings(await object_store.new_bucket()))
        s3 = await open_file_store(settings, make_engine("postgresql://unused/unused"))
        try:
            yield s3
        finally:
            await s3.close()


async def read_all(store: FileStore, key: str) -> bytes:
    opened = await store.open(key)
    return b"".join([chunk async for chunk in opened.chunks])


async def test_every_store_keeps_a_file_by_key_streams_it_back_and_forgets_it(store: FileStore) -> None:
    key = "photos/c1/p1"
    await store.put(key, CONTENT, "image/jpeg")
    opened = await store.open(key)
    assert (opened.size_bytes, opened.media_type) == (len(CONTENT), "image/jpeg")
    chunks = [chunk async for chunk in opened.chunks]
    assert len(chunks) > 1, "a file is streamed in pieces, not read whole"
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(CONTENT).digest()
    info = await store.info(key, head_bytes=16)
    assert (info.size_bytes, info.media_type, info.head) == (len(CONTENT), "image/jpeg", CONTENT[:16])

    await store.put(key, b"\x89PNG replaced", "image/png")  # a second put replaces the first
    assert await read_all(store, key) == b"\x89PNG replaced"
    assert (await store.info(key)).media_type == "image/png"

    await store.put("empty", b"", "image/png")  # an empty file is a file
    assert (await store.info("empty")).size_bytes == 0 and await read_all(store, "empty") == b""

    await store.delete(key)
    with pytest.raises(FileMissing):
        await store.open(key)
    with pytest.raises(FileMissing):
        await store.info(key)
    await store.delete(key)  # deleting what is not there is no error
    assert await store.check() is None


def test_the_directory_store_refuses_keys_that_climb_out_of_its_root(tmp_path: Path) -> None:
    store = DirectoryFileStore(tmp_path)
    for key in ("../etc/passwd", "photos/../../x", "/abs", "a//b", ""):
        with pytest.raises(ValueError):
            store._path(key)


def test_settings_refuse_a_replica_local_directory_outside_local_mode_and_s3_without_a_bucket() -> None:
    with pytest.raises(ValidationError, match="STORAGE_BACKEND=directory"):
        StorageSettings(mode="cluster", storage_backend="directory")
    with pytest.raises(ValidationError, match="STORAGE_S3_BUCKET"):
        StorageSettings(storage_backend="s3")
    assert StorageSettings(mode="cluster").storage_backend == "postgres"


async def s3_store(object_store: ObjectStore, bucket: str, **overrides: object) -> S3FileStore:  # noqa: F811
    store = S3FileStore(StorageSettings(**object_store.settings(bucket, **overrides)))
    await store.start()
    return store


async def test_presigned_urls_carry_the_bytes_past_the_service_and_the_server_checks_them(
    object_store: ObjectStore,  # noqa: F811
) -> None:
    store = await s3_store(object_store, await object_store.new_bucket())
    try:
        upload = await store.upload_url("photos/c1/up", "image/png", size_bytes=8, expires_s=60)
        assert "content-length" in upload.url and "content-type" in upload.url  # X-Amz-SignedHeaders
        async with httpx.AsyncClient() as client:
            # The type and size are part of the signature: another one is refused by the server.
            wrong = await client.put(upload.url, content=b"\x89PNGdata", headers={"Content-Type": "image/jpeg"})
            assert wrong.status_code == 403
            larger = await client.put(upload.url, content=b"\x89PNGdata and more", headers={"Content-Type": "image/png"})
            assert larger.status_code == 403
            with pytest.raises(FileMissing):
                await store.info("photos/c1/up")
            r = await client.put(upload.url, content=b"\x89PNGdata", headers=upload.headers)
            assert (r.status_code, upload.method) == (200, "PUT")
            assert (await store.info("photos/c1/up", head_bytes=4)).head == b"\x89PNG"

            url = await store.download_url("photos/c1/up", "image/png", expires_s=60)
            r = await client.get(url)
            assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"\x89PNGdata", "image/png")
            assert r.headers["cache-control"] == "private, no-store"
            # A URL is good for its one object: pointed at another key, the signature no longer matches.
            await store.put("photos/c1/other", b"secret", "image/png")
            tampered = await client.get(url.replace("photos/c1/up", "photos/c1/other"))
            assert tampered.status_code == 403 and b"secret" not in tampered.content

            short = await store.download_url("photos/c1/up", "image/png", expires_s=1)
            assert (await client.get(short)).status_code == 200
            deadline = asyncio.get_running_loop().time() + 10
            while (r := await client.get(short)).status_code == 200:  # until the server says it expired
                assert asyncio.get_running_loop().time() < deadline, "a presigned URL outlived its expiry"
                await asyncio.sleep(0.2)
            assert r.status_code == 403 and b"expired" in r.content
    finally:
        await store.close()


async def test_presigned_urls_name_the_public_endpoint_when_clients_reach_the_store_elsewhere(
    object_store: ObjectStore,  # noqa: F811
) -> None:
    bucket = await object_store.new_bucket()
    store = await s3_store(object_store, bucket, storage_s3_public_endpoint_url="https://files.example.org")
    try:
        url = await store.download_url("photos/c1/x", "image/png", expires_s=60)
        assert url.startswith(f"https://files.example.org/{bucket}/photos/c1/x?")
        upload = await store.upload_url("photos/c1/x", "image/png", size_bytes=1, expires_s=60)
        assert upload.url.startswith("https://files.example.org/")
        await store.put("photos/c1/x", b"x", "image/png")  # while the service itself uses the internal one
        assert await read_all(store, "photos/c1/x") == b"x"
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("overrides", "reasons"),
    [
        ({"storage_s3_secret_access_key": "not-the-secret"}, {"SignatureDoesNotMatch"}),
        ({"storage_s3_access_key_id": "AKIDNOBODY"}, {"InvalidAccessKeyId"}),
        # A write to a missing bucket would create it, which this identity may not do.
        ({"storage_s3_bucket": "no-such-bucket-here"}, {"NoSuchBucket", "AccessDenied"}),
    ],
)
async def test_a_store_that_refuses_is_storage_unavailable_with_the_servers_reason(
    object_store: ObjectStore,  # noqa: F811
    overrides: dict[str, str],
    reasons: set[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await s3_store(object_store, await object_store.new_bucket(), **overrides)
    try:
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: store.put("k", b"x", "image/png"),
            lambda: store.open("k"),
            lambda: store.delete("k"),
            lambda: store.info("k"),
        ]
        for attempt in attempts:
            with pytest.raises(StorageUnavailable) as caught:
                await attempt()
            assert caught.value.status == 503 and caught.value.type_uri() == "urn:community:problem:storage-unavailable"
            assert caught.value.reason.rsplit(" ", 1)[-1] in reasons, caught.value.reason
        assert (await store.check() or "").startswith("file storage refused")
    finally:
        await store.close()
    assert any(reason in caplog.text for reason in reasons)


async def test_a_store_that_cannot_be_reached_is_storage_unavailable() -> None:
    settings = StorageSettings(
        storage_backend="s3",
        storage_s3_bucket="photos",
        storage_s3_endpoint_url="http://127.0.0.1:9",  # nothing listens on the discard port
        storage_s3_access_key_id="AKIDX",
        storage_s3_secret_access_key="x" * 32,
        storage_timeout_s=1.0,
    )
    store = S3FileStore(settings)
    await store.start()
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await store.put("k", b"x", "image/png")
        assert "s3 put" in caught.value.reason
        assert (await store.check() or "").startswith("file storage unreachable")
    finally:
        await store.close()


async def test_a_directory_that_cannot_be_written_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's root should be")
    store = DirectoryFileStore(blocker)
    with pytest.raises(StorageUnavailable):
        await store.put("photos/c1/p", b"x", "image/png")
    assert await store.check() is not None
