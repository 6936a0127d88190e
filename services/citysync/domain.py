"""The feed's rules, with no I/O: which domain event becomes which feed record, when it happened, the
community's day, and what a record adds to the day's statistics. How each field is de-identified is
in `privacy.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class Scene(StrEnum):
    timebank = "timebank"
    parking = "parking"
    property = "property"
    governance = "governance"
    security = "security"
    stats = "stats"  # the daily statistics feed, built by the job rather than from one event


SCENES: tuple[str, ...] = tuple(s.value for s in Scene)


@dataclass(frozen=True)
class RecordKind:
    """What one domain event type becomes: a record of `record_type` in `scene`'s feed."""

    scene: Scene
    record_type: str
    subject_field: str  # the aggregate the record is about (kept, or hashed if its rule says so)
    time_field: str | None  # where the event's own time is; the envelope's time otherwise
    schema_version: int = 1


RECORD_KINDS: Mapping[str, RecordKind] = {
    "timebank.service.confirmed.v1": RecordKind(Scene.timebank, "service_confirmed", "transfer_id", "confirmed_at"),
    "timebank.transfer.reversed.v1": RecordKind(Scene.timebank, "transfer_reversed", "transfer_id", None),
    "timebank.hours.expired.v1": RecordKind(Scene.timebank, "hours_expired", "transfer_id", "expired_at"),
    "parking.booking.completed.v1": RecordKind(Scene.parking, "booking_completed", "booking_id", "completed_at"),
    "property.building.registered.v1": RecordKind(Scene.property, "building_registered", "building_id", None),
    "property.household.registered.v1": RecordKind(Scene.property, "household_registered", "household_id", None),
    "property.resident.registered.v1": RecordKind(Scene.property, "resident_registered", "resident_id", None),
    "property.ticket.submitted.v1": RecordKind(Scene.property, "ticket_submitted", "ticket_id", "submitted_at"),
    "property.ticket.status_changed.v1": RecordKind(Scene.property, "ticket_status_changed", "ticket_id", "at"),
    "property.ticket.completed.v1": RecordKind(Scene.property, "ticket_completed", "ticket_id", "completed_at"),
    "property.ticket.sla_breached.v1": RecordKind(Scene.property, "ticket_sla_breached", "ticket_id", None),
    "property.payment.settled.v1": RecordKind(Scene.property, "payment_settled", "payment_id", None),
    "governance.points.granted.v1": RecordKind(Scene.governance, "points_granted", "grant_id", "granted_at"),
    "governance.redemption.reserved.v1": RecordKind(Scene.governance, "redemption_reserved", "redemption_id", None),
    "governance.redemption.captured.v1": RecordKind(Scene.governance, "redemption_captured", "redemption_id", None),
    "governance.redemption.released.v1": RecordKind(Scene.governance, "redemption_released", "redemption_id", None),
    "governance.points_payment.settled.v1": RecordKind(Scene.governance, "points_payment_settled", "payment_id", None),
    "governance.decision.closed.v1": RecordKind(Scene.governance, "decision_closed", "decision_id", "closed_at"),
    # 智慧安防: visitors, doors' batches of accesses (counts only) and alarms; nothing names a person
    # or a household (the security events carry no resident, no credential, no household).
    "security.pass.issued.v1": RecordKind(Scene.security, "visitor_pass_issued", "pass_id", None),
    "security.access.recorded.v1": RecordKind(Scene.security, "accesses_recorded", "device_id", None),
    "security.alarm.raised.v1": RecordKind(Scene.security, "alarm_raised", "alarm_id", "raised_at"),
    "security.alarm.cleared.v1": RecordKind(Scene.security, "alarm_cleared", "alarm_id", "cleared_at"),
    # An alarm's first answer by staff: its response time counts in the day's median (who answered
    # has no rule, so it stays inside the platform).
    "security.alarm.acknowledged.v1": RecordKind(Scene.security, "alarm_answered", "alarm_id", "acknowledged_at"),
}
DAILY_STATISTICS = "daily_statistics"
STATS_SCHEMA_VERSION = 1


def event_time(kind: RecordKind, data: Mapping[str, Any], envelope_time: datetime) -> datetime:
    """The time the fact happened: the event's own time field when it has a valid one."""
    raw = data.get(kind.time_field) if kind.time_field else None
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    if envelope_time.tzinfo is None:
        return envelope_time.replace(tzinfo=UTC)
    return envelope_time.astimezone(UTC)


def local_day(at: datetime) -> date:
    """The community's calendar day (Asia/Shanghai) of an instant."""
    return at.astimezone(LOCAL_TZ).date()


