"""Gateway replicas share one key set from a read-only directory laid out as a Kubernetes Secret mount."""

from __future__ import annotations

import os
import shutil
import stat
import time
import uuid
from pathlib import Path

import jwt

from gateway.keys import KeyRing, rotate_keys
from tests.gateway.conftest import COMMUNITY, bearer, running_gateway, wait_until
from tests.support.harness import RunningService
from tests.support.stack import TestStack

SUBJECT = "00000000-0000-0000-0000-0000000000f1"


def project_secret(source: Path, mount: Path) -> None:
    """Publish `source` at `mount` as the kubelet does: a read-only timestamped directory behind
    the `..data` link, swapped in one rename, with one link per file; nothing carries a useful mtime."""
    mount.mkdir(exist_ok=True)
    version = mount / f"..{uuid.uuid4().hex}"
    shutil.copytree(source, version)
    for path in version.iterdir():
        os.utime(path, (0, 0))
        path.chmod(0o444)
    version.chmod(0o555)
    link = mount / "..data_tmp"
    link.symlink_to(version.name)
    previous = (mount / "..data").resolve() if (mount / "..data").is_symlink() else None
    link.rename(mount / "..data")
    names = {path.name for path in version.iterdir()}
    for entry in mount.iterdir():
        if not entry.name.startswith("..") and entry.name not in names:
            entry.unlink()
    for name in names:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    if previous is not None:
        previous.chmod(0o755)
        shutil.rmtree(previous)


def snapshot(directory: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root) / name
            found[str(path.relative_to(directory))] = (
                os.readlink(path) if path.is_symlink() else (path.read_bytes() if path.is_file() else "dir")
            )
    return found


def mint(gw: RunningService) -> str:
    ring: KeyRing = gw.state.identity.keys
    return ring.mint(subject=SUBJECT, roles=["resident"], community=COMMUNITY, ttl_s=300)


async def jwks(gw: RunningService) -> list[str]:
    r = await gw.client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    return [key["kid"] for key in r.json()["keys"]]


async def test_two_gateways_share_a_read_only_key_set_and_follow_its_rotation(
    stack: TestStack, gateway_template: str, tmp_path: Path
) -> None:
    operator_copy, mount = tmp_path / "operator", tmp_path / "mount"
    first = rotate_keys(operator_copy)[0]
    project_secret(operator_copy, mount)
    mount.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    before = snapshot(mount)
    try:
        async with (
            running_gateway(stack, gateway_template, keys_dir=mount, keys_reload_s=0.2, upstreams={}) as a,
            running_gateway(stack, gateway_template, keys_dir=mount, keys_reload_s=0.2, upstreams={}) as b,
        ):
            assert await jwks(a) == await jwks(b) == [first.kid]
            # A token minted by one replica verifies on the other.
            from_a = mint(a)
            assert jwt.get_unverified_header(from_a)["kid"] == first.kid
            for gw in (a, b):
                assert (await gw.client.get("/auth/me", headers=bearer(from_a))).status_code == 200
            assert snapshot(mount) == before

            # The operator rotates a copy and stores it as the Secret; the mount changes under both.
            # The new key is published at once and signs only once its time comes.
            mount.chmod(0o755)
            activates_at = time.time() + 3
            second = rotate_keys(operator_copy, activate_in_s=3)[0]
            project_secret(operator_copy, mount)
            mount.chmod(0o555)

            async def both_publish() -> bool:
                return set(await jwks(a)) == set(await jwks(b)) == {first.kid, second.kid}

            await wait_until(both_publish, timeout=10)
            if time.time() < activates_at - 0.5:
                assert [jwt.get_unverified_header(mint(gw))["kid"] for gw in (a, b)] == [first.kid, first.kid]

            async def both_sign_with_the_new_key() -> bool:
                return await jwks(a) == await jwks(b) == [second.kid, first.kid]

            await wait_until(both_sign_with_the_new_key, timeout=10)
            from_b = mint(b)
            assert jwt.get_unverified_header(from_b)["kid"] == second.kid
            for gw in (a, b):
                for token in (from_a, from_b, mint(gw)):
                    assert (await gw.client.get("/auth/me", headers=bearer(token))).status_code == 200
    finally:
        mount.chmod(0o755)


def test_a_rotation_keeps_two_keys_and_names_the_active_one(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    kids = [rotate_keys(keys)[0].kid for _ in range(3)]
    assert sorted(kids) == kids, "a later key's kid sorts after an earlier one's"
    assert [line.split()[0] for line in (keys / "active").read_text().splitlines()] == [kids[2], kids[1]]
    assert sorted(p.name for p in keys.glob("signing-*.pem")) == [f"signing-{kids[1]}.pem", f"signing-{kids[2]}.pem"]
    # The active key is the one `active` names, whatever the files' times say.
    (keys / "active").write_text(f"{kids[1]} 0\n")
    os.utime(keys / f"signing-{kids[2]}.pem", (2_000_000_000, 2_000_000_000))
    assert KeyRing(keys).signing_key.kid == kids[1]
    assert [k["kid"] for k in KeyRing(keys).jwks()["keys"]] == [kids[1], kids[2]]


def test_a_scheduled_key_is_published_before_it_signs(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = rotate_keys(keys)[0]
    second = rotate_keys(keys, activate_in_s=3600)[0]
    ring = KeyRing(keys)
    assert ring.signing_key.kid == first.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [first.kid, second.kid]
    # A rotation before the new key signs replaces it, and keeps the key that signs now.
    third = rotate_keys(keys, activate_in_s=0)[0]
    assert [k.kid for k in KeyRing(keys).keys] == [third.kid, first.kid]
