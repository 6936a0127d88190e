"""Parking's spot and window routes: register and verify spots, publish, shrink and withdraw windows."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from services.kit.auth import CurrentPrincipal
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.parking import problems as p
from services.parking import spots, windows
from services.parking.api import Horizon, SpotAdmin
from services.parking.domain import SpotStatus
from services.parking.schemas import (
    OccurrencePublic,
    SpotCreate,
    SpotPublic,
    SpotVerify,
    WindowCreate,
    WindowPublic,
    WindowShrink,
)

spot_routes = APIRouter(tags=["spots"])
window_routes = APIRouter(tags=["windows"])


@spot_routes.post("/spots", status_code=201, response_model=SpotPublic, responses=problem_responses(p.DuplicateSpot, Forbidden))
async def register_spot(body: SpotCreate, principal: CurrentPrincipal, session: SessionDep, idem: IdempotencyDep) -> Any:
    """Register a spot.

    A resident registers their own private spot, which stays `pending` until staff verify it; a steward or property_admin
    registers a public spot, verified at once. Codes are unique in a community. Safe to retry with an `Idempotency-Key`.
    """
    return await idem.run(session, body, lambda: spots.register_spot(session, principal, body), SpotPublic)


@spot_routes.get("/spots", response_model=Page[SpotPublic])
async def list_spots(
    principal: CurrentPrincipal, session: SessionDep, page: PageDep, status: SpotStatus | None = None
) -> Page[SpotPublic]:
    """List spots by code.

    Staff see every spot of the community; anyone else sees the spots they own. Filter by verification status; page with the
    returned cursor.
    """
    rows, cursor = await spots.list_spots(session, principal, page, status)
    return Page(items=[SpotPublic.model_validate(r) for r in rows], next_cursor=cursor)


@spot_routes.get("/spots/{spot_id}", response_model=SpotPublic, responses=problem_responses(p.SpotNotFound))
async def get_spot(spot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """One spot.

    Its owner and staff may read it; to anyone else it does not exist (404).
    """
    return await spots.get_spot(session, principal, spot_id)


@spot_routes.post(
    "/spots/{spot_id}/verification",
    response_model=SpotPublic,
    responses=problem_responses(p.SpotNotFound, Forbidden),
)
async def verify_spot(spot_id: uuid.UUID, body: SpotVerify, principal: SpotAdmin, session: SessionDep) -> Any:
    """Approve or reject a registered spot.

    Only a verified spot can publish windows. A steward or property_admin may call it.
    """
    return await spots.verify_spot(session, principal, spot_id, body.approve)


# --- windows ----------------------------------------------------------------------------------------


@window_routes.post(
    "/spots/{spot_id}/windows",
    status_code=201,
    response_model=WindowPublic,
    responses=problem_responses(
        p.SpotNotFound, p.NotSpotOwner, p.SpotNotVerified, p.WindowOverlaps, p.InvalidTimeRange, p.TooShort
    ),
)
async def publish_window(
    spot_id: uuid.UUID,
    body: WindowCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    idem: IdempotencyDep,
    horizon: Horizon,
) -> Any:
    """Publish an availability window of a spot.

    A one-off window has `starts_at`/`ends_at`; a weekly one has ISO weekdays and local start and end times (Asia/Shanghai; an
    end at or before the start is the next day) and is expanded into occurrences up to the horizon. Windows of one spot never
    overlap. The owner of a private spot, or a steward or property_admin for a public one, may call it; the spot must be
    verified. Safe to retry with an `Idempotency-Key`.
    """
    fingerprint = {"spot_id": str(spot_id), **body.model_dump(mode="json")}
    return await idem.run(
        session, fingerprint, lambda: windows.publish_window(session, principal, spot_id, body, horizon), WindowPublic
    )


@window_routes.get("/spots/{spot_id}/windows", response_model=Page[WindowPublic], responses=problem_responses(p.SpotNotFound))
async def list_windows(spot_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, page: PageDep) -> Page[WindowPublic]:
    """List a spot's windows, oldest first.

    Cursor-paginated. The spot's owner and staff may call it; to anyone else the spot does not exist (404).
    """
    rows, cursor = await windows.list_windows(session, principal, spot_id, page)
    return Page[WindowPublic](items=[WindowPublic.model_validate(r) for r in rows], next_cursor=cursor)


@window_routes.get(
    "/windows/{window_id}/occurrences",
    response_model=Page[OccurrencePublic],
    responses=problem_responses(p.WindowNotFound),
)
async def list_occurrences(
    window_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, page: PageDep
) -> Page[OccurrencePublic]:
    """List a window's occurrences by start.

    The concrete stretches of time a window offers (one for a one-off window, one per day for a weekly one). The spot's owner
    and spot administrators may call it; others get 404.
    """
    rows, cursor = await windows.list_occurrences(session, principal, window_id, page)
    return Page(items=[OccurrencePublic.model_validate(r) for r in rows], next_cursor=cursor)


@window_routes.patch(
    "/windows/{window_id}",
    response_model=WindowPublic,
    responses=problem_responses(p.WindowNotFound, p.WindowInUse, p.InvalidTimeRange, p.TooShort),
)
async def shrink_window(window_id: uuid.UUID, body: WindowShrink, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Shrink an open one-off window.

    The new range must lie inside the old one and still hold every booking (with its buffer) in the window. The spot's owner and
    spot administrators may call it; others get 404.
    """
    return await windows.shrink_window(session, principal, window_id, body)


@window_routes.post(
    "/windows/{window_id}/withdrawal",
    response_model=WindowPublic,
    responses=problem_responses(p.WindowNotFound, p.WindowInUse),
)
async def withdraw_window(window_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Any:
    """Withdraw the rest of a window.

    Occurrences not yet over stop being offered; refused while a booking still holds a part of them. The spot's owner and spot
    administrators may call it; others get 404.
    """
    return await windows.withdraw_window(session, principal, window_id)
