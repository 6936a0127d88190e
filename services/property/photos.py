"""Ticket photos: bytes in the kit's file store (shared by every replica), a row each here, attached
once to a ticket by their uploader."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.problems import Problem
from services.kit.storage import FileMissing, FileStore, PresignedUpload, StoredFile
from services.property import domain
from services.property.models import PHOTOS, Photo, new_id
from services.property.problems import (
    DirectUploadUnavailable,
    PhotoNotImage,
    PhotoNotUploaded,
    PhotoTooLarge,
    PhotoUnavailable,
    RecordNotFound,
)
from services.property.schemas import PhotoUploadCreate
from services.property.settings import Settings
from services.property.visibility import is_staff, visible_ticket

log = logging.getLogger("property.photos")


def file_key(photo: Photo) -> str:
    """Where the photo's bytes are in the file store: one namespace per community."""
    return f"photos/{photo.community}/{photo.id}"


async def store_photo(session: AsyncSession, store: FileStore, who: Principal, content: bytes, settings: Settings) -> Photo:
    if len(content) > settings.photo_max_bytes:
        raise _too_large(settings)
    media_type = domain.sniff_image(content[:16])
    if media_type is None or not content:
        raise PhotoNotImage()
    photo = Photo(
        id=new_id(),
        community=who.community,
        uploader_id=who.subject,
        media_type=media_type,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    # Stored before the row, outside its transaction: a failed commit leaves an unreferenced file
    # (harmless), never a row without its bytes; a failed store (`storage-unavailable`) leaves nothing.
    await store.put(file_key(photo), content, media_type)
    async with transaction(session):
        session.add(photo)
        return photo


async def begin_upload(
    session: AsyncSession, store: FileStore, who: Principal, data: PhotoUploadCreate, settings: Settings
) -> tuple[Photo, PresignedUpload]:
    """A pending photo and the presigned URL its bytes go to, past the service; `DirectUploadUnavailable`
    when the store takes files only through the service (PostgreSQL, a directory)."""
    if data.size_bytes > settings.photo_max_bytes:
        raise _too_large(settings)
    photo = Photo(
        id=new_id(),
        community=who.community,
        uploader_id=who.subject,
        media_type=data.media_type,
        size_bytes=data.size_bytes,
        pending=True,
    )
    upload = await store.upload_url(file_key(photo), data.media_type, data.size_bytes, settings.storage_url_expires_s)
    if upload is None:
        raise DirectUploadUnavailable(("请将照片发送到 POST /photos", "Send the photo to POST /photos instead"))
    async with transaction(session):
        session.add(photo)
    return photo, upload


async def finish_upload(session: AsyncSession, store: FileStore, who: Principal, photo_id: str, settings: Settings) -> Photo:
    """The uploader says the bytes are in the store: the service checks their size and type as it
    does for `POST /photos` (from the store's own record and the first bytes), then the photo may
    be attached. Bytes that fail the check are deleted with the photo."""
    key = ""
    refused: Problem | None = None
    async with transaction(session):
        query = (
            select(Photo)
            .where(
                PHOTOS.c.id == photo_id,
                PHOTOS.c.community == who.community,
                PHOTOS.c.uploader_id == who.subject,
                PHOTOS.c.pending.is_(True),
            )
            .with_for_update()
        )
        photo = await session.scalar(query)
        if photo is None:
            raise RecordNotFound()
        key = file_key(photo)
        try:
            found = await store.info(key, head_bytes=16)
        except FileMissing:
            raise PhotoNotUploaded() from None
        if found.size_bytes > settings.photo_max_bytes:
            refused = _too_large(settings)
        elif domain.sniff_image(found.head) != photo.media_type:
            refused = PhotoNotImage()
        if refused is not None:
            await session.delete(photo)
        else:
            photo.pending = False
            photo.size_bytes = found.size_bytes
    if refused is not None:
        await store.delete(key)
        raise refused
    return photo


def _too_large(settings: Settings) -> PhotoTooLarge:
    return PhotoTooLarge(
        (
            f"照片不能超过 {settings.photo_max_bytes} 字节",
            f"A photo may be at most {settings.photo_max_bytes} bytes",
        )
    )


async def open_photo(store: FileStore, photo: Photo) -> StoredFile:
    """The photo's bytes, streamed from the store; a row whose file is gone is a 404, and logged."""
    try:
        return await store.open(file_key(photo))
    except FileMissing:
        log.error("photo %s has a row but no file in the %s store", photo.id, store.name)
        raise RecordNotFound() from None


async def get_photo(session: AsyncSession, who: Principal, photo_id: str) -> Photo:
    """The photo for its uploader, staff, or anyone who may see the ticket it is attached to; else 404."""
    async with transaction(session):
        query = select(Photo).where(PHOTOS.c.id == photo_id, PHOTOS.c.community == who.community, PHOTOS.c.pending.is_(False))
        photo = await session.scalar(query)
        if photo is None:
            raise RecordNotFound()
        if photo.uploader_id == who.subject or is_staff(who):
            return photo
        if photo.ticket_id is not None:
            await visible_ticket(session, who, photo.ticket_id)  # 404 unless the caller may see the ticket
            return photo
        raise RecordNotFound()


async def unattached_photos(session: AsyncSession, who: Principal, photo_ids: list[str]) -> list[Photo]:
    """The caller's own photos not yet on a ticket, locked for attaching; `PhotoUnavailable` if any is not."""
    if not photo_ids:
        return []
    query = (
        select(Photo)
        .where(
            PHOTOS.c.id.in_(photo_ids),
            PHOTOS.c.community == who.community,
            PHOTOS.c.uploader_id == who.subject,
            PHOTOS.c.ticket_id.is_(None),
            PHOTOS.c.pending.is_(False),
        )
        .with_for_update()
    )
    photos = list(await session.scalars(query))
    if len(photos) != len(set(photo_ids)):
        raise PhotoUnavailable()
    return photos


async def photo_ids(session: AsyncSession, ticket_ids: list[str]) -> dict[str, list[str]]:
    """Each ticket's photo ids, oldest first."""
    out: dict[str, list[str]] = {t: [] for t in ticket_ids}
    if ticket_ids:
        query = select(PHOTOS.c.ticket_id, PHOTOS.c.id).where(PHOTOS.c.ticket_id.in_(ticket_ids)).order_by(PHOTOS.c.created_at)
        for ticket_id, photo_id in await session.execute(query):
            out[ticket_id].append(photo_id)
    return out


async def forget_abandoned_uploads(session: AsyncSession, store: FileStore, older_than_s: float, limit: int = 100) -> int:
    """Delete direct uploads begun more than `older_than_s` ago and never reported done: their URL
    has expired, so nothing more can arrive. Rows are claimed with SKIP LOCKED, so replicas running
    this at once split the work. Returns how many were deleted."""
    async with transaction(session):
        query = (
            select(Photo)
            .where(PHOTOS.c.pending.is_(True), PHOTOS.c.created_at < func.now() - timedelta(seconds=older_than_s))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        abandoned = list(await session.scalars(query))
        for photo in abandoned:
            await store.delete(file_key(photo))  # a failure keeps the row, to try again next time
            await session.delete(photo)
        return len(abandoned)
