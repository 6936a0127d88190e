"""Rate limits and Idempotency-Key replays, both kept in Redis so every replica shares them."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import math
import time
from dataclasses import dataclass

import orjson
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis

from gateway.problems import IdempotencyInProgress, IdempotencyKeyReused, TokenRevoked, TooManyRequests
from gateway.revocations import DenyList

# Per request: is the token deny-listed, and both fixed windows' INCR plus their expiry when the key has
# none (`EXPIRE ... NX`, the `limits` fixed-window rule), for every request of a batch (3 keys each);
# then, once, whether Redis's copy of the deny-list is whole (the last key: its marker). The answer
# is one string of the numbers joined by commas: the client parses one bulk reply, where an array
# of 3n + 1 integers cost it a line read and a conversion each.
ADMIT_SCRIPT = """
local out = {}
for i = 1, #KEYS - 1, 3 do
  out[#out + 1] = redis.call('EXISTS', KEYS[i])
  out[#out + 1] = redis.call('INCR', KEYS[i + 1])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[1], 'NX')
  out[#out + 1] = redis.call('INCR', KEYS[i + 2])
  redis.call('EXPIRE', KEYS[i + 2], ARGV[2], 'NX')
end
out[#out + 1] = redis.call('EXISTS', KEYS[#KEYS])
return table.concat(out, ',')
"""

# The most window keys kept built (per subject, per address); past it they are built afresh.
WINDOW_KEYS_KEPT = 16_384

# Deny-listed, the user's count, the address's count.
Admission = tuple[int, int, int]
# With it, whether Redis's deny-list copy was whole when the batch was checked.
CheckedAdmission = tuple[Admission, bool]


class AdmissionBatcher:
    """Sends the admission checks of requests that arrive together as one script call.

    Requests read off the sockets in one event-loop pass each queue their three keys; the first
    schedules a flush for the end of that pass, which sends them all in one EVALSHA and hands each
    request its own answer. One call is in flight at a time: requests that arrive while it is out
    wait for it to come back and then go together in the next, so the busier the gateway, the
    fewer calls per request (Nagle's rule, applied to the admission round trip). Every request
    still gets its own deny-list check and its own counter increments, applied atomically, before
    it is forwarded; it only shares the round trip (and the client's per-command work, which costs
    more than the forwarding itself). Under light load a batch is one request.
    """

    def __init__(self, redis: Redis, *, user_expiry: int, ip_expiry: int, deny_list_filled: str = DenyList.FILLED):
        self.script = redis.register_script(ADMIT_SCRIPT)
        self.deny_list_filled = deny_list_filled
        self.args = (user_expiry, ip_expiry)
        self._pending: list[tuple[str, str, str, asyncio.Future[CheckedAdmission]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._in_flight = False
        # Flushes run outside any request's context: no request's span parents the batch, and
        # the Redis instrumentation stays quiet (one span per call would tell an operator nothing).
        self._context = contextvars.Context()

    async def admit(self, deny_key: str, user_key: str, ip_key: str) -> Admission:
        return (await self.admit_checked(deny_key, user_key, ip_key))[0]

    async def admit_checked(self, deny_key: str, user_key: str, ip_key: str) -> CheckedAdmission:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CheckedAdmission] = loop.create_future()
        if not self._pending and not self._in_flight:
            loop.call_soon(self._flush, context=self._context)
        # Otherwise a flush is scheduled already, or the call in flight schedules one when it is back.
        self._pending.append((deny_key, user_key, ip_key, future))
        return await future

    def _flush(self) -> None:
        if self._in_flight or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._in_flight = True
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _sent(self) -> None:
        self._in_flight = False
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush, context=self._context)

    async def _send(self, batch: list[tuple[str, str, str, asyncio.Future[CheckedAdmission]]]) -> None:
        try:
            await self._call(batch)
        finally:
            self._sent()

    async def _call(self, batch: list[tuple[str, str, str, asyncio.Future[CheckedAdmission]]]) -> None:
        keys = [key for deny_key, user_key, ip_key, _ in batch for key in (deny_key, user_key, ip_key)]
        keys.append(self.deny_list_filled)
        try:
            with suppress_instrumentation():
                answer = await self.script(keys=keys, args=self.args)
        except Exception as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for *_, future in batch:
                future.cancel()
            raise
        counts = [int(count) for count in (answer.decode() if isinstance(answer, bytes) else answer).split(",")]
        for n, (*_, future) in enumerate(batch):
            if not future.done():  # the caller may have gone away meanwhile
                future.set_result(((counts[3 * n], counts[3 * n + 1], counts[3 * n + 2]), bool(counts[-1])))


class RateLimits:
    """Fixed windows in Redis (the `limits` package): per user, per IP, and for login attempts.

    The per-request check (`admit_call`) folds the deny-list lookup and both window increments into
    one script call, shared by the requests that arrive together (`AdmissionBatcher`): on this
    platform each socket write is dear, and a pipeline per request cost more than the forwarding
    itself. It uses the `limits` items and the same keys and expiry rule as its fixed-window
    strategy (INCR, then set the window's expiry if the key has none), so both views of a window agree.
    """

    KEY_PREFIX = "gw:rl"

    def __init__(
        self,
        redis_url: str,
        redis: Redis,
        *,
        per_user: str,
        per_ip: str,
        login: str,
        code_sends_per_phone: str,
        code_sends_per_ip: str,
    ):
        self.redis = redis
        self.storage = RedisStorage("async+" + redis_url, implementation="redispy", key_prefix=self.KEY_PREFIX)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.per_user = parse(per_user)
        self.per_ip = parse(per_ip)
        self.login = parse(login)
        self.code_sends_per_phone = parse(code_sends_per_phone)
        self.code_sends_per_ip = parse(code_sends_per_ip)
        self.admissions = AdmissionBatcher(redis, user_expiry=self.per_user.get_expiry(), ip_expiry=self.per_ip.get_expiry())
        # The windows' keys have no time in them (the script's INCR and EXPIRE NX make the window):
        # built once per subject and per address (the `limits` package's key_for is eight calls).
        self._window_keys: dict[tuple[str, str], str] = {}

    def _window_key(self, kind: str, who: str) -> str:
        key = self._window_keys.get((kind, who))
        if key is None:
            item = self.per_user if kind == "user" else self.per_ip
            key = f"{self.KEY_PREFIX}:{item.key_for(kind, who)}"
            if len(self._window_keys) >= WINDOW_KEYS_KEPT:
                self._window_keys.clear()
            self._window_keys[(kind, who)] = key
        return key

    @staticmethod
    def _refused(item: RateLimitItem, retry_after: int) -> TooManyRequests:
        retry_after = max(1, retry_after)
        return TooManyRequests(
            (f"请在 {retry_after} 秒后重试", f"Retry in {retry_after} s"),
            headers={"Retry-After": str(retry_after)},
            limit=str(item),
        )

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> None:
        if await self.limiter.hit(item, *identifiers):
            return
        stats = await self.limiter.get_window_stats(item, *identifiers)
        raise self._refused(item, math.ceil(stats.reset_time - time.time()))

    async def admit_call(self, *, deny_key: str, subject: str, ip: str) -> bool:
        """Refuse a revoked token (401) or a caller over a limit (429), in one (shared) Redis round trip.

        Returns whether Redis's deny-list copy is whole: when not, the caller asks the database.
        """
        user_key = self._window_key("user", subject)
        ip_key = self._window_key("ip", ip)
        (revoked, user_count, ip_count), filled = await self.admissions.admit_checked(deny_key, user_key, ip_key)
        if revoked:
            raise TokenRevoked()
        for item, key, count in ((self.per_user, user_key, user_count), (self.per_ip, ip_key, ip_count)):
            if count > item.amount:
                raise self._refused(item, int(await self.redis.ttl(key)))
        return bool(filled)

    async def check_login(self, *, ip: str) -> None:
        """Login attempts are limited per client address, whatever account they try.

        Nothing here counts per account: a guesser's failures slow down the guesser only
        (`gateway.throttle.LoginThrottle`), so the account's owner can still log in.
        """
        await self._hit(self.login, "login-ip", ip)

    async def check_code_send(self, *, ip: str, phone: str) -> None:
        """One-time codes sent per phone (its hash) and per client address are capped per day: each is an SMS."""
        await self._hit(self.code_sends_per_ip, "code-sends-ip", ip)
        await self._hit(self.code_sends_per_phone, "code-sends-phone", phone)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class IdempotencyStore:
    """`Idempotency-Key` at the door: one key per caller and route.

    The first request claims the key (SET NX, with a lock that expires if the gateway dies); a retry
    while it runs is 409; after it finishes, the same body replays the stored response and another
    body is 422. A failure (5xx, upstream down) frees the key so the client's retry runs afresh.
    """

    PREFIX = "gw:idem:"

    def __init__(self, redis: Redis, *, ttl_s: int, lock_s: int):
        self.redis = redis
        self.ttl_s = ttl_s
        self.lock_s = lock_s

    def _key(self, scope: str, key: str) -> str:
        return f"{self.PREFIX}{scope}:{key}"

    async def begin(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        """None: go ahead (the key is now ours). Otherwise the stored response to replay."""
        name = self._key(scope, key)
        for _ in range(3):
            claim = orjson.dumps({"state": "running", "fingerprint": fingerprint})
            if await self.redis.set(name, claim, nx=True, ex=self.lock_s):
                return None
            raw = await self.redis.get(name)
            if raw is None:
                continue  # expired between the two calls: try to claim it again
            entry = orjson.loads(raw)
            if entry["fingerprint"] != fingerprint:
                raise IdempotencyKeyReused(("该幂等键已用于另一个请求体", "This key was used with another request body"))
            if entry["state"] == "running":
                raise IdempotencyInProgress(headers={"Retry-After": "1"})
            return StoredResponse(
                status=entry["status"],
                headers=[tuple(h) for h in entry["headers"]],
                body=base64.b64decode(entry["body"]),
            )
        raise IdempotencyInProgress(headers={"Retry-After": "1"})

    async def complete(self, scope: str, key: str, fingerprint: str, response: StoredResponse) -> None:
        entry = {
            "state": "done",
            "fingerprint": fingerprint,
            "status": response.status,
            "headers": response.headers,
            "body": base64.b64encode(response.body).decode(),
        }
        await self.redis.set(self._key(scope, key), orjson.dumps(entry), ex=self.ttl_s)

    async def abandon(self, scope: str, key: str) -> None:
        await self.redis.delete(self._key(scope, key))
