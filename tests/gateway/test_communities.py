"""Communities are data: a platform administrator creates one through one gateway, and every gateway
on the same database serves it at once, without a restart; a deactivated one stops being served."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from gateway.communities import MISS_RELOAD_S
from gateway.models import StaffMember
from tests.gateway.conftest import COMMUNITY, bearer, publish_property_event, running_gateway, wait_until
from tests.support.stack import TestStack

ROOT = Path(__file__).resolve().parents[2]
NOT_SERVED = "urn:community:problem:gateway/community-not-served"
ADMIN_PASSWORD = "a-long-operator-chosen-password"


def create_admin_by_command(database_url: str, username: str) -> None:
    """The operator's command, run as the operator runs it: its own process, the password from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    run = subprocess.run(
        [sys.executable, "-m", "gateway.operator", "create-admin", username],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "log in with community 'platform'" in run.stdout


async def test_a_community_created_through_gateway_a_is_served_by_gateway_b_without_a_restart(
    stack: TestStack, gateway_template: str
) -> None:
    url = await stack.empty_database("gateway", template=gateway_template)
    try:
        create_admin_by_command(url, "ops.zhou")
        async with (
            running_gateway(stack, gateway_template, database_url=url, upstreams={}) as a,
            # B re-reads the communities only every minute: what it learns sooner, it learns on a miss.
            running_gateway(stack, gateway_template, database_url=url, upstreams={}, communities_reload_s=60.0) as b,
        ):
            new = f"lishui-{uuid.uuid4().hex[:8]}"
            resident = bearer(stack.token(str(uuid.uuid4()), "resident", community=new))
            refused = await b.client.get("/auth/me", headers=resident)
            assert refused.status_code == 401 and refused.json()["type"] == NOT_SERVED

            login = await a.client.post(
                "/auth/token",
                json={"grant_type": "password", "community": "platform", "username": "ops.zhou", "password": ADMIN_PASSWORD},
            )
            assert login.status_code == 200, login.text
            assert login.json()["roles"] == ["platform_admin"] and login.json()["community"] == "platform"
            admin = bearer(login.json()["access_token"])
            body = {"name": "南明山社区", "region_code": "331102", "settings": {"sms_quiet_start": "22:00", "points": True}}
            created = await a.client.put(f"/platform/communities/{new}", json=body, headers=admin)
            assert created.status_code == 201, created.text
            assert created.json() | {"created_at": None, "updated_at": None} == {
                "id": new,
                **body,
                "active": True,
                "created_at": None,
                "updated_at": None,
            }

            # B has not restarted, and its periodic re-read is a minute away: it serves the community
            # within its miss re-read (a token for an unknown community re-reads at most once a second).
            async def served_by_b() -> bool:
                r = await b.client.get("/auth/me", headers=resident)
                assert r.status_code in (200, 401), r.text
                return r.status_code == 200 and r.json()["community"] == new

            started = time.monotonic()
            await wait_until(served_by_b, timeout=5)
            assert time.monotonic() - started < MISS_RELOAD_S + 1.0
            seen = await b.client.get(f"/platform/communities/{new}", headers=admin)
            assert seen.status_code == 200 and seen.json()["region_code"] == "331102"

            # Configured again through A (a PUT is idempotent: 200), deactivated: A refuses its tokens.
            paused = await a.client.put(f"/platform/communities/{new}", json=body | {"active": False}, headers=admin)
            assert paused.status_code == 200 and paused.json()["active"] is False
            assert paused.json()["created_at"] == created.json()["created_at"]

            async def refused_by_a() -> bool:
                r = await a.client.get("/auth/me", headers=resident)
                return r.status_code == 401 and r.json()["type"] == NOT_SERVED

            await wait_until(refused_by_a, timeout=10)
    finally:
        await stack.drop_database(url)


async def test_only_platform_administrators_configure_communities(stack: TestStack, gateway_template: str) -> None:
    async with running_gateway(stack, gateway_template, upstreams={}) as gw:
        body = {"name": "x", "region_code": "331102"}
        property_admin = bearer(stack.token(str(uuid.uuid4()), "property_admin", community=COMMUNITY))
        r = await gw.client.put("/platform/communities/another", json=body, headers=property_admin)
        assert r.status_code == 403, r.text
        # The platform's own community is open only to the platform_admin role.
        steward_of_platform = bearer(stack.token(str(uuid.uuid4()), "steward", community="platform"))
        r = await gw.client.get("/auth/me", headers=steward_of_platform)
        assert r.status_code == 401 and r.json()["type"] == NOT_SERVED
        # A platform administrator in a served community's token is not one.
        r = await gw.client.put(
            "/platform/communities/another",
            json=body,
            headers=bearer(stack.token(str(uuid.uuid4()), "platform_admin", community=COMMUNITY)),
        )
        assert r.status_code == 403, r.text
        admin = bearer(stack.token(str(uuid.uuid4()), "platform_admin", community="platform"))
        r = await gw.client.put("/platform/communities/platform", json=body, headers=admin)
        assert r.status_code == 422, r.text
        for wrong in ({"name": "x", "region_code": "3311"}, {"name": "x"}, body | {"unknown": 1}, body | {"settings": {"A": 1}}):
            r = await gw.client.put("/platform/communities/another", json=wrong, headers=admin)
            assert r.status_code == 422, (wrong, r.text)
        r = await gw.client.get("/platform/communities/never-made", headers=admin)
        assert r.status_code == 404 and r.json()["type"] == "urn:community:problem:gateway/no-such-community"

        made = sorted(f"zz-{uuid.uuid4().hex[:8]}" for _ in range(3))
        for community in made:
            assert (await gw.client.put(f"/platform/communities/{community}", json=body, headers=admin)).status_code == 201
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
            page = (await gw.client.get("/platform/communities", params=params, headers=admin)).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert COMMUNITY in seen and set(made) <= set(seen) and seen == sorted(seen)


