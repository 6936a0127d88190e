"""Working a ticket: every change of status goes through `act`.

`act` asks `domain.next_status` (the one transition table) which status follows, applies what the
action carries, and appends the step to the audit trail in the same transaction. The ticket row is
locked (`SELECT ... FOR UPDATE`), so of stewards racing to accept a queue ticket exactly one wins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.property import domain
from services.property.domain import Action, Category, Role, Status
from services.property.events import TicketCompleted, TicketReassigned, TicketStatusChanged, publisher
from services.property.models import Ticket
from services.property.photos import photo_ids
from services.property.problems import ActionNotPermitted, AlreadyRated, HurryTooSoon, NotAssignee
from services.property.registry import steward_in
from services.property.schemas import FollowUpIn, HandOverIn, PauseIn, QuoteIn, RateIn, Reason, TicketPublic
from services.property.settings import Settings
from services.property.tickets import public, record_step
from services.property.visibility import is_guard, visible_ticket

Payload = Reason | QuoteIn | PauseIn | HandOverIn | RateIn | FollowUpIn | None


async def act(
    session: AsyncSession,
    who: Principal,
    ticket_id: str,
    action: Action,
    payload: Payload,
    settings: Settings,
) -> TicketPublic:
    """Do one action on a ticket: the table decides, the step is recorded, the change is published."""
    async with transaction(session):
        at = datetime.now(UTC)
        ticket = await visible_ticket(session, who, ticket_id, lock=True)
        if is_guard(who):
            # A guard reads an alarm's ticket (and answers the alarm in security); the steward works it.
            raise ActionNotPermitted(("保安不能处理工单", "A security guard reads security tickets but does not work them"))
        current = Status(ticket.status)
        role = domain.choose_role(who.roles, current, action)
        target = domain.next_status(current, action, role)
        if (
            role == Role.steward
            and not (action == Action.accept and current == Status.queued)
            and ticket.assignee_id != who.subject
        ):
            raise NotAssignee()
        note: str | None = payload.reason if isinstance(payload, Reason | PauseIn) else None
        extra: dict[str, Any] = {}
        match action:
            case Action.accept:
                ticket.assignee_id = who.subject
                ticket.responded_at = ticket.responded_at or at
            case Action.start:
                domain.check_start(Category(ticket.category), ticket.quote_approved_at is not None)
            case Action.quote:
                assert isinstance(payload, QuoteIn)
                domain.check_quote(Category(ticket.category), payload.amount_fen)
                ticket.quote_fen, ticket.quote_approved_at, note = payload.amount_fen, None, payload.note
                extra["amount_fen"] = payload.amount_fen
            case Action.approve_quote:
                ticket.quote_approved_at = at
            case Action.reject_quote:
                ticket.quote_fen = None
            case Action.pause:
                assert isinstance(payload, PauseIn)
                ticket.paused_at = at
                extra["waiting_on"] = payload.waiting_on
            case Action.resume:
                paused_at = ticket.paused_at or at
                ticket.resolution_due_at = domain.resumed_deadline(ticket.resolution_due_at, paused_at, at)
                ticket.paused_minutes += int((at - paused_at).total_seconds() // 60)
                ticket.paused_at = None
            case Action.complete:
                ticket.completed_at = at
            case Action.return_work:
                ticket.completed_at = None
            case Action.rate:
                assert isinstance(payload, RateIn)
                if ticket.rating_overall is not None:
                    raise AlreadyRated()
                ticket.rating_overall, ticket.rating_speed = payload.overall, payload.speed
                ticket.rating_comment = payload.comment
                extra.update(overall=payload.overall, speed=payload.speed)
            case Action.hurry:
                _check_hurry(ticket, at, settings.hurry_interval_minutes)
                ticket.hurry_count += 1
                ticket.last_hurried_at = at
            case Action.follow_up:
                assert isinstance(payload, FollowUpIn)
                ticket.follow_up_note = note = payload.note
            case Action.hand_over | Action.reassign:
                assert isinstance(payload, HandOverIn)
                await steward_in(session, who.community, payload.to_staff_id)
                extra["from_assignee"] = ticket.assignee_id
                ticket.assignee_id, note = payload.to_staff_id, payload.reason
                extra["to_assignee"] = payload.to_staff_id
            case _:
                pass
        ticket.status = target.value
        ticket.due_at = domain.queue_deadline(target, ticket.response_due_at, ticket.resolution_due_at)
        record_step(session, ticket, who.subject, role, action, current, note, **extra)
        await _publish_change(session, ticket, current, action, role, who.subject, at)
        if "to_assignee" in extra:
            await publisher.publish(
                session,
                TicketReassigned(
                    ticket_id=ticket.id,
                    community=ticket.community,
                    category=ticket.category,
                    priority=ticket.priority,
                    status=ticket.status,
                    from_assignee_id=extra["from_assignee"],
                    assignee_id=extra["to_assignee"],
                    actor_id=who.subject,
                    at=at,
                ),
                key=ticket.id,
            )
        await session.flush()
        photos = await photo_ids(session, [ticket.id])
        return public(ticket, photos[ticket.id])


async def close_for_incident(session: AsyncSession, ticket: Ticket, actor: str, note: str, at: datetime) -> bool:
    """Close a system-filed ticket because its incident is over (the caller holds the row lock);
    a ticket already closed or cancelled stays as it is."""
    current = Status(ticket.status)
    if (current, Action.close, Role.system) not in domain.TRANSITIONS:
        return False
    ticket.status = domain.next_status(current, Action.close, Role.system).value
    ticket.due_at = domain.queue_deadline(Status(ticket.status), ticket.response_due_at, ticket.resolution_due_at)
    record_step(session, ticket, actor, Role.system, Action.close, current, note)
    await _publish_change(session, ticket, current, Action.close, Role.system, actor, at)
    return True


def _check_hurry(ticket: Ticket, at: datetime, interval_minutes: int) -> None:
    """A resident may hurry (催单) a ticket at most once per interval."""
    if ticket.last_hurried_at is not None and at - ticket.last_hurried_at < timedelta(minutes=interval_minutes):
        raise HurryTooSoon(
            (
                f"每 {interval_minutes} 分钟最多催单一次",
                f"At most one hurry every {interval_minutes} minutes",
            )
        )


async def _publish_change(
    session: AsyncSession,
    ticket: Ticket,
    current: Status,
    action: Action,
    role: Role,
    actor: str,
    at: datetime,
) -> None:
    """Every step is a status change event (self-loops too); a completion is also its own event."""
    await publisher.publish(
        session,
        TicketStatusChanged(
            ticket_id=ticket.id,
            community=ticket.community,
            category=ticket.category,
            status=ticket.status,
            from_status=current.value,
            action=action.value,
            role=role.value,
            actor_id=actor,
            assignee_id=ticket.assignee_id,
            at=at,
        ),
        key=ticket.id,
    )
    if action == Action.complete and ticket.completed_at is not None:
        await publisher.publish(
            session,
            TicketCompleted(
                ticket_id=ticket.id,
                community=ticket.community,
                category=ticket.category,
                status=ticket.status,
                assignee_id=ticket.assignee_id,
                resident_id=ticket.resident_id,
                completed_at=ticket.completed_at,
                on_time=ticket.completed_at <= ticket.resolution_due_at,
            ),
            key=ticket.id,
        )
