"""Token verification in the kit: what every service accepts and refuses."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest

from gateway.keys import mint_token, new_key, write_jwks
from services.kit.auth import TokenVerifier
from services.kit.problems import Unauthorized


def verifier_for(directory: Path) -> TokenVerifier:
    return TokenVerifier(f"file://{directory / 'jwks.json'}", issuer="community-gateway", audience="community-platform")


async def test_refuses_unknown_key_expired_alg_none_and_no_community(tmp_path: Path) -> None:
    live, stranger = new_key(), new_key()
    write_jwks(tmp_path, [live])
    verifier = verifier_for(tmp_path)
    good = mint_token(live, subject="r1", roles=["resident", "bogus"], community="c1")
    principal = await verifier.verify(good)
    assert (principal.subject, principal.roles, principal.community) == ("r1", frozenset({"resident"}), "c1")

    bad = {
        "unknown key": mint_token(stranger, subject="r1", roles=["resident"], community="c1"),
        "expired": mint_token(live, subject="r1", roles=["resident"], community="c1", ttl_s=-60),
        "other audience": mint_token(live, subject="r1", roles=["resident"], community="c1", audience="elsewhere"),
        "no community": mint_token(live, subject="r1", roles=["resident"], community=""),
        "refresh token": mint_token(live, subject="r1", roles=["resident"], community="c1", extra={"typ": "refresh"}),
    }
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    body = (
        base64.urlsafe_b64encode(
            json.dumps({"sub": "r1", "roles": ["resident"], "community": "c1", "exp": int(time.time()) + 60}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    bad["alg none"] = f"{header}.{body}."
    bad["tampered"] = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    accepted = []
    for name, token in bad.items():
        try:
            await verifier.verify(token)
        except Unauthorized:
            continue
        accepted.append(name)
    assert accepted == []


async def test_rotation_is_picked_up_and_a_retired_key_stops_working(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    write_jwks(tmp_path, [old])
    verifier = verifier_for(tmp_path)
    old_token = mint_token(old, subject="r1", roles=["resident"], community="c1")
    await verifier.verify(old_token)
    # Rotation: both keys live; a token with the new key id is accepted once the JWKS is refetched.
    write_jwks(tmp_path, [new, old])
    await asyncio.sleep(1.05)
    assert (await verifier.verify(mint_token(new, subject="r2", roles=["resident"], community="c1"))).subject == "r2"
    # Retirement: the old key leaves the JWKS; its tokens, cached as verified, stop working.
    write_jwks(tmp_path, [new])
    await asyncio.sleep(1.05)
    await verifier.refresh()
    with pytest.raises(Unauthorized):
        await verifier.verify(old_token)
