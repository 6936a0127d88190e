"""Login throttling: wrong guesses slow down the client that makes them, not the account's owner.

Failures are counted per account and client address together (in Redis, shared by every
replica). A client gets `free_failures` wrong guesses at an account; after that each further
attempt must wait twice as long as the last (1 s, 2 s, 4 s ... up to `max_delay_s`) and is
answered 429 with `Retry-After` meanwhile, without the credential being checked. A success clears
the pair. Nothing counts per account alone, so a guesser elsewhere cannot lock the owner out; the
per-address window (`RateLimits.check_login`) bounds how many accounts one client can try.
"""

from __future__ import annotations

import math
import time

from redis.asyncio import Redis

from gateway.problems import TooManyRequests


def login_delay_s(failures: int, *, free_failures: int, max_delay_s: float) -> float:
    """How long after its last failure a client waits before its next attempt at the account."""
    if failures < free_failures:
        return 0.0
    return float(min(max_delay_s, 2 ** (failures - free_failures)))


class LoginThrottle:
    PREFIX = "gw:login-failures:"

    def __init__(self, redis: Redis, *, free_failures: int, max_delay_s: float, forget_after_s: int):
        self.redis = redis
        self.free_failures = free_failures
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s

    def _key(self, account: str, client: str) -> str:
        return f"{self.PREFIX}{account}:{client}"

    async def before(self, *, account: str, client: str) -> None:
        """429 while this client's wait at this account runs."""
        failures, last_at = await self.redis.hmget(self._key(account, client), ["n", "at"])
        if failures is None or last_at is None:
            return
        delay = login_delay_s(int(failures), free_failures=self.free_failures, max_delay_s=self.max_delay_s)
        wait = float(last_at) + delay - time.time()
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise TooManyRequests(
                (f"尝试过多, 请在 {retry_after} 秒后重试", f"Too many wrong attempts: retry in {retry_after} s"),
                headers={"Retry-After": str(retry_after)},
                limit="login",
            )

    async def failed(self, *, account: str, client: str) -> None:
        key = self._key(account, client)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "n", 1)
            pipe.hset(key, "at", str(time.time()))
            pipe.expire(key, self.forget_after_s)
            await pipe.execute()

    async def succeeded(self, *, account: str, client: str) -> None:
        await self.redis.delete(self._key(account, client))
