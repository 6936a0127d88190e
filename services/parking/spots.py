"""Spots (车位): residents register their private spots and staff verify them; staff register public
spots. A spot is visible to its owner and to staff; to anyone else it does not exist (404)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.kit.problems import Forbidden
from services.parking import problems
from services.parking.domain import SPOT_ADMINS, SpotStatus
from services.parking.models import SPOTS, Spot
from services.parking.schemas import SpotCreate


async def register_spot(session: AsyncSession, principal: Principal, body: SpotCreate) -> Spot:
    """A resident registers their private spot (pending until staff verify it); staff register
    public spots, which are verified at once."""
    if body.kind == "public" and not principal.has(*SPOT_ADMINS):
        raise Forbidden(("只有物业可以登记公共车位", "Only property staff register public spots"))
    if body.kind == "private" and not principal.has("resident"):
        raise Forbidden(("只有居民可以登记私家车位", "Only residents register private spots"))
    spot = Spot(
        id=uuid.uuid4(),
        community=principal.community,
        kind=body.kind,
        owner_id=principal.subject if body.kind == "private" else None,
        code=body.code,
        location=body.location,
        size=body.size,
        has_charger=body.has_charger,
        status="verified" if body.kind == "public" else "pending",
        verified_by=principal.subject if body.kind == "public" else None,
        created_at=datetime.now(UTC),
    )
    async with transaction(session):
        session.add(spot)
        try:
            await session.flush()
        except IntegrityError:
            raise problems.DuplicateSpot() from None
    return spot


async def spot_for(session: AsyncSession, principal: Principal, spot_id: uuid.UUID, *, lock: bool = False) -> Spot:
    """The spot if the caller may manage it: its owner, or staff; others get 404."""
    query = select(Spot).where(SPOTS.c.id == spot_id, SPOTS.c.community == principal.community)
    spot: Spot | None = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if spot is None or not (principal.is_staff or spot.owner_id == principal.subject):
        raise problems.SpotNotFound()
    return spot


async def verify_spot(session: AsyncSession, principal: Principal, spot_id: uuid.UUID, approve: bool) -> Spot:
    """Staff approve or reject a registered spot; only verified spots can publish windows."""
    async with transaction(session):
        spot = await spot_for(session, principal, spot_id, lock=True)
        spot.status = "verified" if approve else "rejected"
        spot.verified_by = principal.subject
    return spot


async def get_spot(session: AsyncSession, principal: Principal, spot_id: uuid.UUID) -> Spot:
    async with transaction(session):
        return await spot_for(session, principal, spot_id)


def _spot_cursor(spot: Spot) -> list[str]:
    return [spot.code]


async def list_spots(
    session: AsyncSession, principal: Principal, page: PageParams, status: SpotStatus | None
) -> tuple[list[Spot], str | None]:
    """The community's spots by code (staff), or the caller's own."""
    query = select(Spot).where(SPOTS.c.community == principal.community)
    if not principal.is_staff:
        query = query.where(SPOTS.c.owner_id == principal.subject)
    if status:
        query = query.where(SPOTS.c.status == status)
    after = page.after()
    if after:
        query = query.where(SPOTS.c.code > str(after[0]))
    async with transaction(session):
        rows = list((await session.execute(query.order_by(SPOTS.c.code).limit(page.limit + 1))).scalars())
    return make_page(rows, page.limit, _spot_cursor)
