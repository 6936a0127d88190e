"""The gateway's signing keys and access tokens: Ed25519 key pairs in a shared directory, minting.

Every gateway replica reads one key set from one directory, a Kubernetes Secret mounted read-only
in a cluster, and writes nothing there. The directory holds:

- `signing-<kid>.pem`: each live private key (at most two: the active one and the one before it);
- `active`: which kid signs new tokens, named explicitly because a Secret's files carry no
  meaningful modification time. One line per key, `<kid> <not-before, Unix seconds>`; the first
  line whose time has come names the active key (with no such line, the greatest kid: kids begin
  with their UTC creation time, so that is the newest). A rotation publishes its new key at once
  and activates it later (`--activate-in`, 180 s by default), so every replica's mount holds the
  new public key before any replica signs with it: a Secret reaches each node at its own time;
- `jwks.json`: the public keys, for services that read them as a file (`make run`).

`python -m gateway.keys rotate [directory]` writes the next key set into a directory an operator
then stores as the Secret; each replica re-reads the directory every few seconds and follows it.
The local stack and the tests use the same keys and tokens from here: in `make run` the keys live
in `.local/keys/`, and services read its `jwks.json` (JWKS_URL=file://...).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.kit.auth import TokenVerifier

ISSUER = "community-gateway"
AUDIENCE = "community-platform"
ACTIVE_FILE = "active"
JWKS_FILE = "jwks.json"
# A rotation keeps the previous key live, so tokens signed just before it still verify.
LIVE_KEYS = 2
# A Secret reaches each node within the kubelet's sync period (about a minute) plus its cache.
ACTIVATE_IN_S = 180.0


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


class NoSigningKeys(RuntimeError):
    def __init__(self, directory: Path):
        super().__init__(
            f"no signing keys in {directory}: create them with `python -m gateway.keys rotate <directory>` "
            "and mount that directory (the Secret gateway-signing-keys) at GATEWAY_KEYS_DIR"
        )


def new_key() -> SigningKey:
    """A new key whose kid sorts after every earlier one: its UTC creation time, then random bits."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return SigningKey(kid=f"{stamp}-{uuid.uuid4().hex[:8]}", private_key=Ed25519PrivateKey.generate())


def _key_file(directory: Path, kid: str) -> Path:
    return directory / f"signing-{kid}.pem"


def read_schedule(directory: Path) -> list[tuple[str, float]]:
    """The `active` file: (kid, not-before) pairs, the preferred key first."""
    path = directory / ACTIVE_FILE
    if not path.exists():
        return []
    schedule = []
    for line in path.read_text().splitlines():
        kid, _, not_before = line.strip().partition(" ")
        if kid:
            schedule.append((kid, float(not_before or 0)))
    return schedule


def in_signing_order(keys: list[SigningKey], schedule: list[tuple[str, float]], now: float) -> list[SigningKey]:
    """The active key first (the first scheduled kid whose time has come), the others newest first."""
    present = {k.kid for k in keys}
    active = next((kid for kid, not_before in schedule if not_before <= now and kid in present), "")
    newest_first = sorted(keys, key=lambda k: k.kid, reverse=True)
    return sorted(newest_first, key=lambda k: k.kid != active)


def load_keys(directory: Path, now: float | None = None) -> list[SigningKey]:
    """Every key in `directory`, the active one first, then the others newest first."""
    keys = []
    for path in directory.glob("signing-*.pem"):
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        keys.append(SigningKey(kid=path.stem.removeprefix("signing-"), private_key=private))
    return in_signing_order(keys, read_schedule(directory), time.time() if now is None else now)


def fingerprint(directory: Path) -> str:
    """A digest of the key files' contents: what changes when the key set does, mtimes or not."""
    digest = hashlib.sha256()
    for path in sorted([*directory.glob("signing-*.pem"), directory / ACTIVE_FILE]):
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def jwks_of(keys: list[SigningKey]) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys[:LIVE_KEYS]]}


def write_jwks(directory: Path, keys: list[SigningKey]) -> Path:
    path = directory / JWKS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jwks_of(keys), indent=2))
    tmp.replace(path)
    return path


def write_key_set(directory: Path, keys: list[SigningKey], schedule: list[tuple[str, float]]) -> None:
    """Make `directory` hold exactly `keys` and `schedule` (a writable directory: not a Secret mount)."""
    directory.mkdir(parents=True, exist_ok=True)
    for key in keys:
        path = _key_file(directory, key.kid)
        if not path.exists():
            path.write_bytes(key.pem())
            path.chmod(0o600)
    write_jwks(directory, keys)
    active = directory / ACTIVE_FILE
    tmp = active.with_suffix(".tmp")
    tmp.write_text("".join(f"{kid} {int(not_before)}\n" for kid, not_before in schedule))
    tmp.replace(active)
    live = {k.kid for k in keys}
    for path in directory.glob("signing-*.pem"):
        if path.stem.removeprefix("signing-") not in live:
            path.unlink()


