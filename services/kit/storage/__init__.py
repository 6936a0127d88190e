"""File storage for services: the port, its adapters, and the one place that picks an adapter.

    store = await open_file_store(settings, engine)   # at startup, from StorageSettings
    await store.put(f"photos/{community}/{photo_id}", content, "image/jpeg")

See `port.py` for the contract and docs/deploy.md for the settings.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.storage.directory import DirectoryFileStore
from services.kit.storage.port import FileInfo, FileMissing, FileStore, PresignedUpload, StorageUnavailable, StoredFile
from services.kit.storage.postgres import PostgresFileStore
from services.kit.storage.settings import StorageSettings

__all__ = [
    "FileInfo",
    "FileMissing",
    "FileStore",
    "PresignedUpload",
    "StorageSettings",
    "StorageUnavailable",
    "StoredFile",
    "close_file_store",
    "file_store_of",
    "install_file_store",
    "open_file_store",
]


async def open_file_store(settings: StorageSettings, engine: AsyncEngine) -> FileStore:
    """The adapter the settings name, ready to use; `close()` it at shutdown."""
    if settings.storage_backend == "s3":
        # aiobotocore (with aiohttp and botocore) is a third of a replica's start-up imports: loaded
        # only where S3 is the store.
        from services.kit.storage.s3 import S3FileStore

        store = S3FileStore(settings)
        await store.start()
        return store
    if settings.storage_backend == "directory":
        return DirectoryFileStore(settings.storage_dir)
    return PostgresFileStore(engine, settings.storage_chunk_bytes)


async def install_file_store(app: FastAPI) -> None:
    """A start-up hook (`ServiceParts.on_startup`): `app.state.file_store`, and a `storage` readiness
    check. The store is not among what the service cannot serve without: with it down, only file
    routes fail (`storage-unavailable`), and the replica stays in the load balancer, `degraded`."""
    settings: StorageSettings = app.state.settings
    store = await open_file_store(settings, app.state.engine)
    app.state.file_store = store
    app.state.readiness_checks["storage"] = store.check


async def close_file_store(app: FastAPI) -> None:
    store: FileStore | None = getattr(app.state, "file_store", None)
    if store is not None:
        await store.close()


def file_store_of(request: Request) -> FileStore:
    store: FileStore = request.app.state.file_store
    return store
