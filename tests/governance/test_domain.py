"""The pure rules: spending order, clawback, debt, caps' periods, rule terms, the saga's moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.governance import domain
from services.governance.domain import CapPeriod, LotView, RedemptionStatus, RuleTerms, SkipReason

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def lot(id_: int, remaining: int, days: int | None) -> LotView:
    return LotView(id=id_, remaining=remaining, expires_at=None if days is None else NOW + timedelta(days=days))


def test_spending_takes_soonest_expiry_first_and_unexpiring_last() -> None:
    lots = [lot(1, 10, None), lot(2, 5, 30), lot(3, 4, 2), lot(4, 6, 365)]
    assert domain.plan_spend(lots, 12, NOW) == [(3, 4), (2, 5), (4, 3)]


def test_spending_skips_expired_lots_and_refuses_when_short() -> None:
    lots = [lot(1, 10, -1), lot(2, 5, None)]
    assert domain.plan_spend(lots, 5, NOW) == [(2, 5)]
    with pytest.raises(domain.InsufficientPoints) as err:
        domain.plan_spend(lots, 6, NOW)
    assert (err.value.needed, err.value.available) == (6, 5)


def test_a_debt_is_owed_before_points_in_lots_can_be_spent() -> None:
    lots = [lot(1, 20, None)]
    assert domain.plan_spend(lots, 5, NOW, debt=15) == [(1, 5)]
    with pytest.raises(domain.InsufficientPoints) as err:
        domain.plan_spend(lots, 6, NOW, debt=15)
    assert err.value.available == 5
    with pytest.raises(domain.InsufficientPoints) as err:
        domain.plan_spend(lots, 1, NOW, debt=30)
    assert err.value.available == 0


def test_equal_expiry_spends_the_older_lot_first() -> None:
    assert domain.plan_spend([lot(7, 5, 3), lot(2, 5, 3)], 6, NOW) == [(2, 5), (7, 1)]


def test_clawback_takes_the_grants_own_lot_first_then_soonest_and_leaves_debt() -> None:
    lots = [lot(1, 3, 5), lot(2, 4, None), lot(9, 2, 100)]
    plan, debt = domain.plan_clawback(lots, 20, own_lot=9)
    assert plan == [(9, 2), (1, 3), (2, 4)]
    assert debt == 11


def test_clawback_without_debt_when_lots_cover_it() -> None:
    assert domain.plan_clawback([lot(1, 30, None)], 20, own_lot=None) == ([(1, 20)], 0)


@given(st.lists(st.tuples(st.integers(0, 50), st.one_of(st.none(), st.integers(-5, 400))), max_size=12), st.integers(1, 300))
@settings(max_examples=100)
def test_spend_plan_is_exact_ordered_and_within_each_lot(raw: list[tuple[int, int | None]], amount: int) -> None:
    lots = [lot(i, remaining, days) for i, (remaining, days) in enumerate(raw, start=1)]
    live = [x for x in lots if x.remaining > 0 and (x.expires_at is None or x.expires_at > NOW)]
    try:
        plan = domain.plan_spend(lots, amount, NOW)
    except domain.InsufficientPoints:
        assert sum(x.remaining for x in live) < amount
        return
    by_id = {x.id: x for x in lots}
    assert sum(p for _, p in plan) == amount
    assert all(0 < p <= by_id[i].remaining for i, p in plan)
    assert len({i for i, _ in plan}) == len(plan)
    # Every lot used before the last one was used up; no lot expiring sooner was left untouched.
    used = [by_id[i] for i, _ in plan]
    assert all(p == by_id[i].remaining for i, p in plan[:-1])
    untouched = [x for x in live if x.id not in {i for i, _ in plan}]
    key = domain.spending_order
    for skipped in untouched:
        assert key([skipped, used[-1]])[0] is used[-1]


@given(st.lists(st.integers(0, 50), max_size=8), st.integers(1, 400))
@settings(max_examples=100)
def test_clawback_takes_everything_it_can_and_the_rest_is_debt(remainders: list[int], amount: int) -> None:
    lots = [lot(i, r, i * 3) for i, r in enumerate(remainders, start=1)]
    plan, debt = domain.plan_clawback(lots, amount, own_lot=None)
    taken = sum(p for _, p in plan)
    assert taken + debt == amount
    assert taken == min(amount, sum(remainders))


def test_cap_periods_are_local_days_monday_weeks_and_months() -> None:
    # 2026-03-08 17:00 UTC is already Monday 2026-03-09 01:00 in Asia/Shanghai.
    at = datetime(2026, 3, 8, 17, 0, tzinfo=UTC)
    assert domain.period_start(CapPeriod.day, at, TZ) == date(2026, 3, 9)
    assert domain.period_start(CapPeriod.week, at, TZ) == date(2026, 3, 9)
    assert domain.period_start(CapPeriod.week, at - timedelta(hours=2), TZ) == date(2026, 3, 2)
    assert domain.period_start(CapPeriod.month, at, TZ) == date(2026, 3, 1)


def test_month_bounds_are_local_and_wrap_the_year() -> None:
    start, end = domain.month_bounds("2026-12", TZ)
    assert start.astimezone(UTC) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert domain.month_of(datetime(2026, 11, 30, 16, 30, tzinfo=UTC), TZ) == "2026-12"


def test_rule_terms_switch_validity_and_points_per_hour() -> None:
    terms = RuleTerms(
        points=12, per_hour=True, enabled=True, valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=1)
    )
    assert domain.rule_skip_reason(terms, NOW) is None
    assert domain.rule_skip_reason(terms, NOW + timedelta(days=1)) is SkipReason.outside_validity
    assert domain.rule_skip_reason(terms, NOW - timedelta(days=2)) is SkipReason.outside_validity
    off = RuleTerms(points=12, per_hour=False, enabled=False, valid_from=None, valid_until=None)
    assert domain.rule_skip_reason(off, NOW) is SkipReason.disabled
    assert domain.points_for(terms, 90) == 18
    assert domain.points_for(terms, 4) == 0
    assert domain.points_for(off, 90) == 12


def test_awards_over_the_threshold_either_way_need_approval() -> None:
    assert not domain.award_needs_approval(50, 50)
    assert domain.award_needs_approval(51, 50)
    assert domain.award_needs_approval(-51, 50)


def test_a_redemption_settles_once() -> None:
    assert domain.next_redemption_status(RedemptionStatus.reserved, "capture") is RedemptionStatus.captured
    assert domain.next_redemption_status(RedemptionStatus.reserved, "release") is RedemptionStatus.released
    for final in (RedemptionStatus.captured, RedemptionStatus.released):
        for action in ("capture", "release"):
            with pytest.raises(domain.RedemptionNotOpen):
                domain.next_redemption_status(final, action)


def test_reward_activity_and_resident_limits() -> None:
    assert domain.reward_is_active(True, None, None, NOW)
    assert not domain.reward_is_active(False, None, None, NOW)
    assert not domain.reward_is_active(True, NOW + timedelta(seconds=1), None, NOW)
    assert not domain.reward_is_active(True, None, NOW, NOW)
    assert domain.within_resident_limit(None, 99, 5)
    assert domain.within_resident_limit(3, 1, 2)
    assert not domain.within_resident_limit(3, 2, 2)


def test_due_lots_are_those_past_expiry_with_points_left() -> None:
    lots = [lot(1, 5, -1), lot(2, 0, -1), lot(3, 5, 1), lot(4, 5, None)]
    assert [x.id for x in domain.due_lots(lots, NOW)] == [1]


def test_a_pledge_counts_before_the_deadline_only_and_the_minimum_is_met_at_exactly_it() -> None:
    deadline = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
    before = deadline - timedelta(microseconds=1)
    assert domain.pledge_takes_part("open", deadline, before)
    assert domain.pledge_takes_part("reached", deadline, before)
    assert not domain.pledge_takes_part("open", deadline, deadline)
    assert not domain.pledge_takes_part("lapsed", deadline, before)
    assert (domain.pledge_minimum_met(4, 5), domain.pledge_minimum_met(5, 5), domain.pledge_minimum_met(6, 5)) == (
        False,
        True,
        True,
    )
    assert domain.participation_source("d1", "r1") == "ballot:d1:r1" != domain.participation_source("d2", "r1")
