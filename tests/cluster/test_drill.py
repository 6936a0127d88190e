"""The replica drill of issue 16, on the module's one cluster (tests/cluster/conftest.py): every
point of the issue's list, in an order where the disruptive ones (a replica killed, the broker
stopped) come last. Each test prints what it measured."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg
import jwt

from gateway.keys import rotate_keys
from tests.cluster.conftest import ADMIN, PASSWORD, Cluster, enrolled_pair, login_admin
from tests.cluster.pods import relay_leader, wait_for
from tests.gateway.test_shared_keys import project_secret

PHOTO = b"\x89PNG\r\n\x1a\n" + os.urandom(300_000)
VERIFIED = "timebank.relative.verified.v1"


async def scalar(database_url: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def unsent(cluster: Cluster, service: str) -> object:
    return await scalar(cluster.databases[service], "SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL")


async def notified(cluster: Cluster) -> object:
    """How many relative links notify has applied (its inbox, shared by both notify replicas)."""
    return await scalar(cluster.databases["notify"], "SELECT count(*) FROM kit_inbox WHERE event_type = $1", VERIFIED)


async def test_a_community_the_admin_created_through_a_is_served_by_both_gateways(cluster: Cluster) -> None:
    resident = cluster.token(str(uuid.uuid4()), "resident")
    for gateway in cluster.gateways:
        r = await gateway.client.get("/api/timebank/members/me", headers=resident)
        # Served: the time bank answers (not a member yet), not the gateway's community-not-served 401.
        assert r.status_code == 404, r.text
    seen = await cluster.gateways[1].client.get(f"/platform/communities/{cluster.community}", headers=cluster.admin)
    assert seen.status_code == 200 and seen.json()["active"], seen.text


async def test_a_token_issued_through_gateway_a_works_through_gateway_b(cluster: Cluster) -> None:
    admin = await login_admin(cluster.gateways[0])
    r = await cluster.gateways[1].client.get("/platform/communities", headers=admin)
    assert r.status_code == 200, r.text
    # And the JWKS both publish is the same key set.
    a, b = [(await g.client.get("/.well-known/jwks.json")).json() for g in cluster.gateways]
    assert a == b


async def test_a_photo_uploaded_through_property_a_downloads_through_property_b(cluster: Cluster) -> None:
    a, b = cluster.gateways
    resident = cluster.token(str(uuid.uuid4()), "resident")
    up = await a.client.post("/api/property/photos", content=PHOTO, headers={**resident, "Content-Type": "image/png"})
    assert up.status_code == 201, up.text
    down = await b.client.get(f"/api/property/photos/{up.json()['id']}", headers=resident)
    assert down.status_code == 200 and down.content == PHOTO


async def test_one_consumer_group_shares_the_partitions_of_two_notify_replicas(cluster: Cluster) -> None:
    worker = cluster.token(str(uuid.uuid4()), "community_worker")
    before = await notified(cluster)
    written = 0
    for i in range(16):
        r = await enrolled_pair(cluster, cluster.gateways[i % 2], worker)
        assert r.status_code == 201, r.text
        written += 1

    async def all_applied() -> bool:
        return await notified(cluster) == before + written  # type: ignore[operator]

    await wait_for(all_applied, timeout=60)
    applied = [await pod.metric("consumer_events_applied_total", type=VERIFIED) for pod in cluster.services["notify"]]
    # Both replicas applied some, and together each event once: the group split the partitions.
    assert all(count > 0 for count in applied) and sum(applied) == before + written, applied  # type: ignore[operator]
    print(f"\nnotify replicas applied {applied[0]:.0f} and {applied[1]:.0f} of {before + written} events")  # type: ignore[operator]


async def test_a_scheduled_job_fires_once_per_period_across_replicas(cluster: Cluster) -> None:
    notify = cluster.services["notify"]
    database = cluster.databases["notify"]

    async def eight_periods() -> bool:
        return await scalar(database, "SELECT count(*) FROM kit_job_runs WHERE job = 'deliver-sms'") >= 8  # type: ignore[operator]

    await wait_for(eight_periods, timeout=60)
    count = "SELECT count(*) FROM kit_job_runs WHERE job = 'deliver-sms'"
    claimed_before = await scalar(database, count)
    ran = [
        await pod.metric("scheduled_job_runs_total", job="deliver-sms", outcome="ok")
        + await pod.metric("scheduled_job_runs_total", job="deliver-sms", outcome="failed")
        for pod in notify
    ]
    claimed_after = await scalar(database, count)
    elsewhere = [await pod.metric("scheduled_job_runs_total", job="deliver-sms", outcome="elsewhere") for pod in notify]
    # Each period is claimed once (the table's primary key) and each claim ran once, by one replica:
    # the two replicas together ran it as often as there were periods (a run or two may be in flight
    # while the counts are read), never once per replica and period.
    assert claimed_before - 2 <= sum(ran) <= claimed_after, (ran, claimed_before, claimed_after)  # type: ignore[operator]
    # Both replicas' schedulers took part: each found periods the other had claimed.
    assert all(n > 0 for n in elsewhere), elsewhere
    print(f"\ndeliver-sms: {claimed_after} periods; runs per replica {ran}; periods found taken {elsewhere}")


async def test_a_key_rotated_by_the_operator_is_honoured_by_both_gateways_within_seconds(cluster: Cluster) -> None:
    a, b = cluster.gateways
    cluster.mount.chmod(0o755)
    new = rotate_keys(cluster.keys)[0]
    project_secret(cluster.keys, cluster.mount)
    cluster.mount.chmod(0o555)
    rotated = time.monotonic()

    async def a_signs_with_the_new_key() -> bool:
        r = await a.client.post(
            "/auth/token",
            json={
                "grant_type": "password",
                "community": "platform",
                "username": ADMIN,
                "password": PASSWORD,
            },
        )
        token = r.json()["access_token"]
        if jwt.get_unverified_header(token)["kid"] != new.kid:
            return False
        a_signs_with_the_new_key.token = token  # type: ignore[attr-defined]
        return True

    await wait_for(a_signs_with_the_new_key, timeout=30, interval=0.2)
    token = a_signs_with_the_new_key.token  # type: ignore[attr-defined]

    async def b_honours_it() -> bool:
        r = await b.client.get("/platform/communities", headers={"Authorization": f"Bearer {token}"})
        return r.status_code == 200

    await wait_for(b_honours_it, timeout=30, interval=0.1)
    honoured_s = time.monotonic() - rotated
    # Services verify the new key too (they fetch the JWKS again for an unknown key id).
    resident = cluster.token(str(uuid.uuid4()), "resident")
    r = await b.client.get("/api/timebank/members/me", headers=resident)
    assert r.status_code == 404, r.text
    print(f"\nrotated key: signing at A and honoured by B {honoured_s:.2f} s after the Secret changed")


async def test_with_the_broker_stopped_pods_stay_ready_degraded_writes_succeed_and_drain_after(cluster: Cluster) -> None:
    worker = cluster.token(str(uuid.uuid4()), "community_worker")
    before = await notified(cluster)
    cluster.stack.stop_broker()
    try:
        timebank = cluster.services["timebank"]

        async def degraded_everywhere() -> bool:
            for pod in timebank:
                r = await pod.client.get("/readyz")
                if r.status_code != 200 or r.json()["status"] != "degraded":
                    return False
            return True

        await wait_for(degraded_everywhere, timeout=60)
        for pod in cluster.pods:
            assert (await pod.client.get("/readyz")).status_code == 200, pod.name
        written = 0
        for i in range(4):
            r = await enrolled_pair(cluster, cluster.gateways[i % 2], worker)
            assert r.status_code == 201, r.text
            written += 1
        assert await unsent(cluster, "timebank") >= written  # type: ignore[operator]
    finally:
        cluster.stack.start_broker()
    returned = time.monotonic()

    async def drained() -> bool:
        return await unsent(cluster, "timebank") == 0 and await notified(cluster) == before + written  # type: ignore[operator]

    await wait_for(drained, timeout=120, interval=0.5)
    print(f"\nbroker back: the {written} writes made during the outage applied {time.monotonic() - returned:.2f} s later")


async def test_the_relay_leader_killed_the_other_replica_relays_and_nothing_is_lost(cluster: Cluster) -> None:
    timebank = cluster.services["timebank"]
    database = cluster.databases["timebank"]

    async def a_leader() -> bool:
        return await relay_leader("timebank", database, timebank) is not None

    await wait_for(a_leader, timeout=30)
    leader = await relay_leader("timebank", database, timebank)
    assert leader is not None
    survivor = timebank[1 - timebank.index(leader)]
    # Through the gateway in front of the surviving replica.
    gateway = cluster.gateways[timebank.index(survivor)]
    worker = cluster.token(str(uuid.uuid4()), "community_worker")
    before = await notified(cluster)
    written = 0
    for _ in range(3):
        assert (await enrolled_pair(cluster, gateway, worker)).status_code == 201
        written += 1
    leader.kill()
    killed = time.monotonic()
    for _ in range(5):
        assert (await enrolled_pair(cluster, gateway, worker)).status_code == 201
        written += 1

    async def survivor_leads() -> bool:
        return await relay_leader("timebank", database, timebank) is survivor

    took_over_s = await wait_for(survivor_leads, timeout=60)

    async def all_relayed_and_applied() -> bool:
        return await unsent(cluster, "timebank") == 0 and await notified(cluster) == before + written  # type: ignore[operator]

    await wait_for(all_relayed_and_applied, timeout=60)
    drained_s = time.monotonic() - killed
    print(f"\nrelay leader {leader.name} killed: {survivor.name} led after {took_over_s:.2f} s;", end=" ")
    print(f"all {written} events applied {drained_s:.2f} s after the kill")


async def test_no_pod_wrote_in_its_working_directory_or_the_key_mount(cluster: Cluster) -> None:
    for pod in cluster.pods:
        assert list(pod.workdir.iterdir()) == [], pod.name
    assert all(path.name.startswith("..") or path.is_symlink() for path in cluster.mount.iterdir())
    await asyncio.sleep(0)
