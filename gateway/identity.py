"""Token checks, password hashes, one-time codes and the revocation deny-list.

Access tokens are EdDSA JWTs signed with `gateway.keys` (the same shape every service verifies;
`python -m gateway.identity rotate` is `python -m gateway.keys rotate`). Revocation is a deny-list
keyed by the token's SHA-256 (gateway/revocations.py: durable in the database, copied into Redis),
checked on every request, so a logged-out token stops working at once, on every gateway replica,
and stays refused when Redis loses its copy.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import sys
from dataclasses import dataclass
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from gateway.keys import main
from gateway.problems import CommunityNotServed, TokenRevoked
from gateway.revocations import DenyList, token_digest
from services.kit.auth import Principal, TokenVerifier
from services.kit.sms import SmsFailed, SmsMessage, SmsSender, mask_phones

log = logging.getLogger("gateway.identity")


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


class SmsCodeSender:
    """Codes leave by the platform's SMS port (services/kit/sms.py), the one notify's messages use:
    locally a line in `.local/notify-sms.log` (the phone masked), in a cluster the provider.

    A code that cannot be sent is logged against the resident's id (never the number or the code)
    and not retried here: the caller asks for a new one, within the per-phone daily cap.
    """

    def __init__(self, sms: SmsSender, ttl_s: int, timeout_s: float):
        self.sms = sms
        self.minutes = max(1, ttl_s // 60)
        self.timeout_s = timeout_s

    def message(self, resident_id: str, phone: str, code: str) -> SmsMessage:
        return SmsMessage(
            reference=f"login-{resident_id}",
            phone=phone,
            language="zh-CN",
            title="登录验证码",
            body=f"您的验证码是 {code}，{self.minutes} 分钟内有效。请勿告诉他人。",
        )

    async def send(self, *, resident_id: str, phone: str, code: str) -> None:
        try:
            await asyncio.wait_for(self.sms.send(self.message(resident_id, phone, code)), self.timeout_s)
        except SmsFailed as failed:
            log.warning("login code for resident %s not sent: %s", resident_id, mask_phones(failed.reason))
        except TimeoutError:
            log.warning("login code for resident %s not sent: the SMS provider did not answer in time", resident_id)


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


if __name__ == "__main__":
    main(sys.argv[1:])
