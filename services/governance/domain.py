"""Pure rules of the points ledger: no I/O, tested alone.

Points live in lots (积分批次), each with an optional expiry. Spending takes the soonest-expiring
lot first and lots without expiry last. A clawback (reversal of the event a grant came from) may
take more than the resident holds: the rest becomes a debt, so the balance is negative, and later
credits pay the debt first (`sql/gov_credit_lot.sql`). Throughout: balance = sum of the lots' remaining points − debt.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# --- triggers and periods ------------------------------------------------------------------------


class Trigger(enum.StrEnum):
    """What an earning rule listens to: another service's event, or a check-in."""

    timebank_service_confirmed = "timebank.service.confirmed.v1"
    parking_booking_completed = "parking.booking.completed.v1"
    # Taking part in a collective decision (the voter, or the owner a proxy voted for).
    ballot_cast = "governance.ballot.cast.v1"
    garbage_sorting = "checkin.garbage_sorting"
    meeting_attendance = "checkin.meeting_attendance"
    community_activity = "checkin.community_activity"

    @property
    def is_checkin(self) -> bool:
        return self.value.startswith("checkin.")


def participation_source(decision_id: str, resident_id: str) -> str:
    """The grant's source for a ballot: one per decision and resident, so a rule on
    `governance.ballot.cast.v1` grants participation points once per decision, whatever event
    redelivery or second ballot event arrives."""
    return f"ballot:{decision_id}:{resident_id}"


class CapPeriod(enum.StrEnum):
    day = "day"
    week = "week"
    month = "month"


def period_start(period: CapPeriod, at: datetime, tz: ZoneInfo) -> date:
    """The first local day of the cap period containing `at` (weeks start on Monday)."""
    local = at.astimezone(tz).date()
    if period is CapPeriod.day:
        return local
    if period is CapPeriod.week:
        return local - timedelta(days=local.weekday())
    return local.replace(day=1)


def month_of(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m")


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC-comparable start and end of a local month written `YYYY-MM`."""
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start, end


# --- earning rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleTerms:
    points: int
    per_hour: bool
    enabled: bool
    valid_from: datetime | None
    valid_until: datetime | None


class SkipReason(enum.StrEnum):
    disabled = "disabled"
    outside_validity = "outside-validity"
    zero_points = "zero-points"
    capped = "capped"
    budget_exhausted = "budget-exhausted"


def rule_skip_reason(terms: RuleTerms, at: datetime) -> SkipReason | None:
    """Why a rule grants nothing at `at`, or None when it applies."""
    if not terms.enabled:
        return SkipReason.disabled
    if terms.valid_from is not None and at < terms.valid_from:
        return SkipReason.outside_validity
    if terms.valid_until is not None and at >= terms.valid_until:
        return SkipReason.outside_validity
    return None


def points_for(terms: RuleTerms, minutes: int | None) -> int:
    """Points a rule grants: flat, or per hour of confirmed service, pro rata, rounded down to whole points."""
    if terms.per_hour:
        return terms.points * max(minutes or 0, 0) // 60
    return terms.points


def award_needs_approval(points: int, threshold: int) -> bool:
    """Awards and deductions larger than the threshold need a second worker (四眼原则)."""
    return abs(points) > threshold


# --- lots ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LotView:
    id: int
    remaining: int
    expires_at: datetime | None


def spending_order(lots: Iterable[LotView]) -> list[LotView]:
    """Soonest expiry first, lots without expiry last; ties by age (lower id first)."""
    return sorted(lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.min, lot.id))


class InsufficientPoints(Exception):
    def __init__(self, needed: int, available: int):
        super().__init__(f"needs {needed}, has {available}")
        self.needed = needed
        self.available = available


def plan_spend(lots: Sequence[LotView], amount: int, now: datetime, debt: int = 0) -> list[tuple[int, int]]:
    """Which lots pay `amount`, as (lot id, points); raises InsufficientPoints when they cannot.

    A debt (from a clawback) is owed first: points sitting in lots while the balance is negative
    are not spendable, so what can be spent is the live lots minus the debt.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    usable = [lot for lot in spending_order(lots) if lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > now)]
    available = max(sum(lot.remaining for lot in usable) - debt, 0)
    if available < amount:
        raise InsufficientPoints(amount, available)
    plan: list[tuple[int, int]] = []
    left = amount
    for lot in usable:
        take = min(lot.remaining, left)
        plan.append((lot.id, take))
        left -= take
        if left == 0:
            break
    return plan


def plan_clawback(lots: Sequence[LotView], amount: int, own_lot: int | None) -> tuple[list[tuple[int, int]], int]:
    """Take `amount` back: from the grant's own lot first, then soonest-expiring; the rest is debt.

    Returns ((lot id, points) taken, new debt). Expired-but-unswept lots count too: the points
    are the resident's until the expiry job records them gone.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    ordered = spending_order(lots)
    if own_lot is not None:
        ordered = sorted(ordered, key=lambda lot: lot.id != own_lot)
    plan: list[tuple[int, int]] = []
    left = amount
    for lot in ordered:
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            plan.append((lot.id, take))
            left -= take
    return plan, left


def due_lots(lots: Iterable[LotView], now: datetime) -> list[LotView]:
    return [lot for lot in lots if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now]


# --- redemptions ---------------------------------------------------------------------------------


class RedemptionStatus(enum.StrEnum):
    reserved = "reserved"
    captured = "captured"
    released = "released"


class RewardKind(enum.StrEnum):
    service = "service"  # fulfilled by property (a ticket for the service)
    item = "item"  # handed over by a community worker, from stock


_REDEMPTION_MOVES = {
    (RedemptionStatus.reserved, "capture"): RedemptionStatus.captured,
    (RedemptionStatus.reserved, "release"): RedemptionStatus.released,
}


class RedemptionNotOpen(Exception):
    pass


def next_redemption_status(current: RedemptionStatus, action: str) -> RedemptionStatus:
    """Only a reserved redemption moves, once: captured or released are final."""
    try:
        return _REDEMPTION_MOVES[current, action]
    except KeyError:
        raise RedemptionNotOpen(f"{action} not allowed from {current}") from None


def reward_is_active(enabled: bool, active_from: datetime | None, active_until: datetime | None, at: datetime) -> bool:
    if not enabled:
        return False
    if active_from is not None and at < active_from:
        return False
    return not (active_until is not None and at >= active_until)


def within_resident_limit(limit: int | None, already: int, quantity: int) -> bool:
    """A per-resident limit counts units in reserved or captured redemptions of the reward."""
    return limit is None or already + quantity <= limit


def pledge_takes_part(status: str, deadline: datetime, at: datetime) -> bool:
    """A pledge counts only before the offer's deadline and while it has not lapsed; an offer that
    reached its minimum still takes pledges until the deadline (each gets its order)."""
    return status != "lapsed" and at < deadline


def pledge_minimum_met(households: int, minimum: int) -> bool:
    """The offer opens when at least `minimum` households pledged."""
    return households >= minimum
