"""Signing keys, token checks, password hashes, one-time codes and the revocation deny-list.

Access tokens are EdDSA JWTs from `gateway.keys` (the same shape every service verifies);
the JWKS lists every live key, and a rotation keeps the previous key live so tokens signed just
before it still verify. Revocation is a deny-list keyed by the token's SHA-256 (gateway/revocations.py:
durable in the database, copied into Redis), checked on every request, so a logged-out token stops
working at once, on every gateway replica, and stays refused when Redis loses its copy.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from gateway.keys import SigningKey, ensure_keys, load_keys, mint_token, new_key, write_jwks
from gateway.problems import CommunityNotServed, TokenRevoked
from gateway.revocations import DenyList, token_digest
from services.kit.auth import Principal, TokenVerifier

log = logging.getLogger("gateway.identity")

LIVE_KEYS = 2


class KeyRing:
    """The gateway's signing keys in a directory: `signing-<kid>.pem` files and `jwks.json`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.keys: list[SigningKey] = ensure_keys(directory)
        self._seen = self._jwks_mtime()

    def _jwks_mtime(self) -> int:
        try:
            return (self.directory / "jwks.json").stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _follow_rotation(self) -> None:
        """Pick up a rotation made by `python -m gateway.identity rotate` in another process."""
        mtime = self._jwks_mtime()
        if mtime != self._seen:
            self._seen = mtime
            self.reload()

    @property
    def signing_key(self) -> SigningKey:
        self._follow_rotation()
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        self._follow_rotation()
        return {"keys": [k.public_jwk() for k in self.keys[:LIVE_KEYS]]}

    def reload(self) -> None:
        self.keys = load_keys(self.directory) or ensure_keys(self.directory)

    def rotate(self) -> SigningKey:
        """Add a new signing key; keep the previous one live; retire any older one."""
        key = new_key()
        path = self.directory / f"signing-{key.kid}.pem"
        path.write_bytes(key.pem())
        path.chmod(0o600)
        keys = [key] + [k for k in load_keys(self.directory) if k.kid != key.kid]
        live, retired = keys[:LIVE_KEYS], keys[LIVE_KEYS:]
        write_jwks(self.directory, live)
        for old in retired:
            (self.directory / f"signing-{old.kid}.pem").unlink(missing_ok=True)
        self.keys = live
        self._seen = self._jwks_mtime()
        return key

    def mint(self, *, subject: str, roles: list[str], community: str, ttl_s: int) -> str:
        return mint_token(self.signing_key, subject=subject, roles=roles, community=community, ttl_s=ttl_s)


@dataclass
class GatewayVerifier:
    """Checks a bearer token: signature, expiry and audience (kit), served community, deny-list."""

    verifier: TokenVerifier
    deny: DenyList
    communities: frozenset[str]

    async def verify(self, token: str) -> Principal:
        principal = await self.verify_signature(token)
        await self.check_revoked(token)
        return principal

    async def verify_signature(self, token: str) -> Principal:
        """Signature, expiry, issuer, audience (the kit, cached per token) and the served community."""
        principal = await self.verifier.verify(token)
        if self.communities and principal.community not in self.communities:
            raise CommunityNotServed()
        return principal

    async def check_revoked(self, token: str) -> None:
        if await self.deny.is_revoked(token_digest(token)):
            raise TokenRevoked()


class Passwords:
    """argon2id hashes for staff passwords and client secrets, computed off the event loop."""

    def __init__(self, time_cost: int, memory_kib: int):
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Checked when no account matches, so a wrong username costs as long as a wrong password.
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    async def hash(self, secret: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, secret)

    async def verify(self, stored: str | None, secret: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy, secret) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


class CodeSender(Protocol):
    """The port a one-time code leaves by (an SMS gateway in production)."""

    async def send(self, *, resident_id: str, phone: str, code: str) -> None: ...


class LogCodeSender:
    """Local mode: the code goes to the log, against the resident's id, never the phone number."""

    async def send(self, *, resident_id: str, phone: str, code: str) -> None:
        log.info("one-time login code for resident %s: %s", resident_id, code)


class OneTimeCodes:
    """Six-digit login codes in Redis: single use, short-lived, a few attempts each."""

    PREFIX = "gw:otp:"

    def __init__(self, redis: Redis, ttl_s: int, max_attempts: int):
        self.redis = redis
        self.ttl_s = ttl_s
        self.max_attempts = max_attempts

    def _key(self, community: str, phone: str) -> str:
        return f"{self.PREFIX}{community}:{token_digest(phone)}"

    async def issue(self, community: str, phone: str) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = self._key(community, phone)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"code": token_digest(code), "attempts": 0})
            pipe.expire(key, self.ttl_s)
            await pipe.execute()
        return code

    async def redeem(self, community: str, phone: str, code: str) -> bool:
        key = self._key(community, phone)
        stored = await self.redis.hget(key, "code")
        if stored is None:
            return False
        attempts = int(await self.redis.hincrby(key, "attempts", 1))
        if attempts > self.max_attempts:
            await self.redis.delete(key)
            return False
        stored_text = stored.decode() if isinstance(stored, bytes) else str(stored)
        if not hmac.compare_digest(stored_text, token_digest(code)):
            return False
        # Only the request that deletes the code gets in: two racing redemptions cannot both succeed.
        return bool(await self.redis.delete(key))


def main(argv: list[str]) -> None:
    """`python -m gateway.identity rotate`: add a signing key, keeping the previous one live."""
    from gateway.settings import Settings

    if argv[:1] != ["rotate"]:
        print("usage: python -m gateway.identity rotate", file=sys.stderr)
        raise SystemExit(2)
    ring = KeyRing(Settings().keys_dir)
    key = ring.rotate()
    print(f"new signing key {key.kid}; live: {', '.join(k.kid for k in ring.keys)}")


if __name__ == "__main__":
    main(sys.argv[1:])
