"""Photos live in the kit's file store, shared by every replica: one uploaded through replica A
downloads through replica B, from PostgreSQL (the default) or an S3 store (by a presigned URL),
and a store failure is `storage-unavailable` while the service stays ready."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.kit.storage import FileMissing
from services.property import photos
from services.property.app import create_app
from services.property.settings import Settings
from tests.property.conftest import COMMUNITY, World
from tests.support.harness import RunningService, run_service
from tests.support.objectstore import ObjectStore, object_store  # noqa: F401 (the fixture)
from tests.support.stack import TestStack

PHOTO = b"\x89PNG\r\n\x1a\n" + os.urandom(1_500_000)


@asynccontextmanager
async def two_replicas(stack: TestStack, **overrides: Any) -> AsyncIterator[tuple[RunningService, RunningService]]:
    """Two property apps on one database, as two pods of the Deployment are."""
    url = await stack.fresh_database("property")
    try:
        async with AsyncExitStack() as exits:
            a, b = [
                await exits.enter_async_context(
                    run_service(stack, "property", create_app, Settings, database_url=url, sla_check_interval_s=3600, **overrides)
                )
                for _ in range(2)
            ]
            yield a, b
    finally:
        await stack.drop_database(url)


async def small_world(stack: TestStack, client: httpx.AsyncClient) -> World:
    world = World(stack=stack, client=client)
    await world.building("B1")
    await world.household("B1", "101")
    await world.household("B1", "102")
    await world.resident("wang", "101", "17000000001")
    await world.resident("zhao", "102", "17000000004")
    await world.steward("wu", ["B1"], [])
    return world


async def upload(world: World, resident: str, content: bytes = PHOTO) -> str:
    r = await world.client.post("/photos", content=content, headers={**world.as_resident(resident), "Content-Type": "image/png"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_photo_uploaded_through_one_replica_downloads_through_the_other(stack: TestStack) -> None:
    async with two_replicas(stack, storage_chunk_bytes=256 * 1024) as (a, b):
        world = await small_world(stack, a.client)
        photo_id = await upload(world, "wang")
        await world.submit("wang", photo_ids=[photo_id])

        r = await b.client.get(f"/photos/{photo_id}", headers=world.as_steward("wu"))
        assert r.status_code == 200 and r.content == PHOTO
        assert r.headers["content-type"] == "image/png" and r.headers["cache-control"] == "private, no-store"
        assert int(r.headers["content-length"]) == len(PHOTO)
        # Stored in the database both replicas share, in pieces (streamed back one at a time).
        async with b.app.state.engine.connect() as conn:
            chunks = await conn.scalar(text("SELECT count(*) FROM kit_file_chunks"))
        assert chunks == -(-len(PHOTO) // (256 * 1024))
        # Who may not see it gets 404 from either replica.
        for replica in (a, b):
            r = await replica.client.get(f"/photos/{photo_id}", headers=world.as_resident("zhao"))
            assert r.status_code == 404


async def test_with_an_object_store_a_photo_is_fetched_from_the_store_by_a_presigned_url(
    stack: TestStack,
    object_store: ObjectStore,  # noqa: F811
) -> None:
    bucket = await object_store.new_bucket()
    async with two_replicas(stack, **object_store.settings(bucket)) as (a, b):
        world = await small_world(stack, a.client)
        photo_id = await upload(world, "wang")

        r = await b.client.get(f"/photos/{photo_id}", headers=world.as_resident("wang"))
        assert r.status_code == 307 and r.headers["cache-control"] == "private, no-store"
        location = r.headers["location"]
        assert location.startswith(f"{object_store.endpoint_url}/{bucket}/photos/") and "X-Amz-Signature=" in location
        async with httpx.AsyncClient() as client:
            fetched = await client.get(location)
        assert fetched.status_code == 200 and fetched.content == PHOTO
        assert fetched.headers["content-type"] == "image/png"
        r = await b.client.get(f"/photos/{photo_id}", headers=world.as_resident("zhao"))
        assert r.status_code == 404 and "location" not in r.headers


async def test_a_store_that_fails_is_storage_unavailable_and_the_replica_stays_ready(stack: TestStack, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the store's root should be")
    async with two_replicas(stack, storage_backend="directory", storage_dir=str(blocked)) as (a, _):
        world = await small_world(stack, a.client)
        r = await a.client.post("/photos", content=PHOTO, headers={**world.as_resident("wang"), "Content-Type": "image/png"})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        body = r.json()
        assert body["type"] == "urn:community:problem:storage-unavailable" and body["title"] == "文件存储暂不可用"
        assert "数据库" not in r.text
        async with a.app.state.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM photos")) == 0
        ready = await a.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["storage"] != "ok"


@pytest.mark.parametrize("backend", ["postgres", "directory"])
async def test_a_service_without_urls_streams_the_photo_itself(stack: TestStack, tmp_path: Path, backend: str) -> None:
    async with two_replicas(stack, storage_backend=backend, storage_dir=str(tmp_path / "files")) as (a, _):
        world = await small_world(stack, a.client)
        photo_id = await upload(world, "wang", PHOTO[:5000])
        r = await a.client.get(f"/photos/{photo_id}", headers=world.as_resident("wang"))
        assert r.status_code == 200 and r.content == PHOTO[:5000]


async def test_a_photo_goes_straight_to_the_object_store_and_is_checked_before_it_can_be_attached(
    stack: TestStack,
    object_store: ObjectStore,  # noqa: F811
) -> None:
    async with two_replicas(stack, **object_store.settings(await object_store.new_bucket())) as (a, b):
        world = await small_world(stack, a.client)
        wang = world.as_resident("wang")
        declared = {"media_type": "image/png", "size_bytes": len(PHOTO)}
        r = await a.client.post("/photos/uploads", json=declared, headers=wang)
        assert r.status_code == 201, r.text
        photo_id, upload = r.json()["photo"]["id"], r.json()["upload"]
        assert upload["method"] == "PUT" and upload["headers"]["Content-Type"] == "image/png"

        # Pending: not yet uploaded, so it can be neither confirmed, seen nor attached.
        r = await b.client.post(f"/photos/{photo_id}/uploaded", headers=wang)
        assert r.status_code == 409 and r.json()["type"] == "urn:community:problem:property/photo-not-uploaded"
        assert (await b.client.get(f"/photos/{photo_id}", headers=wang)).status_code == 404
        await world.submit("wang", photo_ids=[photo_id], status=422)

        async with httpx.AsyncClient() as client:
            sent = await client.request(upload["method"], upload["url"], content=PHOTO, headers=upload["headers"])
            assert sent.status_code == 200
            # Only its uploader reports it done (anyone else: 404), through either replica.
            r = await b.client.post(f"/photos/{photo_id}/uploaded", headers=world.as_resident("zhao"))
            assert r.status_code == 404
            r = await b.client.post(f"/photos/{photo_id}/uploaded", headers=wang)
            assert r.status_code == 200 and r.json() == {"id": photo_id, "media_type": "image/png", "size_bytes": len(PHOTO)}
            ticket = await world.submit("wang", photo_ids=[photo_id])
            assert ticket["photo_ids"] == [photo_id]
            r = await a.client.get(f"/photos/{photo_id}", headers=world.as_steward("wu"))
            assert r.status_code == 307
            assert (await client.get(r.headers["location"])).content == PHOTO


async def test_bytes_sent_straight_to_the_store_that_are_no_image_are_refused_and_deleted(
    stack: TestStack,
    object_store: ObjectStore,  # noqa: F811
) -> None:
    async with two_replicas(stack, **object_store.settings(await object_store.new_bucket())) as (a, _):
        world = await small_world(stack, a.client)
        wang = world.as_resident("wang")
        r = await a.client.post("/photos/uploads", json={"media_type": "image/png", "size_bytes": 3 * 1024 * 1024}, headers=wang)
        assert r.status_code == 413
        gif = b"GIF89a" + b"\x00" * 100
        r = await a.client.post("/photos/uploads", json={"media_type": "image/png", "size_bytes": len(gif)}, headers=wang)
        photo_id, upload = r.json()["photo"]["id"], r.json()["upload"]
        async with httpx.AsyncClient() as client:
            assert (await client.put(upload["url"], content=gif, headers=upload["headers"])).status_code == 200
        r = await a.client.post(f"/photos/{photo_id}/uploaded", headers=wang)
        assert r.status_code == 415 and r.json()["type"] == "urn:community:problem:property/photo-not-image"
        with pytest.raises(FileMissing):
            await a.app.state.file_store.info(f"photos/{COMMUNITY}/{photo_id}")
        assert (await a.client.post(f"/photos/{photo_id}/uploaded", headers=wang)).status_code == 404


async def test_a_store_without_urls_sends_direct_uploads_to_post_photos(stack: TestStack) -> None:
    async with two_replicas(stack) as (a, _):
        world = await small_world(stack, a.client)
        body = {"media_type": "image/png", "size_bytes": 100}
        r = await a.client.post("/photos/uploads", json=body, headers=world.as_resident("wang"))
        assert r.status_code == 409 and r.json()["type"] == "urn:community:problem:property/direct-upload-unavailable"
        async with a.app.state.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM photos")) == 0


async def test_direct_uploads_never_reported_done_are_forgotten_once_their_url_has_expired(
    stack: TestStack,
    object_store: ObjectStore,  # noqa: F811
) -> None:
    async with two_replicas(stack, **object_store.settings(await object_store.new_bucket())) as (a, b):
        world = await small_world(stack, a.client)
        wang = world.as_resident("wang")
        ids = []
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                r = await a.client.post("/photos/uploads", json={"media_type": "image/png", "size_bytes": 10}, headers=wang)
                ids.append(r.json()["photo"]["id"])
                upload = r.json()["upload"]
                assert (await client.put(upload["url"], content=PHOTO[:10], headers=upload["headers"])).status_code == 200
        old, fresh, reported = ids
        assert (await a.client.post(f"/photos/{reported}/uploaded", headers=wang)).status_code == 200
        async with a.app.state.engine.begin() as conn:
            await conn.execute(
                text("UPDATE photos SET created_at = now() - interval '1 hour' WHERE id = ANY(:ids)"),
                {"ids": [old, reported]},
            )

        async def run_job(replica: RunningService) -> int:
            async with replica.app.state.sessionmaker() as session:
                return await photos.forget_abandoned_uploads(session, replica.app.state.file_store, older_than_s=600)

        # Both replicas run the job at once; each abandoned upload goes once.
        assert sum(await asyncio.gather(run_job(a), run_job(b))) == 1
        async with a.app.state.engine.connect() as conn:
            left = set(await conn.scalars(text("SELECT id FROM photos")))
        assert left == {fresh, reported}
        store = a.app.state.file_store
        with pytest.raises(FileMissing):
            await store.info(f"photos/{COMMUNITY}/{old}")
        for kept in (fresh, reported):
            assert (await store.info(f"photos/{COMMUNITY}/{kept}")).size_bytes == 10
