"""Each community's pass-signing key: made on first use, kept in the database so every replica signs
with the same key, published as JWKs for devices."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.security.models import PASS_KEYS
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


async def public_keys(session: AsyncSession, community: str) -> dict[str, Ed25519PublicKey]:
    """Every key of the community that may have signed a pass still in its window."""
    query = select(PASS_KEYS.c.id, PASS_KEYS.c.public_raw).where(PASS_KEYS.c.community == community)
    return {row.id: public_key_from_raw(row.public_raw) for row in await session.execute(query)}


async def published_jwks(session: AsyncSession, community: str) -> list[dict[str, str]]:
    await signing_key(session, community)
    query = (
        select(PASS_KEYS.c.id, PASS_KEYS.c.public_raw)
        .where(PASS_KEYS.c.community == community)
        .order_by(PASS_KEYS.c.retired_at.desc().nulls_first(), PASS_KEYS.c.created_at.desc())
    )
    return [jwk(row.id, row.public_raw) for row in await session.execute(query)]
