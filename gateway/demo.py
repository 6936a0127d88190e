"""Demo credentials for `make run`: the demo community, staff passwords and machine clients, set
through the gateway's API.

The community is created first, by a platform administrator's call (the gateway serves no community
its database does not hold).
Staff come from property's registry events, which may still be on their way when this runs, so
each password is retried until the gateway knows the person. `python -m gateway.demo token [name]`
prints a ready access token for a demo resident (for the README and curl), signed with the local keys.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Protocol

import httpx

from deploy.local.demo_community import (
    CITY_SYNC_CLIENTS,
    COMMUNITY,
    COMMUNITY_NAME,
    GATE_DEVICES,
    REGION_CODE,
    RESIDENTS,
    SECURITY_DEVICES,
    STAFF,
    demo_id,
    resident,
)
from services.kit.auth import PLATFORM_COMMUNITY

REGISTRY_WAIT_S = 60.0


def client_secret(client_id: str) -> str:
    """The demo's client secrets (demo only: production secrets are set by an administrator)."""
    return f"demo-{client_id}-secret"


class TokenFor(Protocol):
    """Mints a demo token (deploy/local/stack.py's `token_for`): the demo community's unless told."""

    def __call__(self, subject: str, roles: list[str], community: str = ...) -> str: ...


async def seed_community(client: httpx.AsyncClient, token_for: TokenFor) -> None:
    """The demo community, created as a platform administrator would (a PUT: running it again is harmless)."""
    subject = demo_id("platform-admin", "demo")
    platform = {"Authorization": f"Bearer {token_for(subject, ['platform_admin'], PLATFORM_COMMUNITY)}"}
    r = await client.put(
        f"/platform/communities/{COMMUNITY}", json={"name": COMMUNITY_NAME, "region_code": REGION_CODE}, headers=platform
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"demo seed: community {COMMUNITY} answered {r.status_code}: {r.text[:200]}")


async def seed_demo(client: httpx.AsyncClient, token_for: TokenFor) -> None:
    await seed_community(client, token_for)
    admin = next(s for s in STAFF if "property_admin" in s.roles)
    headers = {"Authorization": f"Bearer {token_for(admin.id, ['property_admin'])}"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REGISTRY_WAIT_S
    for member in STAFF:
        while True:
            r = await client.put(f"/auth/staff/{member.id}/password", json={"password": member.password}, headers=headers)
            if r.status_code == 204:
                break
            if r.status_code != 404 or loop.time() > deadline:
                raise RuntimeError(f"demo seed: password for {member.username} answered {r.status_code}: {r.text[:200]}")
            await asyncio.sleep(0.5)  # property's registry event has not reached the gateway yet
    machines = [(cid, "gate_device") for cid, _ in GATE_DEVICES] + [(cid, "city_sync") for cid, _ in CITY_SYNC_CLIENTS]
    machines += [(device[0], "gate_device") for device in SECURITY_DEVICES]
    for client_id, role in machines:
        r = await client.put(
            f"/auth/clients/{client_id}",
            json={"roles": [role], "secret": client_secret(client_id)},
            headers=headers,
        )
        if r.status_code != 200:
            raise RuntimeError(f"demo seed: client {client_id} answered {r.status_code}: {r.text[:200]}")


def resident_token(name: str = "王秀英", ttl_s: int = 3600) -> str:
    """An access token for a demo resident, as the gateway would issue after a code login."""
    from gateway.keys import KeyRing
    from gateway.settings import Settings

    person = resident(name)
    return KeyRing(Settings().keys_dir).mint(subject=person.id, roles=list(person.roles), community=COMMUNITY, ttl_s=ttl_s)


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "token":
        print("usage: python -m gateway.demo token [resident name]", file=sys.stderr)
        print("residents: " + ", ".join(p.name for p in RESIDENTS), file=sys.stderr)
        raise SystemExit(2)
    print(resident_token(argv[1]) if len(argv) > 1 else resident_token())


if __name__ == "__main__":
    main(sys.argv[1:])
