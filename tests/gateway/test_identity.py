"""Logins, tokens, refresh rotation, revocation and key rotation, through the gateway's HTTP API."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import jwt
import pytest

from gateway.keys import KeyRing, ensure_keys, mint_token, new_key
from tests.gateway.conftest import (
    COMMUNITY,
    bearer,
    random_phone,
    register_resident,
    register_staff,
    resident_login,
    running_gateway,
    sender,
    wait_until,
)
from tests.support.harness import RunningService
from tests.support.stack import TestStack


async def test_registered_resident_logs_in_by_code_and_reaches_a_service(gateway: RunningService) -> None:
    phone = random_phone()
    resident_id = await register_resident(gateway, phone, roles=["resident", "elder"])
    tokens = await resident_login(gateway, phone)
    assert tokens["subject"] == resident_id
    assert tokens["roles"] == ["elder", "resident"]
    assert tokens["community"] == COMMUNITY
    assert tokens["refresh_token"]
    me = await gateway.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["subject"] == resident_id
    r = await gateway.client.post("/api/timebank/notes", json={"text": "hello"}, headers=bearer(tokens["access_token"]))
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == resident_id


async def test_unknown_phone_gets_no_code_and_cannot_log_in(gateway: RunningService) -> None:
    phone = random_phone()
    r = await gateway.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
    assert r.status_code == 202  # the same answer as for a registered number
    assert phone not in sender(gateway).sent
    for guess in ("000000", "123456"):
        r = await gateway.client.post(
            "/auth/token", json={"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": guess}
        )
        assert r.status_code == 401
        assert r.json()["type"] == "urn:community:problem:gateway/invalid-grant"


async def test_a_code_is_single_use_and_dies_after_too_many_wrong_guesses(gateway: RunningService) -> None:
    phone = random_phone()
    await register_resident(gateway, phone)
    await resident_login(gateway, phone)
    code = sender(gateway).sent[phone][-1]
    again = {"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": code}
    assert (await gateway.client.post("/auth/token", json=again)).status_code == 401

    await gateway.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
    code = sender(gateway).sent[phone][-1]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = await gateway.client.post("/auth/token", json={**again, "code": wrong})
        assert r.status_code == 401
    r = await gateway.client.post("/auth/token", json={**again, "code": code})
    assert r.status_code == 401, "the right code after five wrong guesses must no longer work"


async def test_racing_redemptions_of_one_code_log_in_once(gateway: RunningService) -> None:
    phone = random_phone()
    await register_resident(gateway, phone)
    await gateway.client.post("/auth/otp", json={"community": COMMUNITY, "phone": phone})
    code = sender(gateway).sent[phone][-1]
    grant = {"grant_type": "otp", "community": COMMUNITY, "phone": phone, "code": code}
    results = await asyncio.gather(*(gateway.client.post("/auth/token", json=grant) for _ in range(10)))
    assert sorted(r.status_code for r in results) == [200] + [401] * 9


async def test_staff_log_in_with_the_password_an_admin_set(stack: TestStack, gateway: RunningService) -> None:
    staff_id = await register_staff(gateway, "steward.test", ["steward"])
    admin = stack.auth("00000000-0000-0000-0000-00000000a001", "property_admin", community=COMMUNITY)
    resident = stack.auth("00000000-0000-0000-0000-00000000b001", "resident", community=COMMUNITY)
    body = {"password": "correct horse battery"}
    r = await gateway.client.put(f"/auth/staff/{staff_id}/password", json=body, headers=resident)
    assert r.status_code == 403
    r = await gateway.client.put("/auth/staff/no-such-staff/password", json=body, headers=admin)
    assert r.status_code == 404
    r = await gateway.client.put(f"/auth/staff/{staff_id}/password", json=body, headers=admin)
    assert r.status_code == 204, r.text

    grant = {"grant_type": "password", "community": COMMUNITY, "username": "steward.test"}
    r = await gateway.client.post("/auth/token", json={**grant, "password": "wrong horse"})
    assert r.status_code == 401
    r = await gateway.client.post("/auth/token", json={**grant, "password": "correct horse battery"})
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == staff_id and r.json()["roles"] == ["steward"]
    report = await gateway.client.get("/api/timebank/staff/report", headers=bearer(r.json()["access_token"]))
    assert report.status_code == 200


async def test_machine_clients_log_in_with_client_credentials(stack: TestStack, gateway: RunningService) -> None:
    admin = stack.auth("00000000-0000-0000-0000-00000000a001", "property_admin", community=COMMUNITY)
    secret = "s3cret-for-the-north-gate"
    r = await gateway.client.put("/auth/clients/gate-north", json={"roles": ["gate_device"], "secret": secret}, headers=admin)
    assert r.status_code == 200, r.text
    subject = r.json()["subject"]
    grant = {"grant_type": "client_credentials", "community": COMMUNITY, "client_id": "gate-north"}
    assert (await gateway.client.post("/auth/token", json={**grant, "client_secret": "x" * 20})).status_code == 401
    r = await gateway.client.post("/auth/token", json={**grant, "client_secret": secret})
    assert r.status_code == 200
    assert r.json()["subject"] == subject and r.json()["roles"] == ["gate_device"]
    assert "refresh_token" not in r.json()


async def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_session(gateway: RunningService) -> None:
    phone = random_phone()
    await register_resident(gateway, phone)
    first = (await resident_login(gateway, phone))["refresh_token"]
    r = await gateway.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first
    replay = await gateway.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": first})
    assert replay.status_code == 401
    # The replay may mean theft: the whole family is revoked, including the token issued after it.
    r = await gateway.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": second})
    assert r.status_code == 401


async def test_racing_refreshes_of_one_token_succeed_exactly_once(gateway: RunningService) -> None:
    phone = random_phone()
    await register_resident(gateway, phone)
    token = (await resident_login(gateway, phone))["refresh_token"]
    grant = {"grant_type": "refresh_token", "refresh_token": token}
    results = await asyncio.gather(*(gateway.client.post("/auth/token", json=grant) for _ in range(12)))
    assert sorted(r.status_code for r in results) == [200] + [401] * 11


async def test_logout_stops_the_access_token_at_once_on_every_gateway(
    stack: TestStack, gateway: RunningService, gateway_template: str
) -> None:
    phone = random_phone()
    await register_resident(gateway, phone)
    tokens = await resident_login(gateway, phone)
    headers = bearer(tokens["access_token"])
    async with running_gateway(stack, gateway_template, upstreams=gateway.settings.upstreams) as other:  # type: ignore[attr-defined]
        assert (await other.client.get("/api/timebank/notes", headers=headers)).status_code == 200
        r = await gateway.client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=headers)
        assert r.status_code == 204
        for svc in (gateway, other):
            r = await svc.client.get("/api/timebank/notes", headers=headers)
            assert r.status_code == 401
            assert r.json()["type"] == "urn:community:problem:gateway/token-revoked"
    r = await gateway.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


@pytest.mark.parametrize("case", ["unknown key", "expired", "alg none", "other community", "garbage", "missing"])
async def test_bad_tokens_are_refused_with_401(stack: TestStack, gateway: RunningService, case: str) -> None:
    subject = "00000000-0000-0000-0000-0000000000c1"
    if case == "unknown key":
        token = mint_token(new_key(), subject=subject, roles=["resident"], community=COMMUNITY)
    elif case == "expired":
        token = mint_token(stack.signing_key, subject=subject, roles=["resident"], community=COMMUNITY, ttl_s=-120)
    elif case == "alg none":
        now = int(time.time())
        token = jwt.encode(
            {
                "iss": "community-gateway",
                "aud": "community-platform",
                "sub": subject,
                "roles": ["property_admin"],
                "community": COMMUNITY,
                "iat": now,
                "exp": now + 900,
            },
            key="",
            algorithm="none",
            headers={"kid": stack.signing_key.kid},
        )
    elif case == "other community":
        token = mint_token(stack.signing_key, subject=subject, roles=["resident"], community="another-community")
    elif case == "garbage":
        token = "not.a.jwt"
    else:
        token = ""
    headers = bearer(token) if token else {}
    for path in ("/api/timebank/notes", "/auth/me"):
        r = await gateway.client.get(path, headers=headers)
        assert r.status_code == 401, (case, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "www-authenticate" in r.headers


async def test_jwks_keeps_two_keys_live_across_a_rotation(stack: TestStack, gateway_template: str, tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    first = ensure_keys(keys_dir)[0]
    async with running_gateway(stack, gateway_template, keys_dir=keys_dir, upstreams={}) as gw:
        r = await gw.client.get("/.well-known/jwks.json")
        assert [k["kid"] for k in r.json()["keys"]] == [first.kid]
        old_token = mint_token(first, subject="00000000-0000-0000-0000-0000000000d1", roles=["resident"], community=COMMUNITY)
        ring: KeyRing = gw.state.identity.keys
        second = ring.rotate()
        await gw.state.verifier.verifier.refresh(force=True)
        r = await gw.client.get("/.well-known/jwks.json")
        assert [k["kid"] for k in r.json()["keys"]] == [second.kid, first.kid]
        assert json.loads((keys_dir / "jwks.json").read_text())["keys"][1]["kid"] == first.kid
        # Tokens signed before the rotation still verify; new ones are signed with the new key.
        assert (await gw.client.get("/auth/me", headers=bearer(old_token))).status_code == 200
        new_token = ring.mint(subject="00000000-0000-0000-0000-0000000000d1", roles=["resident"], community=COMMUNITY, ttl_s=60)
        assert jwt.get_unverified_header(new_token)["kid"] == second.kid
        assert (await gw.client.get("/auth/me", headers=bearer(new_token))).status_code == 200
        third = ring.rotate()
        await gw.state.verifier.verifier.refresh(force=True)
        r = await gw.client.get("/.well-known/jwks.json")
        assert [k["kid"] for k in r.json()["keys"]] == [third.kid, second.kid]
        assert not (keys_dir / f"signing-{first.kid}.pem").exists()
        # A rotation by the CLI (another process) is followed without a restart.
        KeyRing(keys_dir).rotate()
        fourth = KeyRing(keys_dir).keys[0]

        async def followed() -> bool:
            return ring.signing_key.kid == fourth.kid

        await wait_until(followed, timeout=10)
        r = await gw.client.get("/.well-known/jwks.json")
        assert [k["kid"] for k in r.json()["keys"]] == [fourth.kid, third.kid]
        # A retired key signs nothing that verifies (tokens verified before stay cached until they expire).
        unseen = mint_token(first, subject="00000000-0000-0000-0000-0000000000d2", roles=["resident"], community=COMMUNITY)
        assert (await gw.client.get("/auth/me", headers=bearer(unseen))).status_code == 401


async def test_an_external_oidc_issuer_can_be_trusted_instead(stack: TestStack, gateway_template: str, tmp_path: Path) -> None:
    idp_dir = tmp_path / "idp"
    idp_key = ensure_keys(idp_dir)[0]
    async with running_gateway(
        stack,
        gateway_template,
        upstreams={},
        oidc_jwks_url=f"file://{idp_dir / 'jwks.json'}",
        oidc_issuer="https://idp.example",
        oidc_audience="community-platform",
    ) as gw:
        subject = "00000000-0000-0000-0000-0000000000e1"
        theirs = mint_token(idp_key, subject=subject, roles=["resident"], community=COMMUNITY, issuer="https://idp.example")
        me = await gw.client.get("/auth/me", headers=bearer(theirs))
        assert me.status_code == 200 and me.json()["subject"] == subject
        ours = mint_token(stack.signing_key, subject=subject, roles=["resident"], community=COMMUNITY)
        assert (await gw.client.get("/auth/me", headers=bearer(ours))).status_code == 401
