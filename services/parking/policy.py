"""Community policy (社区停车规则): shares, the public rate, hold and minimum durations, refunds and the
gate's grace, per community; a community without a row has the defaults of `CommunitySettingsBody`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.parking import domain, problems
from services.parking.models import CommunitySettings
from services.parking.schemas import CommunitySettingsBody, CommunitySettingsPublic


@dataclass(frozen=True)
class Policy:
    community: str
    owner_share_bp: int
    property_share_bp: int
    public_rate_fen_per_30min: int
    hold_minutes: int
    min_window_minutes: int
    min_booking_minutes: int
    full_refund_before_minutes: int
    late_cancel_refund_pct: int
    entry_grace_minutes: int
    walk_in_block_minutes: int

    def public(self) -> CommunitySettingsPublic:
        return CommunitySettingsPublic(
            **{k: v for k, v in self.__dict__.items()},
            platform_share_bp=domain.BASIS_POINTS - self.owner_share_bp - self.property_share_bp,
        )


_POLICY_FIELDS = tuple(CommunitySettingsBody.model_fields)


async def policy_for(session: AsyncSession, community: str) -> Policy:
    """The community's policy, or the defaults when its property_admin has set none."""
    async with transaction(session):
        row = await session.get(CommunitySettings, community)
    if row is None:
        return Policy(community=community, **CommunitySettingsBody().model_dump())
    return Policy(community=community, **{f: getattr(row, f) for f in _POLICY_FIELDS})


async def put_settings(session: AsyncSession, principal: Principal, body: CommunitySettingsBody) -> Policy:
    """Replace the caller's community policy; owner and property shares together are at most 100%."""
    if body.owner_share_bp + body.property_share_bp > domain.BASIS_POINTS:
        raise problems.InvalidSettings(("业主与物业分成之和不能超过100%", "Owner and property shares exceed 100%"))
    async with transaction(session):
        values = {**body.model_dump(), "updated_at": datetime.now(UTC)}
        await session.execute(
            insert(CommunitySettings)
            .values(community=principal.community, **values)
            .on_conflict_do_update(index_elements=["community"], set_=values)
        )
    return Policy(community=principal.community, **body.model_dump())
