"""Communities are data: the communities the gateway serves, and the platform administrators who make them.

A platform administrator (`platform_admin`, whose tokens name the reserved community `platform`)
creates and configures a community through `PUT /platform/communities/{id}`; the row in the
gateway's database is the only list of served communities. Every replica keeps the active ones in
memory (`ServedCommunities`): re-read every `communities_reload_s` seconds, and at once (at most
every `MISS_RELOAD_S`) when a token names a community it does not know yet, so a community created
through one replica is served by every other one without a restart, and a deactivated one stops
being served within the reload period.

The first administrator is made by the operator's command (gateway/operator.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.models import CommunityRecord
from gateway.problems import CommunityNotServed, NoSuchCommunity
from gateway.schemas import CommunityPublic, CommunityPut
from services.kit.auth import PLATFORM_COMMUNITY, Principal
from services.kit.db import transaction
from services.kit.pagination import make_page
from services.kit.problems import ValidationFailed

log = logging.getLogger("gateway.communities")

# A token for a community this replica does not know makes it look again, at most this often: a
# new community is served from its first token (which may wait this long), and a flood of tokens
# for unknown ones costs one query a second.
MISS_RELOAD_S = 1.0


class ServedCommunities:
    """The active communities, as this replica last read them from the gateway's database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, reload_every_s: float):
        self.sessionmaker = sessionmaker
        self.reload_every_s = reload_every_s
        self.active: frozenset[str] = frozenset()
        self._region_codes: dict[str, str] = {}
        self._missed_at = float("-inf")
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    select(col(CommunityRecord.id), col(CommunityRecord.region_code)).where(col(CommunityRecord.active))
                )
            ).all()
        self._region_codes = {row[0]: row[1] for row in rows}
        self.active = frozenset(self._region_codes)
        self._loaded_at = time.monotonic()

    async def serves(self, community: str) -> bool:
        if community in self.active:
            return True
        asked_at = time.monotonic()
        async with self._lock:
            # One reload answers every request that waited on the lock meanwhile; a request for a
            # community unknown until now waits for the next permitted reload rather than being
            # refused (only this gateway's keys sign tokens, so such requests are few).
            if community not in self.active and self._loaded_at < asked_at:
                wait = self._missed_at + MISS_RELOAD_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._missed_at = time.monotonic()
                try:
                    await self.reload()
                except Exception as exc:  # the database away: what was last read still stands
                    log.warning("communities not re-read on a miss: %s", exc)
        return community in self.active

    def region_code(self, community: str) -> str | None:
        return self._region_codes.get(community)

    async def check(self, principal: Principal) -> None:
        """Refuse a token whose community is not served; the reserved one only for platform administrators."""
        if principal.community == PLATFORM_COMMUNITY:
            if "platform_admin" not in principal.roles:
                raise CommunityNotServed()
        elif not await self.serves(principal.community):
            raise CommunityNotServed()

    async def run(self) -> None:
        while True:
            try:
                await self.reload()
            except Exception as exc:  # the database away: keep serving what was last read
                log.warning("communities not re-read: %s", exc)
            await asyncio.sleep(self.reload_every_s)

    async def start(self) -> None:
        # The first read is awaited, so a replica serves its communities from its first request
        # (a database that cannot be read yet is retried by the loop; requests reload on a miss).
        with contextlib.suppress(Exception):
            await self.reload()
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- use cases (platform administrators) -----------------------------------------------------------


def _public(row: CommunityRecord) -> CommunityPublic:
    return CommunityPublic(
        id=row.id,
        name=row.name,
        region_code=row.region_code,
        settings=dict(row.settings),
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def put_community(session: AsyncSession, community_id: str, body: CommunityPut) -> tuple[CommunityPublic, bool]:
    """Create or reconfigure a community; (the community, whether it was created)."""
    if community_id == PLATFORM_COMMUNITY:
        raise ValidationFailed(
            (f"社区 ID {PLATFORM_COMMUNITY!r} 为平台保留", f"The community id {PLATFORM_COMMUNITY!r} is reserved")
        )
    now = datetime.now(UTC)
    values = {
        "name": body.name,
        "region_code": body.region_code,
        "settings": dict(body.settings),
        "active": body.active,
        "updated_at": now,
    }
    async with transaction(session):
        existed = await session.get(CommunityRecord, community_id) is not None
        await session.execute(
            insert(CommunityRecord)
            .values(id=community_id, created_at=now, **values)
            .on_conflict_do_update(index_elements=["id"], set_=values)
        )
        row = await session.get(CommunityRecord, community_id, populate_existing=True)
        assert row is not None
        return _public(row), not existed


async def get_community(session: AsyncSession, community_id: str) -> CommunityPublic:
    async with transaction(session):
        row = await session.get(CommunityRecord, community_id)
        if row is None:
            raise NoSuchCommunity()
        return _public(row)


async def list_communities(session: AsyncSession, *, after: str | None, limit: int) -> tuple[list[CommunityPublic], str | None]:
    async with transaction(session):
        query = select(CommunityRecord).order_by(col(CommunityRecord.id)).limit(limit + 1)
        if after is not None:
            query = query.where(col(CommunityRecord.id) > after)
        rows = list((await session.execute(query)).scalars())
    page, cursor = make_page(rows, limit, lambda r: [r.id])
    return [_public(r) for r in page], cursor
