"""Security's rules, as plain functions over plain values (no I/O): device kinds and outages,
a pass's window and code, alarm kinds and incident keys, the inactivity watch."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class DeviceKind(StrEnum):
    door = "door"  # 门禁 door controller
    gate = "gate"  # 道闸 vehicle or pedestrian gate
    camera = "camera"
    smoke = "smoke"  # 烟感 fire or smoke sensor
    sensor = "sensor"  # in-home motion or door-contact sensor (counts for an inactivity watch)


class Direction(StrEnum):
    entry = "in"
    exit = "out"
    activity = "activity"  # an in-home sensor noticed someone moving


class CredentialKind(StrEnum):
    card = "card"
    face = "face"
    visitor_pass = "pass"
    plate = "plate"


class AlarmKind(StrEnum):
    fire = "fire"
    smoke = "smoke"
    door_forced = "door_forced"
    door_held_open = "door_held_open"
    inactivity = "inactivity"


DEVICE_KINDS = frozenset(DeviceKind)
DIRECTIONS = frozenset(Direction)
CREDENTIAL_KINDS = frozenset(CredentialKind)
ALARM_KINDS = frozenset(AlarmKind)
# The kinds a device may raise itself; inactivity is the service's own rule.
DEVICE_ALARM_KINDS = ALARM_KINDS - {AlarmKind.inactivity}


def sql_in(column: str, members: Iterable[StrEnum]) -> str:
    """A CHECK constraint's condition: the column holds one of the enumeration's values."""
    return f"{column} IN ({', '.join(repr(m.value) for m in sorted(members))})"


def offline_after(heartbeat_s: int, missed_beats: int) -> timedelta:
    """How long a device may stay silent before it counts as offline."""
    return timedelta(seconds=heartbeat_s * missed_beats)


def is_offline(last_seen_at: datetime, heartbeat_s: int, missed_beats: int, now: datetime) -> bool:
    return now - last_seen_at > offline_after(heartbeat_s, missed_beats)


def new_code() -> str:
    """A pass's 6-digit keypad code (secrets, not random: a guessable code opens a door)."""
    return f"{secrets.randbelow(1_000_000):06d}"


def window_problem(valid_from: datetime, valid_until: datetime, now: datetime, max_hours: int) -> str | None:
    """Why a pass's window cannot be issued, or None."""
    if valid_until <= valid_from:
        return "the window ends before it starts"
    if valid_until <= now:
        return "the window is already over"
    if valid_until - valid_from > timedelta(hours=max_hours):
        return f"a pass lasts at most {max_hours} hours"
    return None


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The instants a local calendar day begins and ends (today's expected visitors)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), zone)


def device_incident_key(device_id: str, incident_id: str) -> str:
    """A device names its incident (a smoke event, a forced door); its retries and its other
    replicas' copies share this key."""
    return f"device:{device_id}:{incident_id}"


def inactivity_incident_key(watch_id: str, last_activity_at: datetime) -> str:
    """One incident per silence: the watch and the last activity before it. New activity starts a
    new silence, so the next alarm has a new key; the same silence never alarms twice."""
    return f"inactivity:{watch_id}:{int(last_activity_at.timestamp() * 1_000_000)}"


def inactivity_due(last_activity_at: datetime, hours: int, now: datetime) -> bool:
    return now - last_activity_at >= timedelta(hours=hours)


def response_seconds(raised_at: datetime, answered_at: datetime) -> int:
    """How long an alarm waited for its answer, in whole seconds (never negative: a device's own
    clock may put `raised_at` a little ahead of the server's)."""
    return max(0, int((answered_at - raised_at).total_seconds()))
