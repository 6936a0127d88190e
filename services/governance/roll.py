"""The voting roll: governance's projection of property's registry, and the copy a decision freezes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance.decision_models import ROLL_UNITS
from services.governance.tally import owner_key
from services.kit.db import transaction


async def record_unit(
    session: AsyncSession, community: str, household_id: str, *, area: int, sold: bool, buyer_key: str | None
) -> None:
    """Keep a unit's area, sale and buyer key as the registry last published them (events of one
    household arrive in order: they share its key)."""
    values = {"area": area, "sold": sold, "buyer_key": buyer_key}
    async with transaction(session):
        await session.execute(
            insert(ROLL_UNITS)
            .values(community=community, household_id=household_id, **values)
            .on_conflict_do_update(index_elements=[ROLL_UNITS.c.community, ROLL_UNITS.c.household_id], set_=values)
        )


async def summary(session: AsyncSession, community: str) -> dict[str, int]:
    """What a decision opened now would freeze: units, owners counted by 法释〔2009〕7号 第九条, area."""
    async with transaction(session):
        rows = (
            await session.execute(
                select(ROLL_UNITS.c.household_id, ROLL_UNITS.c.area, ROLL_UNITS.c.sold, ROLL_UNITS.c.buyer_key).where(
                    ROLL_UNITS.c.community == community
                )
            )
        ).all()
    owners = {owner_key(r.household_id, sold=r.sold, buyer_key=r.buyer_key) for r in rows}
    return {"units": len(rows), "owners": len(owners), "area": sum(r.area for r in rows)}
