"""Verifying the gateway's access tokens, as FastAPI dependencies.

Tokens are JWTs signed with the gateway's keys (EdDSA); services fetch the public keys as a JWKS
from `JWKS_URL` (http(s):// or file://), refetching when a token names a key id they have not
seen (key rotation), at most once every few seconds. A verified token's claims are cached by the
token's hash until it expires, because verifying the same token again and again is avoidable work.
Roles and the community travel in the claims; nothing the caller could forge in a header is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.kit.problems import Forbidden, Unauthorized

# `platform_admin` runs the platform (creates and configures communities at the gateway); its tokens
# name the reserved community `PLATFORM_COMMUNITY`, so no community's data is in its reach.
# `security_guard` (保安) answers alarms and watches the doors: security's staff routes and property's
# security tickets let it in by name; it is not in STAFF_ROLES, so no staff-wide read of residents'
# tickets, bookings, points or time-bank data opens for it.
ROLES = frozenset(
    {
        "resident",
        "elder",
        "volunteer",
        "steward",
        "property_admin",
        "community_worker",
        "security_guard",
        "city_sync",
        "gate_device",
        "platform_admin",
    }
)
PLATFORM_COMMUNITY = "platform"
STAFF_ROLES = frozenset({"steward", "property_admin", "community_worker"})
ALLOWED_ALGORITHMS = ["EdDSA", "ES256", "RS256"]
MIN_REFETCH_S = 1.0
REFRESH_EVERY_S = 300.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, roles and community."""

    subject: str
    roles: frozenset[str]
    community: str
    name: str | None = None
    expires_at: int = 0

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_staff(self) -> bool:
        return bool(self.roles & STAFF_ROLES)


class TokenVerifier:
    def __init__(self, jwks_url: str, *, issuer: str, audience: str, leeway_s: int = 5, cache_size: int = 10_000):
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, tuple[Principal, str]] = OrderedDict()
        self._cache_size = cache_size

    async def _load_jwks(self) -> dict[str, Any]:
        parsed = urlparse(self.jwks_url)
        if parsed.scheme == "file":
            text = await asyncio.to_thread(Path(parsed.path).read_text)
            return dict(json.loads(text))
        async with httpx.AsyncClient(timeout=3.0) as client:
            response = await client.get(self.jwks_url)
            response.raise_for_status()
            return dict(response.json())

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            # At most once a second on unknown key ids, so a flood of forged kids cannot turn
            # into a flood of JWKS fetches, while a rotation is picked up within a second.
            if not force and time.monotonic() - self._fetched_at < MIN_REFETCH_S and self._keys:
                return
            data = await self._load_jwks()
            keys: dict[str, jwt.PyJWK] = {}
            for jwk in data.get("keys", []):
                try:
                    key = jwt.PyJWK(jwk)
                except (jwt.PyJWKError, jwt.InvalidKeyError):
                    continue
                keys[str(jwk.get("kid", ""))] = key
            self._keys = keys
            self._fetched_at = time.monotonic()
            # A retired key takes the tokens it signed with it, cached or not.
            for digest in [d for d, (_, kid) in self._cache.items() if kid not in keys]:
                del self._cache[digest]

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            try:
                await self.refresh()
            except (OSError, httpx.HTTPError, ValueError):
                raise Unauthorized(("无法获取签名公钥", "Signing keys are unavailable")) from None
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized(("令牌的签名密钥未知", "The token is signed by an unknown key"))
        return key

    async def verify(self, token: str) -> Principal:
        if self._keys and time.monotonic() - self._fetched_at > REFRESH_EVERY_S:
            with contextlib.suppress(OSError, httpx.HTTPError, ValueError):
                await self.refresh(force=True)
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(digest)
        now = time.time()
        if cached is not None:
            if cached[0].expires_at + self.leeway_s > now:
                self._cache.move_to_end(digest)
                return cached[0]
            del self._cache[digest]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(("令牌格式无效", "Malformed token")) from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise Unauthorized(("不接受该签名算法", "Signing algorithm not accepted"))
        kid = str(header.get("kid", ""))
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized(("令牌已过期", "The token has expired")) from None
        except jwt.PyJWTError:
            raise Unauthorized(("令牌无效", "The token is not valid")) from None
        if claims.get("typ", "access") != "access":
            raise Unauthorized(("不是访问令牌", "Not an access token"))
        roles = frozenset(r for r in claims.get("roles", []) if r in ROLES)
        community = claims.get("community")
        if not isinstance(community, str) or not community:
            raise Unauthorized(("令牌缺少社区信息", "The token names no community"))
        principal = Principal(
            subject=str(claims["sub"]), roles=roles, community=community, name=claims.get("name"), expires_at=int(claims["exp"])
        )
        self._cache[digest] = (principal, kid)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal


_bearer = HTTPBearer(auto_error=False, description="Access token issued by the gateway")


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(("缺少访问令牌", "Missing bearer token"))
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise Unauthorized(("服务未配置令牌校验", "Token verification is not configured"))
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Any:
    """A dependency that lets through only callers holding one of `roles` (403 otherwise)."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {unknown}")

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(*roles):
            raise Forbidden((f"需要以下角色之一: {', '.join(roles)}", f"Requires one of the roles: {', '.join(roles)}"))
        return principal

    return Depends(check)