def day_closed(day: date, now: datetime, grace: timedelta) -> bool:
    """A day's statistics are final once the local day has ended and the grace period has passed."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=LOCAL_TZ)
    return now >= end + grace


# --- daily statistics ----------------------------------------------------------------------------

# One counter per kind of security alarm (the kinds services/security/domain.py declares).
ALARM_KINDS: tuple[str, ...] = ("fire", "smoke", "door_forced", "door_held_open", "inactivity")
ALARM_COUNTERS: tuple[str, ...] = tuple(f"alarms_{kind}" for kind in ALARM_KINDS)

STAT_COUNTERS: tuple[str, ...] = (
    "services_confirmed",
    "minutes_served",
    "minutes_reversed",
    "bookings_completed",
    "booked_minutes",
    "parking_fee_fen",
    "tickets_submitted",
    "tickets_completed",
    "tickets_on_time",
    "sla_breaches",
    "redemptions_reserved",
    "redemptions_captured",
    "redemptions_released",
    "points_redeemed",
    "points_granted",
    "visitor_passes",
    "entries",
    "alarms_raised",
    *ALARM_COUNTERS,
    "alarms_answered",
)


@dataclass(frozen=True)
class StatsDelta:
    """What one record adds to its community's day. `minutes_by_type` is keyed by service type."""

    counters: Mapping[str, int]
    minutes_by_type: Mapping[str, int]
    spot: str | None = None  # a (hashed) spot used that day, for the occupancy figure
    response_s: int | None = None  # an alarm's response time that day, for the median


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _minutes_between(start: Any, end: Any) -> int:
    try:
        a, b = datetime.fromisoformat(str(start)), datetime.fromisoformat(str(end))
    except ValueError:
        return 0
    if a.tzinfo is None or b.tzinfo is None or b <= a:
        return 0
    return int((b - a).total_seconds()) // 60


def stats_delta(record_type: str, payload: Mapping[str, Any], reversed_service_type: str | None = None) -> StatsDelta | None:
    """What a feed record adds to the day's statistics; None when it adds nothing.

    A reversal subtracts its minutes on the day of the reversal (statistics are never rewritten),
    from the service type of the transfer it corrects when that is known.
    """
    if record_type == "service_confirmed":
        minutes = _int(payload, "minutes")
        service_type = str(payload.get("service_type") or "unknown")
        return StatsDelta({"services_confirmed": 1, "minutes_served": minutes}, {service_type: minutes})
    if record_type == "transfer_reversed":
        minutes = _int(payload, "minutes")
        by_type = {reversed_service_type: -minutes} if reversed_service_type else {}
        return StatsDelta({"minutes_reversed": minutes, "minutes_served": -minutes}, by_type)
    if record_type == "booking_completed":
        spot = payload.get("spot_id")
        return StatsDelta(
            {
                "bookings_completed": 1,
                "booked_minutes": _minutes_between(payload.get("start"), payload.get("end")),
                "parking_fee_fen": _int(payload, "fee_fen"),
            },
            {},
            spot if isinstance(spot, str) else None,
        )
    if record_type == "ticket_submitted":
        return StatsDelta({"tickets_submitted": 1}, {})
    if record_type == "ticket_completed":
        return StatsDelta({"tickets_completed": 1, "tickets_on_time": 1 if payload.get("on_time") is True else 0}, {})
    if record_type == "ticket_sla_breached":
        return StatsDelta({"sla_breaches": 1}, {})
    if record_type == "points_granted":
        return StatsDelta({"points_granted": _int(payload, "points")}, {})
    if record_type == "redemption_reserved":
        return StatsDelta({"redemptions_reserved": 1}, {})
    if record_type == "redemption_captured":
        return StatsDelta({"redemptions_captured": 1, "points_redeemed": _int(payload, "points")}, {})
    if record_type == "redemption_released":
        return StatsDelta({"redemptions_released": 1}, {})
    if record_type == "visitor_pass_issued":
        return StatsDelta({"visitor_passes": 1}, {})
    if record_type == "accesses_recorded":
        return StatsDelta({"entries": _int(payload, "in_count")}, {})
    if record_type == "alarm_raised":
        kind = payload.get("kind")
        by_kind = {f"alarms_{kind}": 1} if kind in ALARM_KINDS else {}
        return StatsDelta({"alarms_raised": 1, **by_kind}, {})
    if record_type == "alarm_answered":
        seconds = payload.get("response_s")
        valid = isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0
        return StatsDelta({"alarms_answered": 1}, {}, response_s=seconds if valid else None)
    return None


def median(values: Sequence[int]) -> int | None:
    """The median, rounded down to a whole value (no floats in the feed); None when there is none."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2


def permille(part: int, whole: int) -> int | None:
    """An integer rate in per mille (no floats in the feed); None when there is nothing to divide."""
    return part * 1000 // whole if whole > 0 else None


def daily_statistics(
    community: str,
    day: date,
    revision: int,
    counters: Mapping[str, int],
    minutes_by_type: Mapping[str, int],
    spots_used: int,
    response_times: Sequence[int] = (),
) -> dict[str, Any]:
    """The payload of one daily statistics record."""
    figures = {name: int(counters.get(name, 0)) for name in STAT_COUNTERS}
    return {
        "community": community,
        "day": day.isoformat(),
        "revision": revision,
        **figures,
        "minutes_by_service_type": {k: int(v) for k, v in sorted(minutes_by_type.items())},
        "spots_used": spots_used,
        # The share of the day the spots that were booked that day were occupied by bookings.
        "occupancy_permille": permille(figures["booked_minutes"], spots_used * 24 * 60),
        "sla_on_time_permille": permille(figures["tickets_on_time"], figures["tickets_completed"]),
        # Seconds from an alarm to its first answer by staff, over the alarms answered that day.
        "median_alarm_response_s": median(response_times),
    }


def parse_cursor(cursor: str | None) -> int:
    """A feed cursor is the last sequence number read, as a decimal string; none means the start."""
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValueError("cursor must be a non-negative integer")
    return int(cursor)
