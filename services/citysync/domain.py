"""The feed's rules, with no I/O: which domain event becomes which feed record, how each field is
de-identified (脱敏), how a consumer's own hashes are derived, and what a record adds to the day's
statistics.

`FIELD_RULES` is the one place a field's treatment is declared. A field with no rule is not
exported, so a field a producer adds tomorrow stays inside the platform until someone decides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
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
    stats = "stats"  # the daily statistics feed, built by the job rather than from one event


SCENES: tuple[str, ...] = tuple(s.value for s in Scene)


class Rule(StrEnum):
    keep = "keep"  # exported as it is (a non-personal value: ids of things, amounts, times, codes)
    drop = "drop"  # never exported: names, free text
    never = "never"  # never exported and never stored: ID-card numbers
    keyed_hash = "keyed_hash"  # HMAC per consumer: one consumer can join its records, two cannot
    generalise_building = "generalise_building"  # an address becomes its building ("3幢")
    age_band_5y = "age_band_5y"  # a birth date or an age becomes a five-year band ("60-64")


FIELD_RULES: Mapping[str, Rule] = {
    # --- people and their identifiers ---
    "name": Rule.drop,
    "username": Rule.drop,
    "phone": Rule.keyed_hash,
    "plate": Rule.keyed_hash,
    "id_card": Rule.never,
    "id_number": Rule.never,
    "id_card_number": Rule.never,
    "birth_date": Rule.age_band_5y,
    "age": Rule.age_band_5y,
    "address": Rule.generalise_building,
    "unit": Rule.drop,  # a flat number; the record keeps building_id, which is the generalised address
    "resident_id": Rule.keyed_hash,
    "volunteer_id": Rule.keyed_hash,
    "elder_id": Rule.keyed_hash,
    "member_id": Rule.keyed_hash,
    "owner_id": Rule.keyed_hash,
    "booker_id": Rule.keyed_hash,
    "household_id": Rule.keyed_hash,
    "staff_id": Rule.keyed_hash,
    "steward_id": Rule.keyed_hash,
    "backup_steward_id": Rule.keyed_hash,
    "assignee_id": Rule.keyed_hash,
    "actor_id": Rule.keyed_hash,
    "spot_id": Rule.keyed_hash,  # a private spot is its owner's: joining on it would join owners
    # --- free text ---
    "reason": Rule.drop,
    "description": Rule.drop,
    "comment": Rule.drop,
    "feedback": Rule.drop,
    "note": Rule.drop,
    "title": Rule.drop,
    # --- things, amounts, times, codes ---
    "community": Rule.keep,
    "building_id": Rule.keep,
    "code": Rule.keep,
    "roles": Rule.keep,
    "transfer_id": Rule.keep,
    "reverses_transfer_id": Rule.keep,
    "minutes": Rule.keep,
    "service_type": Rule.keep,
    "confirmed_at": Rule.keep,
    "valid_months": Rule.keep,
    "expired_at": Rule.keep,
    "booking_id": Rule.keep,
    "start": Rule.keep,
    "end": Rule.keep,
    "fee_fen": Rule.keep,
    "owner_share_fen": Rule.keep,
    "completed_at": Rule.keep,
    "ticket_id": Rule.keep,
    "category": Rule.keep,
    "status": Rule.keep,
    "from_status": Rule.keep,
    "action": Rule.keep,
    "role": Rule.keep,
    "service_code": Rule.keep,
    "priority": Rule.keep,
    "routed_via": Rule.keep,
    "response_due_at": Rule.keep,
    "resolution_due_at": Rule.keep,
    "submitted_at": Rule.keep,
    "at": Rule.keep,
    "on_time": Rule.keep,
    "kind": Rule.keep,
    "due_at": Rule.keep,
    "escalated_to": Rule.keep,
    "payment_id": Rule.keep,
    "order_id": Rule.keep,
    "method": Rule.keep,
    "amount_fen": Rule.keep,
    "redemption_id": Rule.keep,
    "grant_id": Rule.keep,
    "source": Rule.keep,
    "trigger": Rule.keep,
    "rule_id": Rule.keep,
    "granted_at": Rule.keep,
    "reward_id": Rule.keep,
    "fulfilment": Rule.keep,
    "points": Rule.keep,
    "quantity": Rule.keep,
}

HASHED_FIELDS: frozenset[str] = frozenset(f for f, r in FIELD_RULES.items() if r is Rule.keyed_hash)


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
}
DAILY_STATISTICS = "daily_statistics"
STATS_SCHEMA_VERSION = 1

# The last line of defence for kept values: anything that looks like a phone, an ID-card number or a
# plate is withheld even from a field whose rule is `keep` (a producer may have put one in a code).
PHONE_RE = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")
ID_CARD_RE = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"\d{3}[\dXx](?![0-9A-Za-z])"
)
PLATE_RE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]"
    r"[A-HJ-NP-Z]·?[A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳]"
)
BUILDING_RE = re.compile(r"(\d+\s*(?:幢|栋|号楼))")


def looks_personal(text: str) -> bool:
    return bool(PHONE_RE.search(text) or ID_CARD_RE.search(text) or PLATE_RE.search(text))


def age_band_5y(age: int) -> str:
    """0-4, 5-9, ... 95-99, then "100+"."""
    if age < 0:
        raise ValueError("negative age")
    if age >= 100:
        return "100+"
    low = age - age % 5
    return f"{low}-{low + 4}"


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def generalise_building(address: str) -> str | None:
    """The building part of an address ("白云社区3幢2单元301" -> "3幢"); None when there is none."""
    match = BUILDING_RE.search(address)
    return re.sub(r"\s+", "", match.group(1)) if match else None


def platform_hash(key: bytes, value: str) -> str:
    """What is stored for an identifier: HMAC-SHA256 under the platform key (never the value itself)."""
    return hmac.new(key, value.strip().encode(), hashlib.sha256).hexdigest()


# HMAC's pads (RFC 2104), as `bytes.translate` tables: key XOR 0x36 and key XOR 0x5c.
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))
_SHA256_BLOCK = 64


class ConsumerHasher:
    """A consumer's view of stored platform hashes: HMAC-SHA256 under the consumer's own key, so its
    hashes are stable for it and unjoinable with another consumer's.

    A page holds many identifiers, so the keyed state is computed once: the SHA-256 states after the
    key's inner and outer pad blocks. Each value then costs two copies of those states and two short
    updates, all in C, without the Python wrapper object per value of `hmac.HMAC.copy()`. The result is exactly
    `hmac.new(key, value, sha256).hexdigest()[:32]` (consumers keep joining on the hashes they have).
    """

    def __init__(self, consumer_key: bytes):
        key = hashlib.sha256(consumer_key).digest() if len(consumer_key) > _SHA256_BLOCK else consumer_key
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def hash(self, stored: str) -> str:
        inner = self._inner.copy()
        inner.update(stored.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:32]

    def payload(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The stored payload as this consumer sees it: each platform hash replaced by its own."""
        return self.rekey(dict(payload))

    def rekey(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` itself with each platform hash replaced by this consumer's own: for a payload
        just decoded for this consumer, which nothing else holds (saves a copy per record).

        `hash` is inlined: this loop is the hot path of every pull. Only values of existing keys are
        replaced, which is safe while iterating."""
        inner_state, outer_state = self._inner.copy, self._outer.copy
        for field_name, stored in payload.items():
            if field_name in HASHED_FIELDS and isinstance(stored, str):
                inner = inner_state()
                inner.update(stored.encode())
                outer = outer_state()
                outer.update(inner.digest())
                payload[field_name] = outer.hexdigest()[:32]
        return payload


def consumer_hash(consumer_key: bytes, stored: str) -> str:
    """A consumer's hash of a stored platform hash: stable for that consumer, unjoinable across consumers."""
    return ConsumerHasher(consumer_key).hash(stored)


def _age_band(value: Any, on: date) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return age_band_5y(value) if value >= 0 else None
    if isinstance(value, str):
        try:
            birth = date.fromisoformat(value[:10])
        except ValueError:
            return None
        age = age_on(birth, on)
        return age_band_5y(age) if age >= 0 else None
    return None


def _kept(value: Any) -> Any:
    """A kept value, with anything that looks like a personal identifier withheld."""
    if isinstance(value, str):
        return None if looks_personal(value) else value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A phone number sent as a JSON number is still a phone number.
        return None if looks_personal(str(value)) else value
    if isinstance(value, list | tuple):
        return [_kept(v) for v in value]
    if isinstance(value, dict):
        # Nested objects have no per-field rules, so none of their content is exported.
        return None
    return value


def deidentify(data: Mapping[str, Any], *, platform_key: bytes, on: date) -> dict[str, Any]:
    """The exportable form of an event's data: every field by its rule; fields without one dropped.

    `on` is the event's date, against which birth dates become age bands.
    """
    out: dict[str, Any] = {}
    for field_name, value in data.items():
        rule = FIELD_RULES.get(field_name)
        if rule is None or rule is Rule.drop or rule is Rule.never:
            continue
        if rule is Rule.keep:
            out[field_name] = _kept(value)
        elif rule is Rule.keyed_hash:
            out[field_name] = platform_hash(platform_key, str(value)) if value not in (None, "") else None
        elif rule is Rule.generalise_building:
            out[field_name] = generalise_building(value) if isinstance(value, str) else None
        elif rule is Rule.age_band_5y:
            out["age_band" if field_name in ("birth_date", "age") else field_name] = _age_band(value, on)
    return out


def for_consumer(payload: Mapping[str, Any], consumer_key: bytes) -> dict[str, Any]:
    """The stored payload as one consumer sees it: each platform hash replaced by the consumer's own."""
    return ConsumerHasher(consumer_key).payload(payload)


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
)


@dataclass(frozen=True)
class StatsDelta:
    """What one record adds to its community's day. `minutes_by_type` is keyed by service type."""

    counters: Mapping[str, int]
    minutes_by_type: Mapping[str, int]
    spot: str | None = None  # a (hashed) spot used that day, for the occupancy figure


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
    return None


def permille(part: int, whole: int) -> int | None:
    """An integer rate in per mille (no floats in the feed); None when there is nothing to divide."""
    return part * 1000 // whole if whole > 0 else None


def daily_statistics(
    community: str, day: date, revision: int, counters: Mapping[str, int], minutes_by_type: Mapping[str, int], spots_used: int
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
    }


def parse_cursor(cursor: str | None) -> int:
    """A feed cursor is the last sequence number read, as a decimal string; none means the start."""
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise ValueError("cursor must be a non-negative integer")
    return int(cursor)