async def test_no_registry_event_makes_a_platform_administrator(stack: TestStack, gateway_template: str) -> None:
    async with running_gateway(stack, gateway_template, upstreams={}) as gw:
        ignored, kept = str(uuid.uuid4()), str(uuid.uuid4())
        # One Kafka key for both: one partition, applied in order, so once the second is applied the
        # first has been too.
        key = str(uuid.uuid4())
        for staff_id, community, username in ((ignored, "platform", "mallory"), (kept, COMMUNITY, "steward.gao")):
            await publish_property_event(
                gw,
                "property.staff.registered.v1",
                key,
                {"staff_id": staff_id, "community": community, "username": username, "roles": ["platform_admin", "steward"]},
            )

        async def known(staff_id: str) -> StaffMember | None:
            async with gw.state.sessionmaker() as session, session.begin():
                found: StaffMember | None = await session.get(StaffMember, staff_id)
                return found

        async def kept_known() -> bool:
            return await known(kept) is not None

        await wait_until(kept_known)
        member = await known(kept)
        assert member is not None and member.roles == ["steward"], "a registry never grants platform_admin"
        assert await known(ignored) is None


async def test_a_cluster_gateway_refuses_the_demos_secrets_even_those_stored_by_a_local_run(
    stack: TestStack, gateway_template: str
) -> None:
    url = await stack.empty_database("gateway", template=gateway_template)
    admin = bearer(stack.token(str(uuid.uuid4()), "property_admin", community=COMMUNITY))
    demo_secret = {"roles": ["gate_device"], "secret": "demo-gate-east-secret"}
    grant = {"grant_type": "client_credentials", "community": COMMUNITY, "client_id": "gate-east"}
    try:
        async with (
            running_gateway(stack, gateway_template, database_url=url, upstreams={}) as local,
            # The embedded broker wants the local Kafka profile, chosen explicitly (cluster mode's default is "kafka").
            running_gateway(
                stack, gateway_template, database_url=url, upstreams={}, mode="cluster", kafka_profile="local"
            ) as cluster,
        ):
            assert cluster.settings.mode == "cluster"
            # A local run stored the demo's secret; the local gateway lets it in, the cluster one does not.
            assert (await local.client.put("/auth/clients/gate-east", json=demo_secret, headers=admin)).status_code == 200
            r = await local.client.post("/auth/token", json=grant | {"client_secret": demo_secret["secret"]})
            assert r.status_code == 200, r.text
            r = await cluster.client.post("/auth/token", json=grant | {"client_secret": demo_secret["secret"]})
            assert r.status_code == 401 and r.json()["type"] == "urn:community:problem:gateway/invalid-grant"

            # The cluster gateway refuses to set one, and takes an operator's own.
            r = await cluster.client.put("/auth/clients/gate-east", json=demo_secret, headers=admin)
            assert r.status_code == 422, r.text
            own = {"roles": ["gate_device"], "secret": "k7#Tq-our-own-long-secret"}
            assert (await cluster.client.put("/auth/clients/gate-east", json=own, headers=admin)).status_code == 200
            r = await cluster.client.post("/auth/token", json=grant | {"client_secret": own["secret"]})
            assert r.status_code == 200, r.text
            r = await cluster.client.put(
                f"/auth/staff/{uuid.uuid4()}/password", json={"password": "demo-steward-1"}, headers=admin
            )
            assert r.status_code == 422, r.text
    finally:
        await stack.drop_database(url)


async def test_a_platform_administrator_gives_a_new_communitys_first_property_admin_a_password(
    stack: TestStack, gateway_template: str
) -> None:
    async with running_gateway(stack, gateway_template, upstreams={}) as gw:
        first = str(uuid.uuid4())
        await publish_property_event(
            gw,
            "property.staff.registered.v1",
            first,
            {"staff_id": first, "community": COMMUNITY, "username": "admin.first", "roles": ["property_admin"]},
        )

        async def registered() -> bool:
            async with gw.state.sessionmaker() as session, session.begin():
                return await session.get(StaffMember, first) is not None

        await wait_until(registered)
        admin = bearer(stack.token(str(uuid.uuid4()), "platform_admin", community="platform"))
        r = await gw.client.put(f"/auth/staff/{first}/password", json={"password": "first-admins-own"}, headers=admin)
        assert r.status_code == 204, r.text
        login = {"grant_type": "password", "community": COMMUNITY, "username": "admin.first", "password": "first-admins-own"}
        r = await gw.client.post("/auth/token", json=login)
        assert r.status_code == 200 and r.json()["roles"] == ["property_admin"], r.text

        # Another platform administrator's password is the operator command's, not the API's.
        async with gw.state.sessionmaker() as session, session.begin():
            session.add(
                StaffMember(id=(other := str(uuid.uuid4())), community="platform", username="ops.li", roles=["platform_admin"])
            )
        r = await gw.client.put(f"/auth/staff/{other}/password", json={"password": "taken-over-now"}, headers=admin)
        assert r.status_code == 404, r.text
