"""The gateway's signing keys and access tokens: Ed25519 key pairs, a JWKS beside them, minting.

The gateway signs access tokens with the newest key and publishes every live key in its JWKS, so
a rotation keeps two keys live. The local stack and the tests use the same keys and tokens from
here: in `make run` the keys live in `.local/keys/`, and services read the JWKS file
(JWKS_URL=file://...) so they can verify tokens even before the gateway is up.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "community-gateway"
AUDIENCE = "community-platform"


@dataclass
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="EdDSA")
        return dict(jwk)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def new_key() -> SigningKey:
    return SigningKey(kid=uuid.uuid4().hex[:16], private_key=Ed25519PrivateKey.generate())


def load_keys(directory: Path) -> list[SigningKey]:
    """Every key in `directory`, newest first."""
    keys = []
    for path in sorted(directory.glob("signing-*.pem"), key=lambda p: p.stat().st_mtime, reverse=True):
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        keys.append(SigningKey(kid=path.stem.removeprefix("signing-"), private_key=private))
    return keys


def write_jwks(directory: Path, keys: list[SigningKey]) -> Path:
    path = directory / "jwks.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [k.public_jwk() for k in keys]}, indent=2))
    tmp.replace(path)
    return path


def ensure_keys(directory: Path) -> list[SigningKey]:
    """Load the keys in `directory`, creating the first one if there is none."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = load_keys(directory)
    if not keys:
        key = new_key()
        path = directory / f"signing-{key.kid}.pem"
        path.write_bytes(key.pem())
        path.chmod(0o600)
        keys = [key]
    write_jwks(directory, keys)
    return keys


def mint_token(
    key: SigningKey,
    *,
    subject: str,
    roles: list[str],
    community: str,
    ttl_s: int = 900,
    name: str | None = None,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": roles,
        "community": community,
        "iat": now,
        "nbf": now - 1,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    if name:
        claims["name"] = name
    if extra:
        claims.update(extra)
    return jwt.encode(claims, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
