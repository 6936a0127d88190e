"""The value-added catalogue (增值服务): what a resident may order, and at what price."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.property.models import CATALOGUE_ITEMS, CatalogueItem
from services.property.registry import flush_unique
from services.property.schemas import CatalogueItemCreate


async def add_catalogue_item(session: AsyncSession, who: Principal, data: CatalogueItemCreate) -> CatalogueItem:
    async with transaction(session):
        item = CatalogueItem(community=who.community, code=data.code, name=data.name, price_fen=data.price_fen)
        session.add(item)
        await flush_unique(session, "catalogue item")
        return item


async def catalogue_item(session: AsyncSession, community: str, code: str) -> CatalogueItem | None:
    """The community's catalogue item with this code, if there is one."""
    query = select(CatalogueItem).where(CATALOGUE_ITEMS.c.community == community, CATALOGUE_ITEMS.c.code == code)
    item = await session.scalar(query)
    return item
