"""Property's rules as plain functions over plain values: no I/O, tested alone.

The heart is `TRANSITIONS`, the one table of what each role may do to a ticket in each status
(工单状态流转表). `next_status` is the only place a ticket's status is decided; the use cases call
it and nothing else changes a status. The guards beside it hold the pricing rules: a basic
category (基本物业服务) never carries a charge, and paid work never starts without an approved quote.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.kit.problems import Problem

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class Category(StrEnum):
    repair = "repair"
    cleaning = "cleaning"
    complaint = "complaint"
    consultation = "consultation"
    service = "service"  # a value-added service (增值服务) from the catalogue


BASIC_CATEGORIES = frozenset({Category.repair, Category.cleaning, Category.complaint, Category.consultation})


class Priority(StrEnum):
    normal = "normal"
    urgent = "urgent"


class Source(StrEnum):
    """Who filed a ticket: a resident, or the system for another service's incident (no resident)."""

    resident = "resident"
    security = "security"  # an alarm or a device outage from the security service


class Status(StrEnum):
    assigned = "assigned"  # routed to a steward, not yet accepted
    queued = "queued"  # in the community queue: any steward may accept it
    accepted = "accepted"
    quoted = "quoted"  # a price awaits the resident's approval
    approved = "approved"  # the resident approved the quote
    in_progress = "in_progress"
    paused = "paused"  # waiting on the resident or on parts: the SLA clock stops
    completed = "completed"  # awaiting the resident's confirmation
    confirmed = "confirmed"
    closed = "closed"
    cancelled = "cancelled"


class Role(StrEnum):
    resident = "resident"
    steward = "steward"
    property_admin = "property_admin"
    system = "system"  # the SLA job, the consumers, and an incident's end closing its ticket


class Action(StrEnum):
    submit = "submit"
    cancel = "cancel"
    approve_quote = "approve_quote"
    reject_quote = "reject_quote"
    confirm = "confirm"
    return_work = "return_work"
    rate = "rate"
    hurry = "hurry"
    accept = "accept"
    start = "start"
    pause = "pause"
    resume = "resume"
    quote = "quote"
    complete = "complete"
    follow_up = "follow_up"
    hand_over = "hand_over"
    reassign = "reassign"
    close = "close"
    escalate = "escalate"


S, A, R = Status, Action, Role

# Statuses in which the ticket is still someone's work (the steward queue shows these).
OPEN_STATUSES = frozenset({S.assigned, S.queued, S.accepted, S.quoted, S.approved, S.in_progress, S.paused})
# Statuses whose deadline is the response deadline (nobody has taken the ticket yet).
AWAITING_RESPONSE = frozenset({S.assigned, S.queued})
# Statuses only `start` leads into (directly or on from there): paid work there needs an approved quote.
WORK_STARTED = frozenset({S.in_progress, S.paused, S.completed, S.confirmed})
# Statuses whose resolution deadline the SLA job watches; a paused ticket's clock is stopped.
RESOLUTION_WATCHED = frozenset({S.accepted, S.quoted, S.approved, S.in_progress})


def _table() -> dict[tuple[Status, Action, Role], Status]:
    t: dict[tuple[Status, Action, Role], Status] = {}

    def allow(sources: Iterable[Status], action: Action, role: Role, target: Status | None = None) -> None:
        for source in sources:
            t[source, action, role] = source if target is None else target

    # Residents (住户)
    allow([S.assigned, S.queued, S.accepted, S.quoted, S.approved], A.cancel, R.resident, S.cancelled)
    allow([S.quoted], A.approve_quote, R.resident, S.approved)
    allow([S.quoted], A.reject_quote, R.resident, S.accepted)
    allow([S.completed], A.confirm, R.resident, S.confirmed)
    allow([S.completed], A.return_work, R.resident, S.in_progress)
    allow([S.confirmed, S.closed], A.rate, R.resident)
    allow([S.assigned, S.queued, S.accepted, S.approved, S.in_progress, S.paused], A.hurry, R.resident)
    # Stewards (管家)
    allow([S.assigned, S.queued], A.accept, R.steward, S.accepted)
    allow([S.accepted, S.approved], A.start, R.steward, S.in_progress)
    allow([S.in_progress], A.pause, R.steward, S.paused)
    allow([S.paused], A.resume, R.steward, S.in_progress)
    allow([S.accepted], A.quote, R.steward, S.quoted)
    allow([S.in_progress], A.complete, R.steward, S.completed)
    allow([S.completed, S.confirmed, S.closed], A.follow_up, R.steward)
    allow([S.assigned, S.accepted, S.approved, S.in_progress, S.paused], A.hand_over, R.steward)
    # Property admins (物业经理)
    allow(
        [S.assigned, S.queued, S.accepted, S.quoted, S.approved, S.in_progress, S.paused],
        A.reassign,
        R.property_admin,
    )
    t[S.queued, A.reassign, R.property_admin] = S.assigned
    allow([S.completed, S.confirmed], A.close, R.property_admin, S.closed)
    allow(OPEN_STATUSES, A.cancel, R.property_admin, S.cancelled)
    # The SLA job records its escalation as a step, so the trail shows it.
    allow(OPEN_STATUSES, A.escalate, R.system)
    # A system-filed ticket is closed by its incident's end (a device back online, an alarm cleared).
    allow([*OPEN_STATUSES, S.completed], A.close, R.system, S.closed)
    return t


