"""De-identification (脱敏), with no I/O: how each field of a domain event is treated before anything
is stored, and how a consumer's own hashes are derived from the stored ones.

`FIELD_RULES` is the one place a field's treatment is declared. A field with no rule is not
exported, so a field a producer adds tomorrow stays inside the platform until someone decides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any


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
    # A decision's result: its kind, outcome and participation counts; never the options' wording,
    # the winner (a worker's free text) or the receipts.
    "decision_id": Rule.keep,
    "outcome": Rule.keep,
    "roll_voters": Rule.keep,
    "roll_area": Rule.keep,
    "participating_voters": Rule.keep,
    "participating_area": Rule.keep,
    "closed_at": Rule.keep,
    # Security: passes, doors and alarms are things; the counts are counts. `entries` (each access's
    # time) and `relative_id` have no rule, so they are not exported.
    "pass_id": Rule.keep,
    "valid_from": Rule.keep,
    "valid_until": Rule.keep,
    "max_entries": Rule.keep,
    "has_plate": Rule.keep,
    "device_id": Rule.keep,
    "in_count": Rule.keep,
    "out_count": Rule.keep,
    "activity_count": Rule.keep,
    "alarm_id": Rule.keep,
    "raised_at": Rule.keep,
    "cleared_at": Rule.keep,
    # An alarm's answer: when, and how long it took (the answering staff member has no rule).
    "acknowledged_at": Rule.keep,
    "response_s": Rule.keep,
}

HASHED_FIELDS: frozenset[str] = frozenset(f for f, r in FIELD_RULES.items() if r is Rule.keyed_hash)


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
