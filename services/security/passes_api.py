"""Visitor pass routes: residents issue, list and revoke their passes; staff see today's expected
visitors; devices fetch the published keys, the revocation list and their building's live passes,
and check a pass online."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import Day, Text
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, problem_responses
from services.security import device_sync, pass_keys, passes
from services.security import problems as p
from services.security.api import CurrentDevice, OnWatch, PropertyAdmin, Resident
from services.security.schemas import (
    DevicePass,
    ExpectedVisitor,
    IssuedPass,
    PassCheck,
    PassCreate,
    PassDecision,
    PassPublic,
    PublishedKeys,
    Revocation,
)
from services.security.settings import Settings

pass_routes = APIRouter(tags=["passes"])


@pass_routes.post(
    "/passes",
    status_code=201,
    response_model=IssuedPass,
    responses=problem_responses(p.InvalidPassWindow, p.NotAResident, Forbidden),
)
async def issue_pass(body: PassCreate, who: Resident, session: SessionDep, idem: IdempotencyDep, request: Request) -> Any:
    """Invite a visitor.

    Returns the signed pass (the QR code's content) and a 6-digit code, for the caller's building and the window given. Safe to
    retry with an `Idempotency-Key`.
    """
    settings: Settings = request.app.state.settings
    return await idem.run(session, body, lambda: passes.issue_pass(session, who, body, settings.max_pass_hours), IssuedPass)


@pass_routes.get("/passes", response_model=Page[PassPublic])
async def list_my_passes(who: Resident, session: SessionDep, page: PageDep) -> Any:
    """My passes, newest first, cursor-paginated."""
    items, cursor = await passes.my_passes(session, who, page)
    return Page[PassPublic](items=[PassPublic.model_validate(v) for v in items], next_cursor=cursor)


@pass_routes.get("/passes/{pass_id}", response_model=IssuedPass, responses=problem_responses(p.PassNotFound))
async def get_my_pass(pass_id: Text, who: Resident, session: SessionDep) -> Any:
    """One of my passes, with its token and code to show again. Anyone else's is 404."""
    return await passes.my_pass(session, who, pass_id)


@pass_routes.post("/passes/{pass_id}/revoke", response_model=PassPublic, responses=problem_responses(p.PassNotFound))
async def revoke_pass(pass_id: Text, who: Resident, session: SessionDep) -> Any:
    """Revoke one of my passes.

    Devices learn it from the revocation list and the `security.pass.revoked.v1` event; an online check refuses it at once.
    Revoking twice is harmless. Anyone else's pass is 404.
    """
    return await passes.revoke_pass(session, who, pass_id)


@pass_routes.get("/expected-visitors", response_model=Page[ExpectedVisitor])
async def expected_visitors(
    who: OnWatch,
    session: SessionDep,
    request: Request,
    page: PageDep,
    day: Annotated[Day | None, Query(description="Local date (default today)")] = None,
    building_id: Annotated[Text | None, Query(max_length=64)] = None,
) -> Any:
    """The day's expected visitors per building: windows and entry counts, never who.

    By building, then start; cursor-paginated. Staff and security guards may call it.
    """
    settings: Settings = request.app.state.settings
    today = day or datetime.now(UTC).astimezone(ZoneInfo(settings.community_timezone)).date()
    items, cursor = await passes.expected_visitors(session, who, today, building_id, settings.community_timezone, page)
    return Page[ExpectedVisitor](items=items, next_cursor=cursor)


@pass_routes.get("/pass-keys", response_model=PublishedKeys)
async def published_pass_keys(who: CurrentDevice, session: SessionDep) -> PublishedKeys:
    """The community's public pass keys (JWK, Ed25519): all a door needs to verify a pass offline.

    The current key first, then retired keys while a pass they may have signed is in its window. A device may call it.
    """
    async with session.begin():
        keys = await pass_keys.published_jwks(session, who.community)
    return PublishedKeys(community=who.community, keys=keys)


@pass_routes.post("/pass-keys/rotation", response_model=PublishedKeys, responses=problem_responses(Forbidden))
async def rotate_pass_keys(who: PropertyAdmin, session: SessionDep) -> PublishedKeys:
    """Rotate the community's pass-signing key.

    New passes are signed with a new key at once; the retired key stays published until the last
    pass it may have signed ends, so doors that were offline keep admitting the passes they hold.
    Returns the published keys, the new one first; devices refetch `GET /pass-keys` (and do when a
    pass names a key they do not hold). A property_admin may call it.
    """
    async with session.begin():
        keys = await pass_keys.rotate(session, who.community, datetime.now(UTC))
    return PublishedKeys(community=who.community, keys=keys)


SyncAfter = Annotated[
    int,
    Query(ge=0, le=2**63 - 1, description="Start a sync after the last number kept; `cursor` continues it"),
]


@pass_routes.get("/devices/me/revocations", response_model=Page[Revocation], responses=problem_responses(p.UnknownDevice))
async def pull_revocations(who: CurrentDevice, session: SessionDep, page: PageDep, after: SyncAfter = 0) -> Any:
    """Revoked passes still in their window, in revocation order.

    Page through with `cursor`; a later sync passes the last `revoked_seq` kept as `after`. Numbers
    commit in order, so none is missed. Only a registered device may call it.
    """
    items, cursor = await device_sync.revocations(session, who, page, after)
    return Page[Revocation](items=items, next_cursor=cursor)


@pass_routes.get("/devices/me/passes", response_model=Page[DevicePass], responses=problem_responses(p.UnknownDevice))
async def pull_building_passes(who: CurrentDevice, session: SessionDep, page: PageDep, after: SyncAfter = 0) -> Any:
    """The live passes of the device's building, with their codes, so a keypad code works offline.

    In issue order: page through with `cursor`; a later sync passes the last `issued_seq` kept as
    `after` to get the passes issued since (revocations come from `/devices/me/revocations`).
    Only a registered device may call it.
    """
    items, cursor = await device_sync.building_passes(session, who, page, after)
    return Page[DevicePass](items=items, next_cursor=cursor)


@pass_routes.post("/passes/check", response_model=PassDecision, responses=problem_responses(p.UnknownDevice))
async def check_pass(body: PassCheck, who: CurrentDevice, session: SessionDep) -> PassDecision:
    """A connected door checks a scanned pass or a typed code.

    The same checks as offline, then revocation and the entry count, which an admitted check uses up. Only a registered device
    may call it.
    """
    return await passes.check_pass(session, who, body)
