"""Each community's pass-signing key: made on first use, kept in the database so every replica signs
with the same key, published as JWKs for devices.

Rotation (an admin's `POST /pass-keys/rotation`) retires the current key and makes the next. A
retired key stays published until the last pass it may have signed ends (`published_until`, the
latest `valid_until` among the community's passes at the rotation), so a door offline across a
rotation still admits the passes it already holds; then it is dropped. Rotating and issuing take
the same per-community advisory lock, so no pass is being signed with the key being retired.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import ColumnElement, func, or_, select, text, update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.security.models import PASS_KEYS, PASSES
from services.security.pass_tokens import jwk, public_key_from_raw

_INSERT_IF_NONE = text("""
    INSERT INTO pass_keys (id, community, private_raw, public_raw)
    VALUES (:id, :community, :private_raw, :public_raw)
    ON CONFLICT (community) WHERE retired_at IS NULL DO NOTHING""")


async def signing_key(session: AsyncSession, community: str) -> tuple[str, Ed25519PrivateKey]:
    """The community's current key; the first caller makes it (a racing replica's insert loses to
    the unique index and reads the winner's)."""
    query = select(PASS_KEYS.c.id, PASS_KEYS.c.private_raw).where(
        PASS_KEYS.c.community == community, PASS_KEYS.c.retired_at.is_(None)
    )
    row = (await session.execute(query)).first()
    if row is None:
        key = Ed25519PrivateKey.generate()
        values = {
            "id": f"pk-{uuid.uuid4().hex[:12]}",
            "community": community,
            "private_raw": key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            "public_raw": key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        }
        await session.execute(_INSERT_IF_NONE, values)
        row = (await session.execute(query)).one()
    return row.id, Ed25519PrivateKey.from_private_bytes(row.private_raw)


async def lock_issuing(session: AsyncSession, community: str) -> None:
    """The community's issuing lock, held to commit: issuing (a code, a number, a signature) and
    rotating the key take turns."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("security.code:" + community, 0))))


def _published(community: str, now: datetime | None) -> ColumnElement[bool]:
    """The current key, and each retired one until the last pass it may have signed ends."""
    t = PASS_KEYS.c
    at = now if now is not None else func.now()
    # A key retired before rotations had a route has no end recorded: it stays published.
    return (t.community == community) & or_(t.retired_at.is_(None), t.published_until.is_(None), t.published_until > at)


async def public_keys(session: AsyncSession, community: str, now: datetime | None = None) -> dict[str, Ed25519PublicKey]:
    """Every key of the community that may have signed a pass still in its window."""
    query = select(PASS_KEYS.c.id, PASS_KEYS.c.public_raw).where(_published(community, now))
    return {row.id: public_key_from_raw(row.public_raw) for row in await session.execute(query)}


async def published_jwks(session: AsyncSession, community: str, now: datetime | None = None) -> list[dict[str, str]]:
    await signing_key(session, community)
    query = (
        select(PASS_KEYS.c.id, PASS_KEYS.c.public_raw)
        .where(_published(community, now))
        .order_by(PASS_KEYS.c.retired_at.desc().nulls_first(), PASS_KEYS.c.created_at.desc())
    )
    return [jwk(row.id, row.public_raw) for row in await session.execute(query)]


async def rotate(session: AsyncSession, community: str, now: datetime) -> list[dict[str, str]]:
    """Retire the current key (published until the community's last pass ends) and make the next;
    the published keys after it, the new one first. Runs in the caller's transaction."""
    await lock_issuing(session, community)
    last_pass_ends = await session.scalar(select(func.max(PASSES.c.valid_until)).where(PASSES.c.community == community))
    t = PASS_KEYS.c
    retire = update(PASS_KEYS).where(t.community == community, t.retired_at.is_(None))
    await session.execute(retire.values(retired_at=now, published_until=max(last_pass_ends or now, now)))
    return await published_jwks(session, community, now)
