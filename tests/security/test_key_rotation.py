"""An admin rotates the community's pass-signing key: new passes are signed with the new key, a door
holding the keys from before and after verifies both offline, a door that has not refetched refuses
only the new ones (unknown key), and the retired key is dropped once the last pass it signed ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.security import pass_keys
from services.security.pass_tokens import OfflineVerifier, PassRefused, keys_from_jwks
from tests.security.conftest import Community, community_on


async def test_passes_verify_offline_across_a_rotation_and_the_retired_key_leaves_after_its_last_pass(
    community: Community,
) -> None:
    c = community
    resident = await c.resident("r1")
    door = await c.device("door-1")
    before = await c.issue(resident, hours=2)
    old_keys = (await c.client.get("/pass-keys", headers=door)).json()["keys"]
    assert len(old_keys) == 1

    rotated = await c.client.post("/pass-keys/rotation", headers=c.admin)
    assert rotated.status_code == 200, rotated.text
    new_keys = rotated.json()["keys"]
    assert [k["kid"] for k in new_keys][1:] == [old_keys[0]["kid"]] and new_keys[0]["kid"] != old_keys[0]["kid"]
    assert (await c.client.get("/pass-keys", headers=door)).json()["keys"] == new_keys
    after = await c.issue(resident, hours=4)

    now = datetime.now(UTC)
    synced = OfflineVerifier(community=c.id, keys=keys_from_jwks(new_keys))
    assert synced.admit(before["token"], now).key_id == old_keys[0]["kid"]
    assert synced.admit(after["token"], now).key_id == new_keys[0]["kid"]
    stale = OfflineVerifier(community=c.id, keys=keys_from_jwks(old_keys))
    assert stale.admit(before["token"], now).pass_id == before["id"]
    with pytest.raises(PassRefused) as refused:
        stale.admit(after["token"], now)
    assert refused.value.reason == "unknown-key"
    # Online, both verify too.
    for issued in (before, after):
        r = await c.client.post("/passes/check", json={"token": issued["token"]}, headers=door)
        assert r.status_code == 200 and r.json()["admit"], r.text

    # The retired key is published until the last pass at the rotation ends (`before`), then dropped.
    ends = datetime.fromisoformat(before["valid_until"])
    async with c.svc.state.sessionmaker() as session, session.begin():
        just_before = await pass_keys.published_jwks(session, c.id, ends - timedelta(seconds=1))
        at_the_end = await pass_keys.published_jwks(session, c.id, ends)
    assert [k["kid"] for k in just_before] == [k["kid"] for k in new_keys]
    assert [k["kid"] for k in at_the_end] == [new_keys[0]["kid"]]


async def test_only_a_property_admin_rotates_and_only_their_communitys_key(community: Community) -> None:
    c = community
    door = await c.device("door-1")
    mine = (await c.client.get("/pass-keys", headers=door)).json()["keys"]
    for who in (c.staff, c.auth("guard-1", "security_guard"), c.auth("r1", "resident"), door):
        assert (await c.client.post("/pass-keys/rotation", headers=who)).status_code == 403
    other = community_on(c.stack, c.svc)
    rotated = await c.client.post("/pass-keys/rotation", headers=other.admin)
    assert rotated.status_code == 200
    # No pass in the other community: its first key had signed nothing, so only the new key is published.
    assert len(rotated.json()["keys"]) == 1
    assert (await c.client.get("/pass-keys", headers=door)).json()["keys"] == mine