TRANSITIONS: dict[tuple[Status, Action, Role], Status] = _table()


def _actions_by_role() -> dict[Role, frozenset[Action]]:
    held: dict[Role, set[Action]] = {role: set() for role in Role}
    for _source, action, role in TRANSITIONS:
        held[role].add(action)
    return {role: frozenset(actions) for role, actions in held.items()}


# What each role may do in some status: an action outside its set is a missing right (403), an
# action inside it refused in the ticket's status is a state conflict (409).
ROLE_ACTIONS: dict[Role, frozenset[Action]] = _actions_by_role()


class TransitionNotAllowed(Problem):
    slug = "property/transition-not-allowed"
    status = 409
    title_zh = "当前状态下不允许该操作"
    title_en = "This action is not allowed in the ticket's status"


class ActionNotPermitted(Problem):
    slug = "property/action-not-permitted"
    status = 403
    title_zh = "您的角色无权执行该操作"
    title_en = "Your role may not do this to a ticket"


class BasicServiceIsFree(Problem):
    slug = "property/basic-service-is-free"
    status = 409
    title_zh = "基本物业服务零收费, 不能报价"
    title_en = "A basic service is free and cannot carry a charge"


class QuoteNotApproved(Problem):
    slug = "property/quote-not-approved"
    status = 409
    title_zh = "有偿服务须经住户确认报价后才能开工"
    title_en = "Paid work needs the resident's approval of the quote before it starts"


def next_status(current: Status, action: Action, role: Role) -> Status:
    """The status after `role` does `action`; refuses anything the table does not hold.

    A role that may never do the action lacks the right (`ActionNotPermitted`, 403); a role that may
    do it, only not in this status, meets a state conflict (`TransitionNotAllowed`, 409).
    """
    try:
        return TRANSITIONS[current, action, role]
    except KeyError:
        refusal = ActionNotPermitted if action not in ROLE_ACTIONS[role] else TransitionNotAllowed
        raise refusal(
            (
                f"状态 {current} 下角色 {role} 不能执行 {action}",
                f"Role {role} may not {action} a ticket that is {current}",
            ),
            ticket_status=str(current),
            action=str(action),
            role=str(role),
        ) from None


def is_paid(category: Category) -> bool:
    return category not in BASIC_CATEGORIES


def check_quote(category: Category, amount_fen: int) -> None:
    """Only a value-added service may be priced; a basic one never is, whatever the steward enters."""
    if not is_paid(category):
        raise BasicServiceIsFree(("基本物业服务不能报价", f"A {category} ticket is a basic service and is free"))
    if amount_fen <= 0:
        raise BasicServiceIsFree(("报价须为正数", "A quote must be a positive amount of fen"))


def check_start(category: Category, quote_approved: bool) -> None:
    if is_paid(category) and not quote_approved:
        raise QuoteNotApproved()


def choose_role(held: Iterable[str], current: Status, action: Action) -> Role:
    """Which of the caller's roles acts: the one the table lets do this now, else one that may do it in
    another status (so the refusal is the state's, 409), else the caller's first (the right's, 403)."""
    ticket_roles = [r for r in (R.property_admin, R.steward, R.resident) if r.value in set(held)]
    for role in ticket_roles:
        if (current, action, role) in TRANSITIONS:
            return role
    for role in ticket_roles:
        if action in ROLE_ACTIONS[role]:
            return role
    return ticket_roles[0] if ticket_roles else R.resident


# --- the audit trail -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    action: Action
    role: Role
    from_status: Status | None
    to_status: Status


class TrailBroken(ValueError):
    pass


def replay(steps: Sequence[Step]) -> Status:
    """The status the trail leads to; raises if any step is not a table transition or links badly."""
    if not steps or steps[0].action != A.submit or steps[0].from_status is not None:
        raise TrailBroken("the trail must start with the submission")
    status = steps[0].to_status
    if status not in AWAITING_RESPONSE:
        raise TrailBroken(f"a ticket cannot be submitted as {status}")
    for step in steps[1:]:
        if step.from_status != status:
            raise TrailBroken(f"step {step.action} starts from {step.from_status}, not {status}")
        if TRANSITIONS.get((status, step.action, step.role)) != step.to_status:
            raise TrailBroken(f"{step.role} {step.action} from {status} to {step.to_status} is not in the table")
        status = step.to_status
    return status


