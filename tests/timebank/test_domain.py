"""The time bank's pure rules, without I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.kit.problems import Problem
from services.timebank import domain
from services.timebank.domain import Balances, CareAction, CareStatus
from services.timebank.problems import (
    AgeNotVerified,
    BelowFirstWithdrawalMinimum,
    BelowWithdrawalAge,
    CheckinBeforeAcceptance,
    CheckoutBeforeCheckin,
    InsufficientBalance,
    ServiceTooShort,
    TimeInFuture,
    WrongCareRequestState,
)


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (date(1960, 5, 10), date(2025, 5, 9), 64),
        (date(1960, 5, 10), date(2025, 5, 10), 65),
        (date(1960, 2, 29), date(2020, 2, 28), 59),
        (date(1960, 2, 29), date(2020, 2, 29), 60),
        (date(1960, 2, 29), date(2021, 3, 1), 61),
    ],
)
def test_age_counts_completed_years(birth: date, day: date, age: int) -> None:
    assert domain.age_on(birth, day) == age


def test_withdrawal_age_threshold_is_the_communitys() -> None:
    birth = date(1962, 6, 1)
    domain.check_withdrawal_allowed(birth, date(2025, 6, 1), 60)
    with pytest.raises(BelowWithdrawalAge):
        domain.check_withdrawal_allowed(birth, date(2025, 6, 1), 65)
    with pytest.raises(BelowWithdrawalAge):
        domain.check_withdrawal_allowed(birth, date(2022, 5, 31), 60)


def test_unverified_age_cannot_withdraw() -> None:
    with pytest.raises(AgeNotVerified):
        domain.check_withdrawal_allowed(None, date(2025, 1, 1), 60)


def test_first_withdrawal_minimum_applies_only_before_the_first() -> None:
    with pytest.raises(BelowFirstWithdrawalMinimum):
        domain.check_first_withdrawal(299, False, 300)
    domain.check_first_withdrawal(300, False, 300)
    domain.check_first_withdrawal(10, True, 300)


def test_local_today_is_shanghai_date() -> None:
    assert domain.local_today(datetime(2025, 1, 1, 17, 0, tzinfo=UTC)) == date(2025, 1, 2)


def test_served_minutes_counts_whole_minutes() -> None:
    t0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    assert domain.served_minutes(t0, t0 + timedelta(minutes=90, seconds=59)) == 90
    with pytest.raises(CheckoutBeforeCheckin):
        domain.served_minutes(t0, t0 - timedelta(minutes=1))
    with pytest.raises(CheckoutBeforeCheckin):
        domain.served_minutes(t0, t0)
    with pytest.raises(ServiceTooShort):
        domain.served_minutes(t0, t0 + timedelta(seconds=59))


NOW = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
ACCEPTED = NOW - timedelta(hours=2)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("given", "answer"),
    [
        (None, NOW),
        (ACCEPTED, ACCEPTED),
        (ACCEPTED + MINUTE, ACCEPTED + MINUTE),
        (NOW + domain.CLOCK_TOLERANCE, NOW + domain.CLOCK_TOLERANCE),
        (ACCEPTED - timedelta(seconds=1), CheckinBeforeAcceptance),
        (NOW - timedelta(days=3), CheckinBeforeAcceptance),
        (NOW + domain.CLOCK_TOLERANCE + timedelta(seconds=1), TimeInFuture),
        (datetime(2025, 1, 1, 18, 0, tzinfo=domain.LOCAL_TZ), NOW),  # the same instant at +08:00
    ],
)
def test_a_check_in_lies_between_the_acceptance_and_now(given: datetime | None, answer: datetime | type[Problem]) -> None:
    if isinstance(answer, datetime):
        assert domain.check_in_time(given, ACCEPTED, NOW) == answer
    else:
        with pytest.raises(answer) as refused:
            domain.check_in_time(given, ACCEPTED, NOW)
        assert refused.value.extensions["field"] == "at"


def test_a_check_in_at_now_is_never_before_an_acceptance_stamped_by_a_clock_ahead() -> None:
    assert domain.check_in_time(None, NOW + timedelta(seconds=3), NOW) == NOW + timedelta(seconds=3)


@pytest.mark.parametrize(
    ("given", "answer"),
    [
        (None, NOW),
        (ACCEPTED + MINUTE, ACCEPTED + MINUTE),
        (NOW + domain.CLOCK_TOLERANCE, NOW + domain.CLOCK_TOLERANCE),
        (ACCEPTED, CheckoutBeforeCheckin),
        (ACCEPTED - MINUTE, CheckoutBeforeCheckin),
        (NOW + domain.CLOCK_TOLERANCE + timedelta(seconds=1), TimeInFuture),
    ],
)
def test_a_check_out_lies_after_the_check_in_and_not_ahead_of_now(
    given: datetime | None, answer: datetime | type[Problem]
) -> None:
    checked_in = ACCEPTED
    if isinstance(answer, datetime):
        assert domain.check_out_time(given, checked_in, NOW) == answer
    else:
        with pytest.raises(answer) as refused:
            domain.check_out_time(given, checked_in, NOW)
        assert refused.value.extensions["field"] == "at"


def test_care_request_transitions() -> None:
    status = CareStatus.OPEN
    for action in (CareAction.ACCEPT, CareAction.CHECK_IN, CareAction.CHECK_OUT, CareAction.CONFIRM):
        status = domain.next_care_status(status, action)
    assert status is CareStatus.CONFIRMED
    with pytest.raises(WrongCareRequestState):
        domain.next_care_status(CareStatus.OPEN, CareAction.CHECK_OUT)
    with pytest.raises(WrongCareRequestState):
        domain.next_care_status(CareStatus.CONFIRMED, CareAction.DISPUTE)
    with pytest.raises(WrongCareRequestState):
        domain.next_care_status(CareStatus.ACCEPTED, CareAction.ACCEPT)


@given(st.integers(0, 10_000), st.integers(1, 10_000))
def test_cap_overflow_is_exactly_the_excess(balance: int, cap: int) -> None:
    overflow = domain.cap_overflow(balance, cap)
    assert overflow >= 0
    assert balance - overflow <= cap
    assert overflow == 0 or balance - overflow == cap


def test_pending_debits_count_against_the_balance() -> None:
    payer, volunteer = Balances(credits_posted=100), Balances()
    domain.reserve(payer, volunteer, 80)
    assert payer.available == 20 and payer.posted == 100
    with pytest.raises(InsufficientBalance):
        domain.transfer(payer, Balances(), 21)
    domain.void_pending(payer, volunteer, 80)
    assert (payer.posted, payer.available, volunteer.posted, volunteer.credits_pending) == (100, 100, 0, 0)


def test_unlimited_account_may_go_negative() -> None:
    community, pool = Balances(limited=False), Balances()
    domain.transfer(community, pool, 500)
    assert community.posted == -500 and pool.posted == 500


operations = st.lists(
    st.tuples(st.sampled_from(["transfer", "reserve", "void"]), st.integers(0, 2), st.integers(0, 2), st.integers(1, 200)),
    max_size=60,
)


@settings(max_examples=100)
@given(operations)
def test_random_sequences_keep_double_entry_and_limits(ops: list[tuple[str, int, int, int]]) -> None:
    accounts = [Balances(limited=False), Balances(), Balances()]
    pendings: list[tuple[int, int, int]] = []
    for op, a, b, amount in ops:
        if a == b:
            continue
        try:
            if op == "transfer":
                domain.transfer(accounts[a], accounts[b], amount)
            elif op == "reserve":
                domain.reserve(accounts[a], accounts[b], amount)
                pendings.append((a, b, amount))
            elif pendings:
                pa, pb, pamount = pendings.pop(0)
                domain.void_pending(accounts[pa], accounts[pb], pamount)
        except InsufficientBalance:
            pass
        assert sum(x.debits_posted for x in accounts) == sum(x.credits_posted for x in accounts)
        assert sum(x.debits_pending for x in accounts) == sum(x.credits_pending for x in accounts)
        for x in accounts:
            assert not x.limited or x.debits_posted + x.debits_pending <= x.credits_posted
            assert min(x.debits_pending, x.credits_pending) >= 0


@pytest.mark.parametrize(
    ("available", "recent_credits", "expiring"),
    [
        (110, 40, 70),  # 40 credited within the period; the other 70 held are older
        (30, 40, 0),  # part of the recent credits was spent already: nothing old is left
        (40, 40, 0),
        (0, 0, 0),
        (25, 0, 25),  # nothing credited within the period: all of it is old
    ],
)
def test_expiring_minutes_are_the_available_hours_older_than_the_period(
    available: int, recent_credits: int, expiring: int
) -> None:
    assert domain.expiring_minutes(available, recent_credits) == expiring


# A member's history in time order: ("credit" | "debit", minutes); a debit may stand for spending,
# a gift, a donation, an overflow or a pending reservation, all of which take the oldest hours.
histories = st.lists(st.tuples(st.sampled_from(["credit", "debit"]), st.integers(1, 300)), max_size=40)


@settings(max_examples=200)
@given(histories, st.integers(0, 40))
def test_expiring_minutes_match_hours_spent_oldest_first(history: list[tuple[str, int]], period_starts: int) -> None:
    """Against lots spent oldest first: what expires is exactly what is left of the lots credited
    before the period began, and never more than the available balance."""
    lots: list[list[int]] = []  # [time, minutes left], oldest first
    recent_credits = 0
    for time, (what, minutes) in enumerate(history):
        if what == "credit":
            lots.append([time, minutes])
            recent_credits += minutes if time >= period_starts else 0
            continue
        if minutes > sum(left for _, left in lots):
            continue  # refused: debits never exceed credits
        while minutes:
            taken = min(minutes, lots[0][1])
            lots[0][1] -= taken
            minutes -= taken
            if lots[0][1] == 0:
                lots.pop(0)
    available = sum(left for _, left in lots)
    old_left = sum(left for time, left in lots if time < period_starts)
    assert domain.expiring_minutes(available, recent_credits) == old_left
    assert 0 <= old_left <= available


@pytest.mark.parametrize(
    ("now", "months", "valid_from"),
    [
        # 36 months back on the local calendar (08:00 in Shanghai)
        (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), 36, datetime(2023, 12, 1, 0, 0, tzinfo=UTC)),
        # a day the earlier month lacks becomes its last day, leap years included
        (datetime(2025, 3, 31, 4, 0, tzinfo=UTC), 1, datetime(2025, 2, 28, 4, 0, tzinfo=UTC)),
        (datetime(2024, 3, 31, 4, 0, tzinfo=UTC), 1, datetime(2024, 2, 29, 4, 0, tzinfo=UTC)),
        (datetime(2024, 2, 29, 4, 0, tzinfo=UTC), 12, datetime(2023, 2, 28, 4, 0, tzinfo=UTC)),
        # 17:00 UTC on 30 March is 01:00 on 31 March in Shanghai: the local month end counts, not UTC's
        (datetime(2025, 3, 30, 17, 0, tzinfo=UTC), 1, datetime(2025, 2, 27, 17, 0, tzinfo=UTC)),
        (datetime(2025, 1, 15, 4, 0, tzinfo=UTC), 600, datetime(1975, 1, 15, 4, 0, tzinfo=UTC)),
    ],
)
def test_hours_stay_valid_for_calendar_months_on_the_local_calendar(now: datetime, months: int, valid_from: datetime) -> None:
    assert domain.hours_valid_from(now, months) == valid_from


def test_ledger_made_transfers_are_not_reversible() -> None:
    assert {"overflow", "expiry", "reversal"} <= domain.NOT_REVERSIBLE_KINDS
    assert not {"service", "spend", "gift", "donation", "funding"} & domain.NOT_REVERSIBLE_KINDS


@settings(max_examples=300)
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=600),
)
def test_a_credit_expires_on_the_first_day_the_period_no_longer_covers_it(credited: datetime, months: int) -> None:
    day = domain.hours_expire_on(credited, months)
    ends = datetime(day.year, day.month, day.day, tzinfo=domain.LOCAL_TZ) + timedelta(days=1, microseconds=-1)
    assert domain.hours_valid_from(ends, months) > credited  # expired by the day's end
    # ... and valid through the whole of every day before it (each day's last moment is its latest start)
    for before in range(1, 4):
        assert domain.hours_valid_from(ends - timedelta(days=before), months) <= credited


def test_the_outlook_steps_as_credits_age_out() -> None:
    now = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    first, second = datetime(2025, 12, 10, 4, 0, tzinfo=UTC), datetime(2026, 1, 20, 4, 0, tzinfo=UTC)
    # 300 held; 100 + 80 + 60 (the last one recent) still valid: 60 are due today. When the 100
    # age out only 140 stay covered (another 100); when the 80 do, 60 (another 80).
    steps = domain.expiry_outlook(300, 240, [(first, 100), (second, 80)], 12, now=now, until=now + timedelta(days=90))
    assert steps == [(date(2026, 12, 4), 60), (date(2026, 12, 10), 100), (date(2027, 1, 20), 80)]
    # A horizon before the second: only what ages out by then. Nothing held beyond the valid: nothing.
    assert domain.expiry_outlook(300, 240, [(first, 100), (second, 80)], 12, now=now, until=now + timedelta(days=30)) == steps[:2]
    assert domain.expiry_outlook(100, 240, [(first, 100), (second, 80)], 12, now=now, until=now + timedelta(days=90)) == [
        (date(2027, 1, 20), 40)
    ]
