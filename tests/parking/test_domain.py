"""Parking's pure rules, without I/O."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.parking import domain
from services.parking.domain import COMMUNITY_TZ, Interval

T0 = datetime(2025, 1, 31, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minutes", "seconds", "units"), [(0, 0, 0), (0, 1, 1), (29, 59, 1), (30, 0, 1), (30, 1, 2), (60, 0, 2), (60, 1, 3)]
)
def test_fee_per_started_half_hour(minutes: int, seconds: int, units: int) -> None:
    assert domain.fee_fen(T0, T0 + timedelta(minutes=minutes, seconds=seconds), 500) == units * 500


def test_fee_overnight_and_across_month_end() -> None:
    # 22:00 on 31 Jan to 07:00 on 1 Feb: 9 hours is 18 half hours.
    assert domain.fee_fen(T0, T0 + timedelta(hours=9), 250) == 18 * 250
    assert domain.fee_fen(T0, T0 + timedelta(hours=9, microseconds=1), 250) == 19 * 250


def test_fee_of_nothing_or_reversed_range_is_zero() -> None:
    assert domain.fee_fen(T0, T0, 500) == 0
    assert domain.fee_fen(T0, T0 - timedelta(hours=1), 500) == 0
    with pytest.raises(ValueError):
        domain.fee_fen(T0, T0 + timedelta(hours=1), -1)


def test_overstay_only_counts_past_the_end() -> None:
    assert domain.overstay_fen(T0, T0 - timedelta(minutes=5), 500) == 0
    assert domain.overstay_fen(T0, T0 + timedelta(minutes=30), 500) == 500
    assert domain.overstay_fen(T0, T0 + timedelta(minutes=30, seconds=1), 500) == 1000


@given(st.integers(0, 10**7), st.integers(0, 10_000), st.integers(0, 10_000))
def test_split_adds_up_and_never_goes_negative(total: int, owner: int, prop: int) -> None:
    if owner + prop > domain.BASIS_POINTS:
        with pytest.raises(ValueError):
            domain.split_fee(total, owner, prop)
        return
    split = domain.split_fee(total, owner, prop)
    assert split.owner_fen + split.property_fen + split.platform_fen == total
    assert min(split.owner_fen, split.property_fen, split.platform_fen) >= 0


def test_refund_policy() -> None:
    start = T0 + timedelta(hours=3)
    policy = {"full_refund_before": timedelta(hours=2), "late_refund_pct": 50}
    assert domain.refund_fen(1000, now=T0, starts_at=start, by_owner_or_staff=False, **policy) == 1000
    assert domain.refund_fen(1000, now=start - timedelta(minutes=119), starts_at=start, by_owner_or_staff=False, **policy) == 500
    assert domain.refund_fen(1000, now=start, starts_at=start, by_owner_or_staff=False, **policy) == 0
    assert domain.refund_fen(1000, now=start, starts_at=start, by_owner_or_staff=True, **policy) == 1000


@pytest.mark.parametrize("plate", ["浙K12345", "浙KD12345", "浙KFA1234", "浙K12345D", "京A0B1C2", " 浙k·12345 "])
def test_mainland_plates_accepted(plate: str) -> None:
    assert domain.normalize_plate(plate).startswith(("浙", "京"))


@pytest.mark.parametrize(
    "plate", ["", "浙K1234", "浙K1234567", "浙I12345", "浙O12345", "ZJK12345", "浙112345", "港K12345", "浙KD1234X"]
)
def test_bad_plates_refused(plate: str) -> None:
    with pytest.raises(domain.InvalidPlate):
        domain.normalize_plate(plate)


def test_weekly_expansion_across_month_and_year_end() -> None:
    # Every Friday 22:00 to 07:00 (overnight), from 26 Dec 2025 (a Friday) to 9 Jan 2026.
    got = domain.expand_weekly(frozenset({5}), time(22), time(7), date(2025, 12, 26), date(2026, 1, 9))
    assert [i.start.astimezone(COMMUNITY_TZ).date() for i in got] == [date(2025, 12, 26), date(2026, 1, 2), date(2026, 1, 9)]
    assert all(i.end - i.start == timedelta(hours=9) for i in got)
    assert got[0].start == datetime(2025, 12, 26, 14, 0, tzinfo=UTC)  # Shanghai is UTC+8 all year
    assert got[0].end == datetime(2025, 12, 26, 23, 0, tzinfo=UTC)


def test_window_rules() -> None:
    with pytest.raises(domain.RangeProblem, match="end-before-start"):
        domain.check_booking_range(T0, T0, now=T0, min_minutes=30)
    with pytest.raises(domain.RangeProblem, match="in-the-past"):
        domain.check_booking_range(T0 - timedelta(hours=1), T0, now=T0, min_minutes=30)
    with pytest.raises(domain.RangeProblem, match="too-short"):
        domain.check_booking_range(T0, T0 + timedelta(minutes=29), now=T0, min_minutes=30)
    domain.check_booking_range(T0, T0 + timedelta(minutes=30), now=T0, min_minutes=30)
    with pytest.raises(domain.RangeProblem, match="too-short"):
        domain.check_window_range(T0, T0 + timedelta(minutes=59), now=T0, min_minutes=60)


# --- weekly windows against a brute-force model in naive local wall time ------------------------

days = st.frozensets(st.integers(1, 7), min_size=1)
clock = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


def brute_force_contains(
    weekdays: frozenset[int], start: time, end: time, first: date, last: date, booking_start: datetime, booking_end: datetime
) -> bool:
    """Does some occurrence hold the booking? Computed day by day in naive local time."""
    local_s = booking_start.astimezone(COMMUNITY_TZ).replace(tzinfo=None)
    local_e = booking_end.astimezone(COMMUNITY_TZ).replace(tzinfo=None)
    day = first
    while day <= last:
        if day.isoweekday() in weekdays:
            occ_s = datetime.combine(day, start)
            occ_e = datetime.combine(day if end > start else day + timedelta(days=1), end)
            if occ_s <= local_s and local_e <= occ_e:
                return True
        day += timedelta(days=1)
    return False


@settings(max_examples=100, deadline=None)
@given(days, clock, clock, st.dates(date(2024, 1, 1), date(2030, 12, 1)), st.integers(0, 40 * 24 * 4), st.integers(1, 24 * 4))
def test_weekly_containment_matches_brute_force(
    weekdays: frozenset[int], start: time, end: time, first: date, offset_q: int, length_q: int
) -> None:
    last = first + timedelta(days=35)
    occurrences = domain.expand_weekly(weekdays, start, end, first, last)
    b_start = datetime.combine(first, time(0), tzinfo=COMMUNITY_TZ) + timedelta(minutes=15 * offset_q)
    booking = Interval(b_start, b_start + timedelta(minutes=15 * length_q))
    ours = any(o.contains(booking) for o in occurrences)
    assert ours == brute_force_contains(weekdays, start, end, first, last, booking.start, booking.end)
    # Occurrences of one window never overlap each other and are in order.
    for a, b in itertools.pairwise(occurrences):
        assert a.end <= b.start