# --- SLA -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaPolicy:
    response_minutes: int
    resolution_minutes: int


# Used when the community has no settings row for a category and priority.
DEFAULT_SLA: dict[tuple[Category, Priority], SlaPolicy] = {
    (Category.repair, Priority.normal): SlaPolicy(30, 24 * 60),
    (Category.repair, Priority.urgent): SlaPolicy(10, 4 * 60),
    (Category.cleaning, Priority.normal): SlaPolicy(60, 8 * 60),
    (Category.cleaning, Priority.urgent): SlaPolicy(20, 2 * 60),
    (Category.complaint, Priority.normal): SlaPolicy(60, 72 * 60),
    (Category.complaint, Priority.urgent): SlaPolicy(30, 24 * 60),
    (Category.consultation, Priority.normal): SlaPolicy(60, 24 * 60),
    (Category.consultation, Priority.urgent): SlaPolicy(30, 8 * 60),
    (Category.service, Priority.normal): SlaPolicy(60, 48 * 60),
    (Category.service, Priority.urgent): SlaPolicy(30, 12 * 60),
}


_ALARM_LABELS = {
    "fire": "火警",
    "smoke": "烟感报警",
    "door_forced": "门被强行打开",
    "door_held_open": "门长时间未关",
    "inactivity": "独居老人长时间无活动",
}


def alarm_label(kind: str) -> str:
    return _ALARM_LABELS.get(kind, kind)


def alarm_incident(alarm_id: str) -> str:
    """A security alarm's ticket key: security raises one alarm per incident, so its id is the incident."""
    return f"alarm:{alarm_id}"


def outage_incident(device_id: str, offline_since: datetime) -> str:
    """A device outage's ticket key: the device and when it went offline (its return names the same)."""
    return f"outage:{device_id}:{offline_since.astimezone(UTC).isoformat()}"


def deadlines(submitted_at: datetime, policy: SlaPolicy) -> tuple[datetime, datetime]:
    return (
        submitted_at + timedelta(minutes=policy.response_minutes),
        submitted_at + timedelta(minutes=policy.resolution_minutes),
    )


def resumed_deadline(resolution_due_at: datetime, paused_at: datetime, resumed_at: datetime) -> datetime:
    """Paused time does not count: the resolution deadline moves by the length of the pause."""
    return resolution_due_at + max(resumed_at - paused_at, timedelta(0))


def queue_deadline(status: Status, response_due_at: datetime, resolution_due_at: datetime) -> datetime:
    """What the steward queue sorts by: the deadline the ticket is racing now."""
    return response_due_at if status in AWAITING_RESPONSE else resolution_due_at


# --- duty roster and routing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    weekday: int  # 0 = Monday, in the community's local time
    start_minute: int
    end_minute: int  # exclusive; 1440 = midnight


def on_duty(shifts: Iterable[Shift], at: datetime) -> bool:
    local = at.astimezone(LOCAL_TZ)
    minute = local.hour * 60 + local.minute
    return any(s.weekday == local.weekday() and s.start_minute <= minute < s.end_minute for s in shifts)


@dataclass(frozen=True)
class Route:
    steward_id: str | None
    status: Status
    via: str  # "steward", "backup" or "queue"


def route_ticket(steward_id: str | None, steward_on_duty: bool, backup_id: str | None, backup_on_duty: bool) -> Route:
    """The building's steward on duty, else the backup on duty, else the community queue."""
    if steward_id is not None and steward_on_duty:
        return Route(steward_id, S.assigned, "steward")
    if backup_id is not None and backup_on_duty:
        return Route(backup_id, S.assigned, "backup")
    return Route(None, S.queued, "queue")


# --- money and points -----------------------------------------------------------------------------


class PaymentMethod(StrEnum):
    money = "money"  # through the payment provider
    points = "points"  # through governance's points ledger


class PaymentStatus(StrEnum):
    pending = "pending"
    paid = "paid"
    rejected = "rejected"
    failed = "failed"


# A ticket has at most one live order: another may be placed only after a rejection or failure.
LIVE_PAYMENTS = frozenset({PaymentStatus.pending, PaymentStatus.paid})
# A ticket's `payment_status` before any order: the status of its latest order otherwise.
NO_PAYMENT = "none"


def points_for(amount_fen: int, fen_per_point: int) -> int:
    """Points that pay for an amount: rounded up, so points never pay less than the price."""
    return math.ceil(amount_fen / fen_per_point)


def local_day(at: datetime) -> str:
    return at.astimezone(LOCAL_TZ).date().isoformat()


# --- photos -------------------------------------------------------------------------------------

_MAGIC: list[tuple[bytes, str]] = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
]


def sniff_image(head: bytes) -> str | None:
    """The image type its first bytes show (JPEG, PNG or WebP), or None: headers are not trusted."""
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
