"""The deny-list of logged-out access tokens: durable in the gateway's database, fast in Redis.

The database (`revoked_tokens`) is the source of truth, written when a token is revoked; Redis
holds a copy under `gw:deny:<digest>` that every request checks in the admission's one round
trip. Redis may lose its copy (a restart keeps nothing): a marker key, set after each refill,
says the copy is whole. While it is missing, or Redis cannot be reached, a token is checked in
the database instead (fail-closed: a revoked token is never let through), and one refill at a
time copies every unexpired revocation back into Redis, so the fast path comes back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from datetime import UTC, datetime

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from gateway.models import RevokedToken

log = logging.getLogger("gateway.revocations")

DENY_LIST_REFILLS = Counter("gateway_deny_list_refills_total", "Copies of the durable deny-list written back into Redis")
# Past a token's expiry its revocation no longer matters; a minute's grace covers clock skew.
GRACE_S = 60


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DenyList:
    """Revoked access tokens, by digest, until the token would have expired anyway."""

    PREFIX = "gw:deny:"
    FILLED = "gw:deny-list-filled"

    def __init__(self, redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]):
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.refilling: asyncio.Task[None] | None = None

    def key(self, token: str) -> str:
        return self.PREFIX + token_digest(token)

    async def revoke(self, token: str, expires_at: int) -> None:
        """Written to the database first (it must survive Redis), then to Redis's copy if it can."""
        digest = token_digest(token)
        until = datetime.fromtimestamp(expires_at + GRACE_S, UTC)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(insert(RevokedToken).values(token_digest=digest, expires_at=until).on_conflict_do_nothing())
        try:
            await self.redis.set(self.PREFIX + digest, b"1", ex=max(1, expires_at + GRACE_S - int(time.time())))
        except RedisError as exc:
            log.warning("revocation kept in the database only until Redis is back: %s", exc)

    async def is_revoked(self, digest: str) -> bool:
        try:
            revoked, filled = await self.redis.exists(self.PREFIX + digest), await self.redis.exists(self.FILLED)
        except RedisError:
            return await self.in_database(digest)
        if filled:
            return bool(revoked)
        return await self.revoked_durably(digest)

    async def revoked_durably(self, digest: str) -> bool:
        """The database's answer, for when Redis's copy is missing or unreachable; starts a refill."""
        self.start_refill()
        return await self.in_database(digest)

    async def in_database(self, digest: str) -> bool:
        async with self.sessionmaker() as session, session.begin():
            found = await session.execute(
                select(col(RevokedToken.token_digest)).where(
                    col(RevokedToken.token_digest) == digest, col(RevokedToken.expires_at) > datetime.now(UTC)
                )
            )
            return found.first() is not None

    def start_refill(self) -> None:
        if self.refilling is None or self.refilling.done():
            self.refilling = asyncio.get_running_loop().create_task(self.refill_quietly())

    async def stop_refill(self) -> None:
        if self.refilling is not None:
            self.refilling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.refilling

    async def refill_quietly(self) -> None:
        try:
            await self.refill()
        except Exception as exc:  # Redis or the database away: the next check that finds the copy missing tries again
            log.info("deny-list refill postponed: %s", exc)

    async def refill(self) -> int:
        """Copy every unexpired revocation into Redis, then mark the copy whole; forget expired ones."""
        now = datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(RevokedToken).where(col(RevokedToken.expires_at) <= now))
            rows = (await session.execute(select(col(RevokedToken.token_digest), col(RevokedToken.expires_at)))).all()
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest, expires_at in rows:
                pipe.set(self.PREFIX + digest, b"1", ex=max(1, int((expires_at - now).total_seconds())))
            pipe.set(self.FILLED, b"1")
            await pipe.execute()
        DENY_LIST_REFILLS.inc()
        log.info("deny-list copied into Redis: %d revocations", len(rows))
        return len(rows)