def rotate_keys(directory: Path, activate_in_s: float = 0) -> list[SigningKey]:
    """Add a key to `directory` that signs from `activate_in_s` on; until then the active key goes
    on signing. Keep that key live after, so what it signed still verifies; retire any older one."""
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    current = load_keys(directory, now)[:1]
    key = new_key()
    schedule = [(key.kid, now + activate_in_s)] + [(k.kid, 0.0) for k in current]
    keys = [key, *current]
    write_key_set(directory, keys, schedule)
    return keys


def ensure_keys(directory: Path) -> list[SigningKey]:
    """Load the keys in `directory`, creating the first one if there is none (the local stack only)."""
    directory.mkdir(parents=True, exist_ok=True)
    return load_keys(directory) or rotate_keys(directory)


class KeyRing:
    """The key set in a directory, as every replica sees it: re-read when its contents change.

    The directory is looked at again at most every `reload_every_s` seconds (a few file reads), so
    a rotation stored in the Secret reaches every replica within seconds of the mount changing.
    """

    def __init__(self, directory: Path, *, reload_every_s: float = 2.0):
        self.directory = directory
        self.reload_every_s = reload_every_s
        self._seen = ""
        self._checked_at = 0.0
        self._held: list[SigningKey] = []
        self._schedule: list[tuple[str, float]] = []
        self.reload()
        if not self._held:
            raise NoSigningKeys(directory)

    def reload(self) -> None:
        """Re-read the directory now; keep the keys held if it is mid-change or empties."""
        self._checked_at = time.monotonic()
        try:
            seen = fingerprint(self.directory)
            if seen == self._seen:
                return
            keys, schedule = load_keys(self.directory), read_schedule(self.directory)
        except (OSError, ValueError):
            return
        if keys:
            self._held, self._schedule, self._seen = keys, schedule, seen

    @property
    def keys(self) -> list[SigningKey]:
        """The keys held, the active one first (a scheduled key becomes active when its time comes)."""
        return in_signing_order(self._held, self._schedule, time.time())

    def _follow_rotation(self) -> None:
        if time.monotonic() - self._checked_at >= self.reload_every_s:
            self.reload()

    @property
    def signing_key(self) -> SigningKey:
        self._follow_rotation()
        return self.keys[0]

    def jwks(self) -> dict[str, Any]:
        self._follow_rotation()
        return jwks_of(self.keys)

    def rotate(self) -> SigningKey:
        """Rotate a writable directory (the local stack; a cluster rotates with the CLI, then the Secret)."""
        rotate_keys(self.directory)
        self.reload()
        return self.keys[0]

    def mint(self, *, subject: str, roles: list[str], community: str, ttl_s: int) -> str:
        return mint_token(self.signing_key, subject=subject, roles=roles, community=community, ttl_s=ttl_s)


class KeyRingVerifier(TokenVerifier):
    """The gateway's own token check: the public keys come from its key ring, not a JWKS file."""

    def __init__(self, ring: KeyRing, *, issuer: str, audience: str):
        super().__init__(f"file://{ring.directory.resolve()}", issuer=issuer, audience=audience)
        self.ring = ring

    async def _load_jwks(self) -> dict[str, Any]:
        # A token naming a kid not yet seen asks here: look at the directory now, not at the next interval.
        await asyncio.to_thread(self.ring.reload)
        return jwks_of(self.ring.keys)


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


def main(argv: list[str]) -> None:
    """`python -m gateway.keys rotate [directory] [--activate-in SECONDS]`: the next key set, into a
    directory (default GATEWAY_KEYS_DIR) that the operator then stores as the Secret."""
    parser = argparse.ArgumentParser(prog="python -m gateway.keys")
    parser.add_argument("command", choices=["rotate"])
    parser.add_argument("directory", nargs="?", type=Path)
    parser.add_argument(
        "--activate-in", type=float, default=ACTIVATE_IN_S, help="seconds before the new key signs (every replica sees it first)"
    )
    args = parser.parse_args(argv)
    if args.directory is None:
        from gateway.settings import Settings

        args.directory = Settings().keys_dir
    keys = rotate_keys(args.directory, args.activate_in)
    print(
        f"new signing key {keys[0].kid}, signing in {args.activate_in:.0f} s; live: {', '.join(k.kid for k in keys)}; "
        f"store {args.directory} as the Secret gateway-signing-keys"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
