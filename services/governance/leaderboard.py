"""The monthly leaderboard (月度积分榜): a Redis sorted set per community and month.

The database is the truth (the statement's earning lines: grants, awards, deductions, reversals);
the sorted set is a cache of it with a short lifetime, rebuilt whenever it is missing (a fresh or
flushed Redis) or expired. Writes through the API drop the month's set so the next read is fresh;
grants from events show within `leaderboard_cache_s`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain
from services.governance.models import Entry
from services.governance.settings import Settings
from services.kit.db import table_of, transaction

log = logging.getLogger("governance.leaderboard")

ENTRIES = table_of(Entry)
# The statement lines that count towards the board: what was earned, net of what was taken back.
EARNING_KINDS = ("grant", "award", "deduction", "reversal")


def key(community: str, month: str) -> str:
    return f"governance:leaderboard:{community}:{month}"


def total_key(board_key: str) -> str:
    return f"{board_key}:total"


async def top(
    redis: Any, session: AsyncSession, settings: Settings, community: str, month: str, limit: int
) -> tuple[list[tuple[str, int]], int, bool]:
    """The month's top residents, best first, the points earned by every resident together, and
    whether they came from the cache."""
    k = key(community, month)
    if redis is not None:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.exists(k)
                pipe.zrevrange(k, 0, limit - 1, withscores=True)
                pipe.get(total_key(k))
                present, rows, summary = await pipe.execute()
            # The set and its summary ("<total> <residents>") are written and expire together; if
            # either was evicted alone, the database answers as for a missing set.
            if summary is not None:
                total, residents = (int(part) for part in summary.split())
                if present or residents == 0:
                    return [(m.decode() if isinstance(m, bytes) else str(m), int(s)) for m, s in rows], total, True
        except Exception as exc:  # Redis is a cache: without it the database answers
            log.warning("leaderboard cache unavailable: %s", exc.__class__.__name__)
            redis = None
    scores = await scores_from_db(session, community, month, ZoneInfo(settings.community_timezone))
    total = sum(points for _, points in scores)
    if redis is not None:
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.delete(k)
                if scores:
                    pipe.zadd(k, {resident: points for resident, points in scores})
                    pipe.expire(k, settings.leaderboard_cache_s)
                pipe.set(total_key(k), f"{total} {len(scores)}", ex=settings.leaderboard_cache_s)
                await pipe.execute()
        except Exception as exc:
            log.warning("leaderboard cache not written: %s", exc.__class__.__name__)
    ranked = sorted(scores, key=lambda rp: (-rp[1], rp[0]))[:limit]
    return ranked, total, False


async def invalidate(redis: Any, settings: Settings, community: str, at: datetime) -> None:
    if redis is None:
        return
    try:
        k = key(community, domain.month_of(at, ZoneInfo(settings.community_timezone)))
        await redis.delete(k, total_key(k))
    except Exception as exc:
        log.warning("leaderboard cache not dropped: %s", exc.__class__.__name__)


async def scores_from_db(session: AsyncSession, community: str, month: str, tz: ZoneInfo) -> list[tuple[str, int]]:
    """Each resident's points earned in the local month, from the statement (the truth the cache holds)."""
    start, end = domain.month_bounds(month, tz)
    async with transaction(session):
        rows = (
            await session.execute(
                select(ENTRIES.c.resident_id, func.sum(ENTRIES.c.delta).label("points"))
                .where(
                    ENTRIES.c.community == community,
                    ENTRIES.c.kind.in_(EARNING_KINDS),
                    ENTRIES.c.created_at >= start,
                    ENTRIES.c.created_at < end,
                )
                .group_by(ENTRIES.c.resident_id)
            )
        ).all()
        return [(str(r[0]), int(r[1])) for r in rows]
