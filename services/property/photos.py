"""Ticket photos: stored as files under the community, attached once to a ticket by their uploader."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.property import domain
from services.property.models import PHOTOS, Photo, new_id
from services.property.problems import PhotoNotImage, PhotoTooLarge, PhotoUnavailable, RecordNotFound
from services.property.settings import Settings
from services.property.visibility import is_staff, visible_ticket


async def store_photo(session: AsyncSession, who: Principal, content: bytes, settings: Settings) -> Photo:
    if len(content) > settings.photo_max_bytes:
        raise PhotoTooLarge(
            (
                f"照片不能超过 {settings.photo_max_bytes} 字节",
                f"A photo may be at most {settings.photo_max_bytes} bytes",
            )
        )
    media_type = domain.sniff_image(content[:16])
    if media_type is None or not content:
        raise PhotoNotImage()
    async with transaction(session):
        photo = Photo(
            id=new_id(),
            community=who.community,
            uploader_id=who.subject,
            media_type=media_type,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        session.add(photo)
        await session.flush()
        # Written before commit: a failed commit leaves an orphan file (harmless), never a row without one.
        path = photo_path(settings, photo)
        await asyncio.to_thread(_write_file, path, content)
        return photo


def photo_path(settings: Settings, photo: Photo) -> Path:
    return Path(settings.photo_store_dir) / photo.community / photo.id


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(content)
    tmp.replace(path)


async def get_photo(session: AsyncSession, who: Principal, photo_id: str) -> Photo:
    """The photo for its uploader, staff, or anyone who may see the ticket it is attached to; else 404."""
    async with transaction(session):
        query = select(Photo).where(PHOTOS.c.id == photo_id, PHOTOS.c.community == who.community)
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
