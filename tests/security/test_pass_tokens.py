"""The offline check a door runs, with only the community's published keys: each rule refuses for
its own reason, and no altered byte gets through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from services.security import domain
from services.security.pass_tokens import (
    OfflineVerifier,
    PassClaims,
    PassRefused,
    b64,
    jwk,
    keys_from_jwks,
    sign_pass,
    unb64,
)

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def published(key: Ed25519PrivateKey = KEY, kid: str = "k1") -> list[dict[str, str]]:
    return [jwk(kid, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))]


def claims(**changes: object) -> PassClaims:
    values: dict[str, object] = {
        "pass_id": "vp-1",
        "community": "c1",
        "building_id": "b1",
        "key_id": "k1",
        "valid_from": int((NOW - timedelta(hours=1)).timestamp()),
        "valid_until": int((NOW + timedelta(hours=1)).timestamp()),
        "max_entries": 0,
    }
    values.update(changes)
    return PassClaims(**values)  # type: ignore[arg-type]


def device(community: str = "c1", jwks: list[dict[str, str]] | None = None) -> OfflineVerifier:
    return OfflineVerifier(community=community, keys=keys_from_jwks(jwks or published()))


def refused(verifier: OfflineVerifier, token: str, at: datetime = NOW) -> str:
    with pytest.raises(PassRefused) as caught:
        verifier.admit(token, at)
    return caught.value.reason


def test_a_pass_verifies_offline_with_only_the_published_keys() -> None:
    token = sign_pass(claims(), KEY)
    admitted = device().admit(token, NOW)
    assert admitted.pass_id == "vp-1" and admitted.building_id == "b1"


def test_a_pass_fails_before_and_after_its_window() -> None:
    token = sign_pass(claims(), KEY)
    assert refused(device(), token, NOW + timedelta(hours=1)) == "expired"
    assert refused(device(), token, NOW - timedelta(hours=1, seconds=1)) == "not-yet-valid"


def test_a_pass_fails_after_its_entry_count() -> None:
    gate = device()
    token = sign_pass(claims(max_entries=2), KEY)
    gate.admit(token, NOW)
    gate.admit(token, NOW)
    assert refused(gate, token) == "used-up"


def test_a_revoked_pass_fails_once_the_device_has_the_list() -> None:
    gate = device()
    token = sign_pass(claims(), KEY)
    gate.admit(token, NOW)
    gate.revoked.add("vp-1")
    assert refused(gate, token) == "revoked"


def test_a_pass_of_another_community_fails() -> None:
    token = sign_pass(claims(community="c2"), KEY)
    assert refused(device("c1"), token) == "other-community"


def test_a_pass_signed_by_a_key_the_community_did_not_publish_fails() -> None:
    forger = Ed25519PrivateKey.generate()
    assert refused(device(), sign_pass(claims(), forger)) == "bad-signature"
    assert refused(device(), sign_pass(claims(key_id="k9"), forger)) == "unknown-key"


def test_an_altered_pass_fails_even_when_the_change_is_still_well_formed() -> None:
    body, signature = sign_pass(claims(), KEY).split(".")
    longer = unb64(body).replace(str(claims().valid_until).encode(), str(claims().valid_until + 86400).encode())
    assert refused(device(), f"{b64(longer)}.{signature}") == "bad-signature"


@given(st.data())
def test_no_single_changed_character_gets_through(data: st.DataObject) -> None:
    token = sign_pass(claims(), KEY)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))
    altered = token[:index] + replacement + token[index + 1 :]
    if altered == token or unb64_equal(altered, token):
        return
    with pytest.raises(PassRefused):
        device().admit(altered, NOW)


def unb64_equal(a: str, b: str) -> bool:
    """Base64url's last character may carry unused bits: two spellings of the same bytes are the same pass."""
    try:
        return [unb64(x) for x in a.split(".")] == [unb64(x) for x in b.split(".")]
    except ValueError:
        return False


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", b64(b"[]") + "." + b64(b"x"), "x" * 600])
def test_malformed_tokens_are_refused_without_raising_anything_else(token: str) -> None:
    assert refused(device(), token) == "malformed"


def test_inactivity_keys_name_one_silence() -> None:
    start = NOW - timedelta(hours=30)
    assert domain.inactivity_incident_key("w1", start) == domain.inactivity_incident_key("w1", start)
    assert domain.inactivity_incident_key("w1", start) != domain.inactivity_incident_key("w1", start + timedelta(seconds=1))
    assert domain.inactivity_due(start, 24, NOW) and not domain.inactivity_due(start, 48, NOW)


def test_a_window_must_end_after_it_starts_be_not_over_and_not_too_long() -> None:
    assert domain.window_problem(NOW, NOW - timedelta(hours=1), NOW, 24) is not None
    assert domain.window_problem(NOW - timedelta(hours=3), NOW - timedelta(hours=1), NOW, 24) is not None
    assert domain.window_problem(NOW, NOW + timedelta(hours=25), NOW, 24) is not None
    assert domain.window_problem(NOW, NOW + timedelta(hours=24), NOW, 24) is None


def test_codes_are_six_digits() -> None:
    assert all(len(c) == 6 and c.isdigit() for c in (domain.new_code() for _ in range(200)))


def test_the_city_feed_counts_every_alarm_kind_security_declares() -> None:
    from services.citysync.domain import ALARM_KINDS as COUNTED

    assert set(COUNTED) == {k.value for k in domain.AlarmKind}
