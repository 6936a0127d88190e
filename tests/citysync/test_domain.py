"""The feed's rules without I/O: de-identification per field, hashes per consumer, bands, statistics."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.citysync import domain, privacy
from services.citysync.domain import RECORD_KINDS
from services.citysync.privacy import FIELD_RULES, HASHED_FIELDS, Rule

KEY = b"platform-key"
ON = date(2026, 11, 22)
EVENTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "events"


def test_names_free_text_and_id_numbers_never_leave() -> None:
    out = privacy.deidentify(
        {
            "name": "王秀英",
            "username": "steward.wu",
            "id_card": "330102194103020021",
            "id_number": "330102194103020021",
            "description": "王秀英家漏水",
            "reason": "取消",
            "comment": "好",
            "community": "c",
        },
        platform_key=KEY,
        on=ON,
    )
    assert out == {"community": "c"}


def test_a_field_without_a_rule_is_not_exported() -> None:
    out = privacy.deidentify(
        {"community": "c", "emergency_contact": "李桂兰 17000000002", "extra": {"a": 1}}, platform_key=KEY, on=ON
    )
    assert out == {"community": "c"}
    assert "emergency_contact" not in FIELD_RULES


def test_a_decision_result_leaves_with_its_outcome_and_counts_and_without_its_options() -> None:
    closed = {
        "decision_id": "d-1",
        "community": "c",
        "kind": "owners_major",
        "outcome": "passed",
        "winner": None,
        "roll_voters": 300,
        "roll_area": 2_700_000,
        "participating_voters": 210,
        "participating_area": 1_900_000,
        "options": [{"option": "yes", "ballots": 170, "area": 1_500_000}],
        "closed_at": "2026-12-05T12:00:00+00:00",
    }
    out = privacy.deidentify(closed, platform_key=KEY, on=ON)
    assert out == {k: v for k, v in closed.items() if k not in ("winner", "options")}
    assert RECORD_KINDS["governance.decision.closed.v1"].record_type == "decision_closed"


def test_phones_plates_and_people_are_stored_as_platform_hashes() -> None:
    data = {"phone": "17000000001", "plate": "浙K12345", "resident_id": "r-1", "owner_id": None}
    out = privacy.deidentify(data, platform_key=KEY, on=ON)
    assert out["phone"] == privacy.platform_hash(KEY, "17000000001") and re.fullmatch(r"[0-9a-f]{64}", out["phone"])
    assert out["plate"] != "浙K12345" and out["resident_id"] != "r-1" and out["owner_id"] is None
    assert privacy.deidentify(data, platform_key=b"other", on=ON)["phone"] != out["phone"]


def test_addresses_become_buildings_and_birth_dates_age_bands() -> None:
    out = privacy.deidentify(
        {"address": "白云社区3幢2单元301", "birth_date": "1941-03-02", "unit": "301"}, platform_key=KEY, on=ON
    )
    assert out == {"address": "3幢", "age_band": "85-89"}
    assert privacy.deidentify({"address": "白云社区东门"}, platform_key=KEY, on=ON) == {"address": None}
    assert privacy.deidentify({"age": 64}, platform_key=KEY, on=ON) == {"age_band": "60-64"}
    assert privacy.deidentify({"age": "not a date"}, platform_key=KEY, on=ON) == {"age_band": None}
    assert privacy.generalise_building("12 号楼 5 层") == "12号楼"


def test_kept_values_that_look_personal_are_withheld() -> None:
    out = privacy.deidentify(
        {
            "service_code": "call 13812345678",
            "category": "浙A1B2C3",
            "code": "B1",
            "status": "330102194103020021",
            "roles": ["resident", "13812345678"],
        },
        platform_key=KEY,
        on=ON,
    )
    assert out == {"service_code": None, "category": None, "code": "B1", "status": None, "roles": ["resident", None]}


def test_a_phone_number_sent_as_a_json_number_is_withheld() -> None:
    out = privacy.deidentify(
        {"code": 13000000000, "status": 13812345678.0, "category": 30, "service_code": True}, platform_key=KEY, on=ON
    )
    assert out == {"code": None, "status": None, "category": 30, "service_code": True}


@pytest.mark.parametrize(
    "text,personal",
    [
        ("13812345678", True),
        ("+8613812345678", True),
        ("tel:17000000001.", True),
        ("1381234567", False),
        ("138123456789", False),
        ("330102194103020021", True),
        ("33010219410302002X", True),
        ("330102194113020021", False),
        ("浙K12345", True),
        ("浙AD12345", True),
        ("B1-101", False),
        ("2026-11-22T00:00:00+00:00", False),
        ("6f1c2a52-9a0e-4e55-8a0b-138123456789", False),
    ],
)
def test_personal_patterns(text: str, personal: bool) -> None:
    assert privacy.looks_personal(text) is personal


@given(st.integers(0, 130))
def test_age_band_holds_the_age(age: int) -> None:
    band = privacy.age_band_5y(age)
    if age >= 100:
        assert band == "100+"
    else:
        low, high = map(int, band.split("-"))
        assert low <= age <= high and high - low == 4 and low % 5 == 0


@given(st.dates(date(1900, 1, 1), date(2026, 1, 1)), st.dates(date(2026, 1, 1), date(2030, 1, 1)))
def test_age_on_counts_whole_years(birth: date, on: date) -> None:
    age = privacy.age_on(birth, on)
    today = (on.year, on.month, on.day)
    assert (birth.year + age, birth.month, birth.day) <= today < (birth.year + age + 1, birth.month, birth.day)


@given(st.text(min_size=1, max_size=20), st.binary(min_size=8, max_size=32), st.binary(min_size=8, max_size=32))
@settings(max_examples=100)
def test_consumer_hashes_are_stable_and_unjoinable(value: str, key_a: bytes, key_b: bytes) -> None:
    stored = privacy.platform_hash(KEY, value)
    a = privacy.for_consumer({"phone": stored, "minutes": 30}, key_a)
    assert a == privacy.for_consumer({"phone": stored, "minutes": 30}, key_a)
    assert a["minutes"] == 30 and len(a["phone"]) == 32 and a["phone"] not in stored
    if key_a != key_b:
        assert privacy.for_consumer({"phone": stored}, key_b)["phone"] != a["phone"]


@given(st.text(max_size=80), st.binary(max_size=200))
@settings(max_examples=100)
def test_consumer_hash_is_hmac_sha256_of_the_stored_hash(value: str, key: bytes) -> None:
    """The precomputed pads give exactly HMAC-SHA256 (keys shorter and longer than a block), so the
    hashes consumers already hold keep joining."""
    expected = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]
    hasher = privacy.ConsumerHasher(key)
    assert hasher.hash(value) == expected
    assert hasher.hash(value) == expected  # the keyed states are copied, never consumed


def test_rekey_replaces_only_string_hashes_in_place_and_payload_copies() -> None:
    hasher = privacy.ConsumerHasher(b"k" * 32)
    stored = {"phone": "ab" * 32, "owner_id": None, "minutes": 30, "plate": 7}
    copied = hasher.payload(stored)
    assert stored["phone"] == "ab" * 32 and copied["phone"] == hasher.hash("ab" * 32)
    assert copied == {"phone": hasher.hash("ab" * 32), "owner_id": None, "minutes": 30, "plate": 7}
    decoded = dict(stored)
    assert hasher.rekey(decoded) is decoded and decoded == copied


phones = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@given(st.dictionaries(st.sampled_from([*sorted(FIELD_RULES), "free", "other"]), st.one_of(phones, st.integers())), phones)
@settings(max_examples=100)
def test_no_phone_survives_deidentification(data: dict[str, object], phone: str) -> None:
    data = {**data, "phone": phone, "description": f"call {phone}"}
    out = privacy.deidentify(data, platform_key=KEY, on=ON)
    for name, value in out.items():
        if name not in HASHED_FIELDS:
            assert not privacy.PHONE_RE.search(json.dumps(value))


def test_every_event_type_of_the_contracts_is_decided() -> None:
    """Each published event type either makes a record or is deliberately left out."""
    left_out = {
        "property.staff.registered.v1",
        "property.redemption.fulfilled.v1",
        "property.redemption.failed.v1",
        "property.points_payment.requested.v1",
        "timebank.care_request.cancelled.v1",
        "property.household.roll_changed.v1",
        "governance.ballot.cast.v1",
        # A device's outages and a pass's revocation are operations, not the city's figures.
        "security.device.offline.v1",
        "security.device.back_online.v1",
        "security.pass.revoked.v1",
        # A visitor's plate for parking's gate: a plate identifies a car, and the pass is counted
        # already by `pass.issued`.
        "security.pass.car_allowed.v1",
        # A unit's owner flag serves owners' votes (like the household roll); a pledge is one
        # household's purchase, and an offer's outcome is not in the city's data catalogue.
        "property.resident.owner_changed.v1",
        "governance.pledge.ordered.v1",
        "governance.pledge_offer.settled.v1",
        # Steps of one care visit and a gift between relatives: they tell people (notify); the
        # feeds already get the visit from `service.confirmed` and have no use for the steps.
        "timebank.care_request.accepted.v1",
        "timebank.service.logged.v1",
        "timebank.service.disputed.v1",
        "timebank.hours.gifted.v1",
        "timebank.hours.expiring.v1",  # a warning; the feed has the expiry itself
        "timebank.relative.verified.v1",  # a family link: personal, not the city's data
        # A booking's steps before it is used: the feeds carry parking as it was used (`completed`).
        "parking.booking.confirmed.v1",
        "parking.booking.starting_soon.v1",
        "parking.booking.overstayed.v1",
        # Who holds a ticket inside the property company; the feeds have its status changes.
        "property.ticket.reassigned.v1",
    }
    # citysync's own events (about the sharing register) are not domain data for the feeds.
    published = {
        p.name.removesuffix(".schema.json") for p in EVENTS_DIR.glob("*.schema.json") if not p.name.startswith("citysync.")
    }
    assert published, "no contracts found"
    assert published - left_out <= set(RECORD_KINDS)
    for event_type, kind in RECORD_KINDS.items():
        assert kind.subject_field in FIELD_RULES and FIELD_RULES[kind.subject_field] in (Rule.keep, Rule.keyed_hash)
        assert event_type.startswith(kind.scene.value + ".")


def test_contract_fields_that_name_people_are_never_kept_raw() -> None:
    for path in EVENTS_DIR.glob("*.schema.json"):
        for name in json.loads(path.read_text()).get("properties", {}):
            if name in ("name", "phone", "username", "reason") or name.endswith(("_id_card", "_name", "_phone")):
                assert FIELD_RULES.get(name) in (None, Rule.drop, Rule.never, Rule.keyed_hash), (path.name, name)


def test_event_time_prefers_the_events_own_time() -> None:
    kind = RECORD_KINDS["timebank.service.confirmed.v1"]
    envelope = datetime(2026, 1, 2, tzinfo=UTC)
    assert domain.event_time(kind, {"confirmed_at": "2026-01-01T08:00:00+08:00"}, envelope) == datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.event_time(kind, {"confirmed_at": "garbage"}, envelope) == envelope
    assert domain.event_time(kind, {"confirmed_at": "2026-01-01T08:00:00"}, envelope) == envelope


def test_days_are_local_and_close_after_the_grace() -> None:
    assert domain.local_day(datetime(2026, 1, 1, 16, 30, tzinfo=UTC)) == date(2026, 1, 2)
    end_utc = datetime(2026, 1, 1, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    assert not domain.day_closed(date(2026, 1, 1), end_utc + timedelta(minutes=59), timedelta(hours=1))
    assert domain.day_closed(date(2026, 1, 1), end_utc + timedelta(hours=1), timedelta(hours=1))


def test_statistics_deltas_and_rates() -> None:
    assert domain.stats_delta("service_confirmed", {"minutes": 60, "service_type": "meal"}) == domain.StatsDelta(
        {"services_confirmed": 1, "minutes_served": 60}, {"meal": 60}
    )
    assert domain.stats_delta("transfer_reversed", {"minutes": 30}, "meal") == domain.StatsDelta(
        {"minutes_reversed": 30, "minutes_served": -30}, {"meal": -30}
    )
    booking = domain.stats_delta(
        "booking_completed",
        {"start": "2026-01-01T08:00:00+08:00", "fee_fen": 500, "end": "2026-01-01T09:30:00+08:00", "spot_id": "s"},
    )
    assert booking == domain.StatsDelta({"bookings_completed": 1, "booked_minutes": 90, "parking_fee_fen": 500}, {}, "s")
    assert domain.stats_delta("ticket_completed", {"on_time": False}) == domain.StatsDelta(
        {"tickets_completed": 1, "tickets_on_time": 0}, {}
    )
    assert domain.stats_delta("points_granted", {"points": 60, "resident_id": "h"}) == domain.StatsDelta(
        {"points_granted": 60}, {}
    )
    assert domain.stats_delta("resident_registered", {}) is None
    stats = domain.daily_statistics(
        "c", date(2026, 1, 1), 3, {"booked_minutes": 720, "tickets_completed": 3, "tickets_on_time": 2}, {"meal": 60}, 1
    )
    assert stats["occupancy_permille"] == 500 and stats["sla_on_time_permille"] == 666
    assert domain.daily_statistics("c", date(2026, 1, 1), 1, {}, {}, 0)["sla_on_time_permille"] is None


@pytest.mark.parametrize("cursor,expected", [(None, 0), ("", 0), ("0", 0), ("42", 42)])
def test_cursor_parses(cursor: str | None, expected: int) -> None:
    assert domain.parse_cursor(cursor) == expected


@pytest.mark.parametrize("cursor", ["-1", "abc", "1.5", "9" * 19])
def test_bad_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError):
        domain.parse_cursor(cursor)


def test_the_median_response_time_is_whole_seconds_and_null_without_answers() -> None:
    assert domain.median([]) is None
    assert domain.median([600, 30, 90]) == 90
    assert domain.median([30, 91, 600, 10]) == 60  # (30 + 91) // 2
    delta = domain.stats_delta("alarm_answered", {"response_s": 42})
    assert delta is not None and delta.counters == {"alarms_answered": 1} and delta.response_s == 42
    refused = domain.stats_delta("alarm_answered", {"response_s": -5})
    assert refused is not None and refused.response_s is None  # counted as answered, not in the median
