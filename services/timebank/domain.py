"""Pure rules of the time bank: no I/O, unit-tested alone.

Amounts are integer minutes. An account's *posted balance* is credits_posted - debits_posted; its
*available balance* also subtracts debits_pending, because hours promised to a volunteer are no
longer the payer's to spend (TigerBeetle's "debits must not exceed credits", pending included).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

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

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

SERVICE_TYPES = ("companionship", "meal", "bathing", "medical_escort", "cleaning", "shopping", "other")
SERVICE_TYPE_ZH = {
    "companionship": "陪伴聊天",
    "meal": "助餐",
    "bathing": "助浴",
    "medical_escort": "助医",
    "cleaning": "保洁",
    "shopping": "代购",
    "other": "其他",
}


class CareStatus(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    LOGGED = "logged"  # checked out: a pending transfer awaits confirmation
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class CareAction(StrEnum):
    ACCEPT = "accept"
    CHECK_IN = "check_in"
    CHECK_OUT = "check_out"
    CONFIRM = "confirm"
    DISPUTE = "dispute"
    EXPIRE = "expire"
    CANCEL = "cancel"


CARE_TRANSITIONS: dict[tuple[CareStatus, CareAction], CareStatus] = {
    (CareStatus.OPEN, CareAction.ACCEPT): CareStatus.ACCEPTED,
    (CareStatus.OPEN, CareAction.CANCEL): CareStatus.CANCELLED,
    (CareStatus.ACCEPTED, CareAction.CHECK_IN): CareStatus.IN_PROGRESS,
    (CareStatus.ACCEPTED, CareAction.CANCEL): CareStatus.CANCELLED,
    (CareStatus.IN_PROGRESS, CareAction.CHECK_OUT): CareStatus.LOGGED,
    (CareStatus.LOGGED, CareAction.CONFIRM): CareStatus.CONFIRMED,
    (CareStatus.LOGGED, CareAction.DISPUTE): CareStatus.DISPUTED,
    (CareStatus.LOGGED, CareAction.EXPIRE): CareStatus.EXPIRED,
}


def next_care_status(current: CareStatus | str, action: CareAction) -> CareStatus:
    try:
        return CARE_TRANSITIONS[CareStatus(current), action]
    except KeyError:
        raise WrongCareRequestState.of(str(current), str(action)) from None


def age_on(birth: date, day: date) -> int:
    """Completed years of age on `day`."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def now_utc() -> datetime:
    """The clock every use case reads (in UTC; dates are local, `local_today`)."""
    return datetime.now(UTC)


def local_today(now: datetime) -> date:
    return now.astimezone(LOCAL_TZ).date()


def check_withdrawal_allowed(birth: date | None, today: date, withdrawal_age: int) -> None:
    """Drawing hours for one's own care starts at the community's withdrawal age (60 or 65)."""
    if birth is None:
        raise AgeNotVerified(("需社工先核实出生日期", "A community worker must verify the birth date first"))
    age = age_on(birth, today)
    if age < withdrawal_age:
        raise BelowWithdrawalAge(
            (f"年满 {withdrawal_age} 岁方可支取", f"Withdrawals start at age {withdrawal_age}"), withdrawal_age=withdrawal_age
        )


def check_first_withdrawal(available: int, first_withdrawal_done: bool, minimum: int) -> None:
    if not first_withdrawal_done and available < minimum:
        raise BelowFirstWithdrawalMinimum(
            (f"首次支取前余额需至少 {minimum} 分钟", f"A first withdrawal needs a balance of at least {minimum} minutes"),
            minimum_minutes=minimum,
            available_minutes=available,
        )


# How far ahead of the server's clock a phone's check-in or check-out time may be.
CLOCK_TOLERANCE = timedelta(minutes=2)


def check_in_time(given: datetime | None, accepted_at: datetime, now: datetime) -> datetime:
    """When the service started: the volunteer's time (now if none), never before the request was
    accepted and never ahead of now beyond the clock tolerance. A backdated check-in would bank
    minutes nobody served. Each refusal names the field `at`."""
    if given is None:
        return max(now, accepted_at)  # the database stamped the acceptance; its clock may run ahead
    at = given.astimezone(UTC)
    if at < accepted_at:
        raise CheckinBeforeAcceptance(
            (
                f"签到时间不能早于接单时间 {accepted_at.isoformat()}",
                f"Check-in cannot be before the acceptance at {accepted_at.isoformat()}",
            ),
            field="at",
            accepted_at=accepted_at.isoformat(),
        )
    if at > now + CLOCK_TOLERANCE:
        raise TimeInFuture(field="at")
    return at


def check_out_time(given: datetime | None, checked_in_at: datetime, now: datetime) -> datetime:
    """When the service ended: the volunteer's time (now if none), after the check-in and never ahead
    of now beyond the clock tolerance."""
    at = now if given is None else given.astimezone(UTC)
    if at > now + CLOCK_TOLERANCE:
        raise TimeInFuture(field="at")
    if at <= checked_in_at:
        raise CheckoutBeforeCheckin(field="at", checked_in_at=checked_in_at.isoformat())
    return at


