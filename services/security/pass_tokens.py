"""Visitor pass tokens (访客通行证): a short Ed25519-signed statement a door or gate checks offline.

Format (docs/security.md): `<payload>.<signature>`, both base64url without padding. The payload is
compact JSON with sorted keys:

    {"b": building, "c": community, "f": valid-from (unix s), "k": key id, "n": entries (0 = any),
     "p": pass id, "u": valid-until (unix s), "v": 1}

The signature is Ed25519 over the payload's base64url text (the bytes the QR code carries), so a
device verifies what it read without re-encoding anything. A device needs only the community's
published public keys (`GET /pass-keys`); the revocation list and its own entry counts are the
parts of the check that need it to have been online once in a while.

Nothing here does I/O: the same code runs on the server and in the reference device check.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION = 1
MAX_TOKEN_LENGTH = 512


class PassRefused(Exception):
    """Why a device keeps the door shut: one stable reason per rule."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class PassClaims:
    pass_id: str
    community: str
    building_id: str
    key_id: str
    valid_from: int
    valid_until: int
    max_entries: int  # 0: any number within the window


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_pass(claims: PassClaims, private_key: Ed25519PrivateKey) -> str:
    payload = {
        "b": claims.building_id,
        "c": claims.community,
        "f": claims.valid_from,
        "k": claims.key_id,
        "n": claims.max_entries,
        "p": claims.pass_id,
        "u": claims.valid_until,
        "v": VERSION,
    }
    body = b64(json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode())
    return f"{body}.{b64(private_key.sign(body.encode()))}"


def _claims(payload: object) -> PassClaims:
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise PassRefused("malformed")
    try:
        claims = PassClaims(
            pass_id=payload["p"],
            community=payload["c"],
            building_id=payload["b"],
            key_id=payload["k"],
            valid_from=payload["f"],
            valid_until=payload["u"],
            max_entries=payload["n"],
        )
    except KeyError:
        raise PassRefused("malformed") from None
    texts = (claims.pass_id, claims.community, claims.building_id, claims.key_id)
    numbers = (claims.valid_from, claims.valid_until, claims.max_entries)
    if not all(isinstance(t, str) for t in texts) or not all(type(n) is int for n in numbers):
        raise PassRefused("malformed")
    return claims


def verify_signature(token: str, keys: dict[str, Ed25519PublicKey]) -> PassClaims:
    """The signed claims of a token, if a published key signed exactly these bytes."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise PassRefused("malformed")
    body, signature = token.split(".")
    try:
        payload = json.loads(unb64(body))
        raw_signature = unb64(signature)
    except (ValueError, binascii.Error):
        raise PassRefused("malformed") from None
    claims = _claims(payload)
    key = keys.get(claims.key_id)
    if key is None:
        raise PassRefused("unknown-key")
    try:
        key.verify(raw_signature, body.encode())
    except InvalidSignature:
        raise PassRefused("bad-signature") from None
    return claims


def check_claims(claims: PassClaims, community: str, now: datetime) -> None:
    """The rules a signed pass must meet at this door now: its community and its window."""
    if claims.community != community:
        raise PassRefused("other-community")
    at = now.timestamp()
    if at < claims.valid_from:
        raise PassRefused("not-yet-valid")
    if at >= claims.valid_until:
        raise PassRefused("expired")


@dataclass
class OfflineVerifier:
    """What a door controller holds to decide alone: the community's public keys, the revocation
    list it last pulled, and how often it has let each pass in (its own count; the server's count
    is the authority when the device is online)."""

    community: str
    keys: dict[str, Ed25519PublicKey]
    revoked: set[str] = field(default_factory=set)
    entries: dict[str, int] = field(default_factory=dict)

    def admit(self, token: str, now: datetime) -> PassClaims:
        """The full check a device runs for one scan; counts the entry when it lets the visitor in."""
        claims = verify_signature(token, self.keys)
        check_claims(claims, self.community, now)
        if claims.pass_id in self.revoked:
            raise PassRefused("revoked")
        used = self.entries.get(claims.pass_id, 0)
        if claims.max_entries and used >= claims.max_entries:
            raise PassRefused("used-up")
        self.entries[claims.pass_id] = used + 1
        return claims


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def jwk(key_id: str, public_raw: bytes) -> dict[str, str]:
    """A published key in JWK form (RFC 8037, OKP/Ed25519)."""
    return {"kty": "OKP", "crv": "Ed25519", "kid": key_id, "x": b64(public_raw), "use": "sig", "alg": "EdDSA"}


def keys_from_jwks(jwks: list[dict[str, str]]) -> dict[str, Ed25519PublicKey]:
    return {k["kid"]: public_key_from_raw(unb64(k["x"])) for k in jwks if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"}
