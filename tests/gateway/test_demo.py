"""The demo seed sets credentials that then work for logging in."""

from __future__ import annotations

import jwt
import pytest

from deploy.local.demo_community import CITY_SYNC_CLIENTS, COMMUNITY, GATE_DEVICES, STAFF, resident
from gateway.demo import client_secret, resident_token, seed_demo
from tests.gateway.conftest import publish_property_event, running_gateway
from tests.support.stack import TestStack


async def test_seed_demo_sets_staff_passwords_and_client_credentials(stack: TestStack, gateway_template: str) -> None:
    async with running_gateway(stack, gateway_template, upstreams={}) as gw:
        # Property's registry events, as property's own demo seed publishes them.
        for member in STAFF:
            await publish_property_event(
                gw,
                "property.staff.registered.v1",
                member.id,
                {
                    "staff_id": member.id,
                    "community": COMMUNITY,
                    "name": member.name,
                    "username": member.username,
                    "roles": list(member.roles),
                },
            )

        def token_for(subject: str, roles: list[str], community: str = COMMUNITY) -> str:
            return stack.token(subject, *roles, community=community)

        await seed_demo(gw.client, token_for)
        for member in STAFF:
            r = await gw.client.post(
                "/auth/token",
                json={"grant_type": "password", "community": COMMUNITY, "username": member.username, "password": member.password},
            )
            assert r.status_code == 200, (member.username, r.text)
            assert r.json()["subject"] == member.id and r.json()["roles"] == sorted(member.roles)
        for client_id, _ in [*GATE_DEVICES, *CITY_SYNC_CLIENTS]:
            r = await gw.client.post(
                "/auth/token",
                json={
                    "grant_type": "client_credentials",
                    "community": COMMUNITY,
                    "client_id": client_id,
                    "client_secret": client_secret(client_id),
                },
            )
            assert r.status_code == 200, (client_id, r.text)


def test_resident_token_is_signed_for_the_demo_resident(stack: TestStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(stack.keys_dir))
    token = resident_token("王秀英")
    claims = jwt.decode(token, stack.signing_key.private_key.public_key(), algorithms=["EdDSA"], audience="community-platform")
    assert claims["sub"] == resident("王秀英").id and claims["community"] == COMMUNITY
    assert set(claims["roles"]) == {"resident", "elder"}