def served_minutes(checked_in_at: datetime, checked_out_at: datetime) -> int:
    """Whole minutes between check-in and check-out (a started minute is not counted)."""
    if checked_out_at <= checked_in_at:
        raise CheckoutBeforeCheckin()
    minutes = int((checked_out_at - checked_in_at).total_seconds()) // 60
    if minutes < 1:
        raise ServiceTooShort()
    return minutes


def cap_overflow(available: int, cap: int) -> int:
    """Minutes of a member's available balance above the storage cap, which move to the pool in
    the same transaction. The confirmation's twin is `sql/tb_cap_overflow.sql`."""
    return max(0, available - cap)


# Transfers the ledger writes itself, or that already correct one: a reversal would undo a rule
# (the cap, the validity period) or a correction rather than a person's act.
NOT_REVERSIBLE_KINDS = frozenset({"reversal", "overflow", "expiry"})


def _shift_months(at: datetime, months: int) -> datetime:
    """`at` moved by `months` calendar months on the local calendar (Asia/Shanghai), a day the
    target month lacks becoming its last (31 Mar - 1 = 28/29 Feb)."""
    local = at.astimezone(LOCAL_TZ)
    year, month0 = divmod(local.year * 12 + local.month - 1 + months, 12)
    day = min(local.day, calendar.monthrange(year, month0 + 1)[1])
    return local.replace(year=year, month=month0 + 1, day=day)


def hours_valid_from(now: datetime, months: int) -> datetime:
    """When the credits still valid at `now` begin: `months` calendar months earlier, locally."""
    return _shift_months(now, -months)


def hours_expire_on(credited_at: datetime, months: int) -> date:
    """The first local date during which a credit posted at `credited_at` stops being valid by
    `hours_valid_from`: `months` later, or a day after where the month is shorter (a credit of
    31 January, one month, lasts through 28 February). Within a day the period's start only moves
    forward, so the day's last moment decides."""
    day = _shift_months(credited_at, months).date()
    while hours_valid_from(_day_end(day), months) <= credited_at:
        day += timedelta(days=1)
    return day


def _day_end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) + timedelta(days=1, microseconds=-1)


def expiry_outlook(
    available: int, valid_total: int, ageing: Sequence[tuple[datetime, int]], months: int, *, now: datetime, until: datetime
) -> list[tuple[date, int]]:
    """When a member's hours will expire if nothing else changes: (local date, minutes) steps up
    to `until`, merged by day. `valid_total` is the credits still valid at `now` (posted within the
    period, not reversed); `ageing` those of them that may age out by `until`, oldest first. Hours
    already past the period are due today (the job moves them at its next run). Each credit's
    ageing out lowers the valid total; whatever of the available balance it no longer covers
    expires then, by the same rule as `expiring_minutes`."""
    remaining = valid_total
    due = expiring_minutes(available, remaining)
    steps: dict[date, int] = {local_today(now): due} if due else {}
    last_day = local_today(until)
    for credited_at, minutes in ageing:
        day = hours_expire_on(credited_at, months)
        if day > last_day:
            break
        remaining -= minutes
        total = expiring_minutes(available, remaining)
        if total > due:
            steps[day] = steps.get(day, 0) + total - due
            due = total
    return sorted(steps.items())


def expiring_minutes(available: int, recent_credits: int) -> int:
    """Minutes held longer than the validity period (时间到期作废), to move to the pool.

    Every debit (spending, a gift, a donation, an overflow, hours promised to a volunteer) takes
    the member's oldest hours first, so the hours still held are the newest credits: whatever of
    the available balance the credits posted within the period (`recent_credits`) do not account
    for is older. Never more than `available`, so an expiry cannot overdraw.
    """
    return max(0, available - recent_credits)


@dataclass
class Balances:
    """An account's four totals. The database holds the same arithmetic; this is its pure model."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    limited: bool = True  # debits must not exceed credits

    @property
    def posted(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending

    def check_debit(self, amount: int) -> None:
        """The confirmation's twin is `sql/tb_debit_allowed.sql`."""
        if self.limited and self.available < amount:
            raise InsufficientBalance.of(self.available, amount)


def transfer(debit: Balances, credit: Balances, amount: int) -> None:
    if amount <= 0:
        raise ValueError("amount must be positive")
    debit.check_debit(amount)
    debit.debits_posted += amount
    credit.credits_posted += amount


def reserve(debit: Balances, credit: Balances, amount: int) -> None:
    if amount <= 0:
        raise ValueError("amount must be positive")
    debit.check_debit(amount)
    debit.debits_pending += amount
    credit.credits_pending += amount


def void_pending(debit: Balances, credit: Balances, pending: int) -> None:
    debit.debits_pending -= pending
    credit.credits_pending -= pending
