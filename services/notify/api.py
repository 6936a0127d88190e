"""Notify's routes: the caller's own inbox and settings. Every route acts for the token's subject in
the token's community; nobody reads another person's notifications (they are not found).

Each route's docstring is its OpenAPI description. The live stream is in `stream.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import problem_responses
from services.notify import inbox, preferences
from services.notify.problems import NotificationNotFound
from services.notify.schemas import (
    MarkedRead,
    NotificationPublic,
    PreferenceUpdate,
    SettingsPublic,
    SettingsUpdate,
    UnreadCount,
)

router = APIRouter(tags=["notify"])
NotificationId = Annotated[int, Path(description="Notification id", ge=1)]


@router.get("/notifications", response_model=Page[NotificationPublic])
async def list_notifications(
    who: CurrentPrincipal,
    session: SessionDep,
    page: PageDep,
    unread: Annotated[bool | None, Query(description="Only unread (true) or only read (false)")] = None,
) -> Any:
    """List my notifications, newest first (cursor-paginated)."""
    items, cursor = await inbox.list_notifications(session, who, page, unread)
    return Page[NotificationPublic](items=items, next_cursor=cursor)


@router.get("/notifications/unread-count", response_model=UnreadCount)
async def unread_count(who: CurrentPrincipal, session: SessionDep) -> UnreadCount:
    """How many of my notifications are unread."""
    return UnreadCount(unread=await inbox.unread_count(session, who))


@router.post("/notifications/read-all", response_model=MarkedRead)
async def mark_all_read(who: CurrentPrincipal, session: SessionDep) -> MarkedRead:
    """Mark every notification of mine read; returns how many were unread."""
    return MarkedRead(marked=await inbox.mark_all_read(session, who))


@router.post(
    "/notifications/{notification_id}/read",
    response_model=NotificationPublic,
    responses=problem_responses(NotificationNotFound),
)
async def mark_read(notification_id: NotificationId, who: CurrentPrincipal, session: SessionDep) -> Any:
    """Mark one of my notifications read (again is harmless)."""
    return await inbox.mark_read(session, who, notification_id)


@router.delete("/notifications/{notification_id}", status_code=204, responses=problem_responses(NotificationNotFound))
async def delete_notification(notification_id: NotificationId, who: CurrentPrincipal, session: SessionDep) -> None:
    """Delete one of my notifications."""
    await inbox.delete_notification(session, who, notification_id)


@router.get("/me/settings", response_model=SettingsPublic)
async def my_settings(who: CurrentPrincipal, session: SessionDep) -> SettingsPublic:
    """My language, quiet hours and the channels I switched off."""
    return await preferences.settings_of(session, who)


@router.patch("/me/settings", response_model=SettingsPublic)
async def update_my_settings(body: SettingsUpdate, who: CurrentPrincipal, session: SessionDep) -> SettingsPublic:
    """Change my language (messages from now on are written in it) or quiet hours (non-urgent SMS waits)."""
    return await preferences.update_settings(session, who, body)


@router.put("/me/preferences", response_model=SettingsPublic)
async def set_preference(body: PreferenceUpdate, who: CurrentPrincipal, session: SessionDep) -> SettingsPublic:
    """Switch a channel on or off for one category (in-app always stays on)."""
    return await preferences.set_preference(session, who, body)
