# SQLModel types a table's columns as their Python values (`Ticket.id: str`), so every query
# expression looks ill-typed to mypy; these codes are off here, and only here, for that reason.
# mypy: disable-error-code="arg-type,call-overload,attr-defined,operator,no-any-return,assignment,union-attr"
"""Property's use cases: each runs in one transaction and writes its events to the outbox.

Every change to a ticket's status goes through `act`, which asks `domain.next_status` (the one
transition table) and appends the step to the audit trail in the same transaction. Rows that can
be raced are locked (`SELECT ... FOR UPDATE`) or changed by conditional statements.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, encode_cursor, make_page
from services.property import domain
from services.property.domain import Action, Category, Priority, Role, Status
from services.property.events import (
    BuildingRegistered,
    HouseholdRegistered,
    PaymentSettled,
    PointsPaymentRequested,
    PointsPaymentSettled,
    RedemptionFailed,
    RedemptionFulfilled,
    RedemptionReserved,
    ResidentRegistered,
    StaffRegistered,
    TicketCompleted,
    TicketSlaBreached,
    TicketStatusChanged,
    TicketSubmitted,
    publisher,
)
from services.property.models import (
    OPEN_SQL,
    Building,
    CatalogueItem,
    DailyTicketCount,
    Household,
    PaymentOrder,
    Photo,
    Resident,
    RosterShift,
    SlaPolicyRow,
    Staff,
    Ticket,
    TicketStep,
)
from services.property.problems import (
    AlreadyRated,
    AlreadyRegistered,
    DailyLimitReached,
    HurryTooSoon,
    NotAssignee,
    NothingToPay,
    PaymentDeclined,
    PhotoNotImage,
    PhotoTooLarge,
    PhotoUnavailable,
    RecordNotFound,
    ResidentNotRegistered,
    TicketNotFound,
    UnknownBuilding,
    UnknownHousehold,
    UnknownService,
    UnknownStaff,
)
from services.property.schemas import (
    BuildingCreate,
    CatalogueItemCreate,
    FollowUpIn,
    HandOverIn,
    HouseholdCreate,
    PauseIn,
    QuoteIn,
    RateIn,
    Reason,
    ResidentCreate,
    RosterIn,
    ShiftIn,
    SlaPolicyIn,
    SlaPolicyPublic,
    StaffCreate,
    StewardFigures,
    TicketCreate,
    TicketPublic,
)
from services.property.settings import Settings

SLA_JOB_ACTOR = "sla-job"
REDEMPTION_ACTOR = "governance-redemption"


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


async def _flush_unique(session: AsyncSession, what: str) -> None:
    """Flush inside a savepoint so a duplicate becomes a clear problem, not a 500."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise AlreadyRegistered((f"{what}已存在", f"This {what} is already registered")) from None


# --- registry ---------------------------------------------------------------------------------------


async def register_building(session: AsyncSession, who: Principal, data: BuildingCreate) -> Building:
    async with transaction(session):
        building = Building(id=data.id or new_id(), community=who.community, code=data.code, name=data.name)
        session.add(building)
        await _flush_unique(session, "building")
        await _publish_building(session, building)
        return building


async def _publish_building(session: AsyncSession, b: Building) -> None:
    await publisher.publish(
        session,
        BuildingRegistered(
            building_id=b.id,
            community=b.community,
            code=b.code,
            name=b.name,
            steward_id=b.steward_id,
            backup_steward_id=b.backup_steward_id,
        ),
        key=b.id,
    )


async def _building(session: AsyncSession, community: str, building_id: str) -> Building:
    building = (
        await session.execute(select(Building).where(Building.id == building_id, Building.community == community))
    ).scalar_one_or_none()
    if building is None:
        raise UnknownBuilding(("楼栋不存在", f"No building {building_id} in this community"))
    return building


async def register_household(session: AsyncSession, who: Principal, data: HouseholdCreate) -> Household:
    async with transaction(session):
        await _building(session, who.community, data.building_id)
        household = Household(id=data.id or new_id(), community=who.community, building_id=data.building_id, unit=data.unit)
        session.add(household)
        await _flush_unique(session, "household")
        await publisher.publish(
            session,
            HouseholdRegistered(
                household_id=household.id,
                community=who.community,
                building_id=household.building_id,
                unit=household.unit,
            ),
            key=household.id,
        )
        return household


async def register_resident(session: AsyncSession, who: Principal, data: ResidentCreate) -> Resident:
    async with transaction(session):
        household = (
            await session.execute(
                select(Household).where(Household.id == data.household_id, Household.community == who.community)
            )
        ).scalar_one_or_none()
        if household is None:
            raise UnknownHousehold()
        resident = Resident(
            id=data.id or new_id(),
            community=who.community,
            household_id=household.id,
            name=data.name,
            phone=data.phone,
            roles=list(dict.fromkeys(data.roles)),
        )
        session.add(resident)
        await _flush_unique(session, "resident")
        await publisher.publish(
            session,
            ResidentRegistered(
                resident_id=resident.id,
                community=who.community,
                household_id=household.id,
                building_id=household.building_id,
                name=resident.name,
                phone=resident.phone,
                roles=resident.roles,
            ),
            key=resident.id,
        )
        return resident


async def register_staff(session: AsyncSession, who: Principal, data: StaffCreate) -> Staff:
    """Register a staff member; a steward's `buildings` and `backup_for` set each building's cover."""
    async with transaction(session):
        if (data.buildings or data.backup_for) and "steward" not in data.roles:
            raise UnknownStaff(("只有管家可以负责楼栋", "Only a steward can cover buildings"))
        staff = Staff(
            id=data.id or new_id(),
            community=who.community,
            name=data.name,
            username=data.username,
            roles=list(dict.fromkeys(data.roles)),
        )
        session.add(staff)
        await _flush_unique(session, "staff member")
        for building_ids, column in ((data.buildings, "steward_id"), (data.backup_for, "backup_steward_id")):
            for building_id in building_ids:
                building = await _building(session, who.community, building_id)
                setattr(building, column, staff.id)
                await _publish_building(session, building)
        await publisher.publish(
            session,
            StaffRegistered(
                staff_id=staff.id,
                community=who.community,
                name=staff.name,
                username=staff.username,
                roles=staff.roles,
                buildings=data.buildings,
                backup_for=data.backup_for,
            ),
            key=staff.id,
        )
        return staff


async def _steward(session: AsyncSession, community: str, staff_id: str) -> Staff:
    staff = (await session.execute(select(Staff).where(Staff.id == staff_id, Staff.community == community))).scalar_one_or_none()
    if staff is None or "steward" not in staff.roles:
        raise UnknownStaff()
    return staff


async def set_roster(session: AsyncSession, who: Principal, staff_id: str, data: RosterIn) -> list[ShiftIn]:
    async with transaction(session):
        await _steward(session, who.community, staff_id)
        await session.execute(RosterShift.__table__.delete().where(RosterShift.__table__.c.staff_id == staff_id))
        for s in data.shifts:
            session.add(RosterShift(staff_id=staff_id, weekday=s.weekday, start_minute=s.start_minute, end_minute=s.end_minute))
        return list(data.shifts)


async def get_roster(session: AsyncSession, who: Principal, staff_id: str) -> list[ShiftIn]:
    async with transaction(session):
        await _steward(session, who.community, staff_id)
        rows = (
            (
                await session.execute(
                    select(RosterShift)
                    .where(RosterShift.staff_id == staff_id)
                    .order_by(RosterShift.weekday, RosterShift.start_minute)
                )
            )
            .scalars()
            .all()
        )
        return [ShiftIn(weekday=r.weekday, start_minute=r.start_minute, end_minute=r.end_minute) for r in rows]


async def list_rows(
    session: AsyncSession, who: Principal, model: Any, page: PageParams, **filters: Any
) -> tuple[list[Any], str | None]:
    """A page of one registry table for the caller's community, in id order."""
    async with transaction(session):
        query = select(model).where(model.community == who.community)
        for column, value in filters.items():
            if value is not None:
                query = query.where(getattr(model, column) == value)
        after = page.after()
        if after:
            query = query.where(model.id > after[0])
        rows = list((await session.execute(query.order_by(model.id).limit(page.limit + 1))).scalars())
        return make_page(rows, page.limit, lambda r: [r.id])


async def get_resident(session: AsyncSession, who: Principal, resident_id: str) -> Resident:
    async with transaction(session):
        resident = (
            await session.execute(select(Resident).where(Resident.id == resident_id, Resident.community == who.community))
        ).scalar_one_or_none()
        if resident is None:
            raise RecordNotFound()
        return resident


# --- catalogue and SLA settings ----------------------------------------------------------------


async def add_catalogue_item(session: AsyncSession, who: Principal, data: CatalogueItemCreate) -> CatalogueItem:
    async with transaction(session):
        item = CatalogueItem(community=who.community, code=data.code, name=data.name, price_fen=data.price_fen)
        session.add(item)
        await _flush_unique(session, "catalogue item")
        return item


async def set_sla_policy(
    session: AsyncSession, who: Principal, category: Category, priority: Priority, data: SlaPolicyIn
) -> SlaPolicyPublic:
    async with transaction(session):
        values = {"response_minutes": data.response_minutes, "resolution_minutes": data.resolution_minutes}
        await session.execute(
            insert(SlaPolicyRow)
            .values(
                community=who.community,
                category=category.value,
                priority=priority.value,
                **values,
            )
            .on_conflict_do_update(index_elements=["community", "category", "priority"], set_=values)
        )
        return SlaPolicyPublic(category=category, priority=priority, **values)


async def list_sla_policies(session: AsyncSession, who: Principal) -> list[SlaPolicyPublic]:
    async with transaction(session):
        rows = {
            (r.category, r.priority): r
            for r in (await session.execute(select(SlaPolicyRow).where(SlaPolicyRow.community == who.community))).scalars()
        }
    out = []
    for (category, priority), default in domain.DEFAULT_SLA.items():
        row = rows.get((category.value, priority.value))
        out.append(
            SlaPolicyPublic(
                category=category,
                priority=priority,
                response_minutes=row.response_minutes if row else default.response_minutes,
                resolution_minutes=row.resolution_minutes if row else default.resolution_minutes,
            )
        )
    return out


async def _sla_policy(session: AsyncSession, community: str, category: Category, priority: Priority) -> domain.SlaPolicy:
    row = (
        await session.execute(
            select(SlaPolicyRow).where(
                SlaPolicyRow.community == community,
                SlaPolicyRow.category == category.value,
                SlaPolicyRow.priority == priority.value,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return domain.DEFAULT_SLA[category, priority]
    return domain.SlaPolicy(row.response_minutes, row.resolution_minutes)


# --- photos ------------------------------------------------------------------------------------------


async def store_photo(session: AsyncSession, who: Principal, content: bytes, settings: Settings) -> Photo:
    if len(content) > settings.photo_max_bytes:
        raise PhotoTooLarge(
            (
                f"照片不能超过 {settings.photo_max_bytes} 字节",
                f"A photo may be at most {settings.photo_max_bytes} bytes",
            )
        )
    media_type = domain.sniff_image(content[:16])
    if media_type is None or not content:
        raise PhotoNotImage()
    async with transaction(session):
        photo = Photo(
            id=new_id(),
            community=who.community,
            uploader_id=who.subject,
            media_type=media_type,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        session.add(photo)
        await session.flush()
        # Written before commit: a failed commit leaves an orphan file (harmless), never a row without one.
        path = photo_path(settings, photo)
        await asyncio.to_thread(_write_file, path, content)
        return photo


def photo_path(settings: Settings, photo: Photo) -> Path:
    return Path(settings.photo_store_dir) / photo.community / photo.id


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(content)
    tmp.replace(path)


async def get_photo(session: AsyncSession, who: Principal, photo_id: str) -> Photo:
    async with transaction(session):
        photo = (
            await session.execute(select(Photo).where(Photo.id == photo_id, Photo.community == who.community))
        ).scalar_one_or_none()
        if photo is None:
            raise RecordNotFound()
        if photo.uploader_id == who.subject or _is_staff(who):
            return photo
        if photo.ticket_id is not None:
            await _load_ticket(session, who, photo.ticket_id)  # 404 unless the caller may see the ticket
            return photo
        raise RecordNotFound()


# --- tickets ---------------------------------------------------------------------------------------------


def _is_staff(who: Principal) -> bool:
    return who.has("steward", "property_admin")


async def _resident_of(session: AsyncSession, who: Principal) -> Resident:
    resident = (
        await session.execute(select(Resident).where(Resident.id == who.subject, Resident.community == who.community))
    ).scalar_one_or_none()
    if resident is None:
        raise ResidentNotRegistered()
    return resident


async def _load_ticket(session: AsyncSession, who: Principal, ticket_id: str, *, lock: bool = False) -> Ticket:
    """The ticket if the caller may see it; 404 otherwise, so ids of other households cannot be probed."""
    query = select(Ticket).where(Ticket.id == ticket_id, Ticket.community == who.community)
    if lock:
        query = query.with_for_update()
    ticket = (await session.execute(query)).scalar_one_or_none()
    if ticket is None:
        raise TicketNotFound()
    if _is_staff(who):
        return ticket
    household = (
        await session.execute(
            select(Resident.household_id).where(Resident.id == who.subject, Resident.community == who.community)
        )
    ).scalar_one_or_none()
    if household is None or household != ticket.household_id:
        raise TicketNotFound()
    return ticket


async def _photo_ids(session: AsyncSession, ticket_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in ticket_ids}
    if ticket_ids:
        rows = await session.execute(
            select(Photo.ticket_id, Photo.id).where(Photo.ticket_id.in_(ticket_ids)).order_by(Photo.created_at)
        )
        for ticket_id, photo_id in rows:
            out[ticket_id].append(photo_id)
    return out


def public(ticket: Ticket, photo_ids: list[str] | None = None) -> TicketPublic:
    out = TicketPublic.model_validate(ticket)
    out.photo_ids = photo_ids or []
    return out


async def _step(
    session: AsyncSession,
    ticket: Ticket,
    actor: str,
    role: Role,
    action: Action,
    from_status: Status | None,
    note: str | None = None,
    **data: Any,
) -> None:
    session.add(
        TicketStep(
            ticket_id=ticket.id,
            actor_id=actor,
            role=role.value,
            action=action.value,
            from_status=from_status.value if from_status else None,
            to_status=ticket.status,
            note=note,
            data=data,
        )
    )


async def _count_submission(session: AsyncSession, resident_id: str, at: datetime, limit: int) -> None:
    """Count today's submission with a conditional upsert: concurrent floods cannot slip past the limit."""
    table = DailyTicketCount.__table__
    stmt = insert(table).values(resident_id=resident_id, day=domain.local_day(at), count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["resident_id", "day"],
        set_={"count": table.c.count + 1},
        where=table.c.count < limit,
    ).returning(table.c.count)
    if (await session.execute(stmt)).first() is None:
        raise DailyLimitReached((f"每位住户每天最多报事 {limit} 次", f"At most {limit} tickets per resident per day"))


@dataclass(frozen=True)
class NewTicket:
    community: str
    resident: Resident
    category: Category
    description: str
    priority: Priority
    service_code: str | None = None
    quantity: int = 1
    preferred_time: datetime | None = None
    quote_fen: int | None = None
    quote_approved: bool = False
    payment_status: str = "none"
    redemption_id: str | None = None
    actor: str = ""
    role: Role = Role.resident


async def _create_ticket(session: AsyncSession, new: NewTicket, at: datetime) -> tuple[Ticket, domain.Route]:
    household = (await session.execute(select(Household).where(Household.id == new.resident.household_id))).scalar_one()
    building = await _building(session, new.community, household.building_id)
    stewards = [s for s in (building.steward_id, building.backup_steward_id) if s]
    shifts: dict[str, list[domain.Shift]] = {s: [] for s in stewards}
    if stewards:
        for row in (await session.execute(select(RosterShift).where(RosterShift.staff_id.in_(stewards)))).scalars():
            shifts[row.staff_id].append(domain.Shift(row.weekday, row.start_minute, row.end_minute))
    route = domain.route_ticket(
        building.steward_id,
        domain.on_duty(shifts.get(building.steward_id or "", []), at),
        building.backup_steward_id,
        domain.on_duty(shifts.get(building.backup_steward_id or "", []), at),
    )
    policy = await _sla_policy(session, new.community, new.category, new.priority)
    response_due, resolution_due = domain.deadlines(at, policy)
    ticket = Ticket(
        id=new_id(),
        community=new.community,
        resident_id=new.resident.id,
        household_id=household.id,
        building_id=building.id,
        category=new.category.value,
        service_code=new.service_code,
        quantity=new.quantity,
        description=new.description,
        priority=new.priority.value,
        preferred_time=new.preferred_time,
        status=route.status.value,
        assignee_id=route.steward_id,
        quote_fen=new.quote_fen,
        quote_approved_at=at if new.quote_approved else None,
        payment_status=new.payment_status,
        created_at=at,
        response_due_at=response_due,
        resolution_due_at=resolution_due,
        due_at=response_due,
        redemption_id=new.redemption_id,
    )
    session.add(ticket)
    await session.flush()
    await _step(session, ticket, new.actor or new.resident.id, new.role, Action.submit, None, routed_via=route.via)
    await publisher.publish(
        session,
        TicketSubmitted(
            ticket_id=ticket.id,
            community=ticket.community,
            category=ticket.category,
            status=ticket.status,
            service_code=ticket.service_code,
            priority=ticket.priority,
            building_id=ticket.building_id,
            household_id=ticket.household_id,
            resident_id=ticket.resident_id,
            assignee_id=ticket.assignee_id,
            routed_via=route.via,
            response_due_at=response_due,
            resolution_due_at=resolution_due,
            submitted_at=at,
        ),
        key=ticket.id,
    )
    return ticket, route


async def submit_ticket(session: AsyncSession, who: Principal, data: TicketCreate, settings: Settings) -> TicketPublic:
    async with transaction(session):
        at = now_utc()
        resident = await _resident_of(session, who)
        quote_fen, approved = None, False
        if data.category == Category.service:
            item = (
                await session.execute(
                    select(CatalogueItem).where(CatalogueItem.community == who.community, CatalogueItem.code == data.service_code)
                )
            ).scalar_one_or_none()
            if item is None:
                raise UnknownService()
            # Ordering a service at its catalogue price is the resident's approval of that price.
            quote_fen, approved = item.price_fen, item.price_fen is not None
        photos: list[Photo] = []
        if data.photo_ids:
            photos = list(
                (
                    await session.execute(
                        select(Photo)
                        .where(
                            Photo.id.in_(data.photo_ids),
                            Photo.community == who.community,
                            Photo.uploader_id == who.subject,
                            Photo.ticket_id.is_(None),
                        )
                        .with_for_update()
                    )
                ).scalars()
            )
            if len(photos) != len(set(data.photo_ids)):
                raise PhotoUnavailable()
        await _count_submission(session, resident.id, at, settings.daily_ticket_limit)
        ticket, _ = await _create_ticket(
            session,
            NewTicket(
                community=who.community,
                resident=resident,
                category=data.category,
                description=data.description,
                priority=data.priority,
                service_code=data.service_code,
                preferred_time=data.preferred_time,
                quote_fen=quote_fen,
                quote_approved=approved,
            ),
            at,
        )
        for photo in photos:
            photo.ticket_id = ticket.id
        return public(ticket, [p.id for p in photos])


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
        at = now_utc()
        ticket = await _load_ticket(session, who, ticket_id, lock=True)
        current = Status(ticket.status)
        role = domain.choose_role(who.roles, current, action)
        target = domain.next_status(current, action, role)
        category = Category(ticket.category)
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
                domain.check_start(category, ticket.quote_approved_at is not None)
            case Action.quote:
                assert isinstance(payload, QuoteIn)
                domain.check_quote(category, payload.amount_fen)
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
                interval = timedelta(minutes=settings.hurry_interval_minutes)
                if ticket.last_hurried_at is not None and at - ticket.last_hurried_at < interval:
                    raise HurryTooSoon(
                        (
                            f"每 {settings.hurry_interval_minutes} 分钟最多催单一次",
                            f"At most one hurry every {settings.hurry_interval_minutes} minutes",
                        )
                    )
                ticket.hurry_count += 1
                ticket.last_hurried_at = at
            case Action.follow_up:
                assert isinstance(payload, FollowUpIn)
                ticket.follow_up_note = note = payload.note
            case Action.hand_over | Action.reassign:
                assert isinstance(payload, HandOverIn)
                await _steward(session, who.community, payload.to_staff_id)
                extra["from_assignee"] = ticket.assignee_id
                ticket.assignee_id, note = payload.to_staff_id, payload.reason
                extra["to_assignee"] = payload.to_staff_id
            case _:
                pass
        ticket.status = target.value
        ticket.due_at = domain.queue_deadline(target, ticket.response_due_at, ticket.resolution_due_at)
        await _step(session, ticket, who.subject, role, action, current, note, **extra)
        await _publish_change(session, ticket, current, action, role, who.subject, at)
        await session.flush()
        photos = await _photo_ids(session, [ticket.id])
        return public(ticket, photos[ticket.id])


async def _publish_change(
    session: AsyncSession,
    ticket: Ticket,
    current: Status,
    action: Action,
    role: Role,
    actor: str,
    at: datetime,
) -> None:
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


async def get_ticket(session: AsyncSession, who: Principal, ticket_id: str) -> TicketPublic:
    async with transaction(session):
        ticket = await _load_ticket(session, who, ticket_id)
        photos = await _photo_ids(session, [ticket.id])
        return public(ticket, photos[ticket.id])


async def ticket_steps(session: AsyncSession, who: Principal, ticket_id: str) -> list[TicketStep]:
    async with transaction(session):
        await _load_ticket(session, who, ticket_id)
        return list(
            (await session.execute(select(TicketStep).where(TicketStep.ticket_id == ticket_id).order_by(TicketStep.id))).scalars()
        )


async def list_tickets(
    session: AsyncSession, who: Principal, page: PageParams, status: Status | None, breached: bool | None
) -> tuple[list[TicketPublic], str | None]:
    """A resident sees their household's tickets; staff see the community's. Newest first."""
    async with transaction(session):
        query = select(Ticket).where(Ticket.community == who.community)
        if not _is_staff(who):
            resident = await _resident_of(session, who)
            query = query.where(Ticket.household_id == resident.household_id)
        if status is not None:
            query = query.where(Ticket.status == status.value)
        if breached is not None:
            either = (Ticket.response_breached_at.is_not(None)) | (Ticket.resolution_breached_at.is_not(None))
            query = query.where(either if breached else ~either)
        after = page.after()
        if after:
            query = query.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(datetime.fromisoformat(after[0]), after[1]))
        rows = list(
            (await session.execute(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(page.limit + 1))).scalars()
        )
        items, cursor = make_page(rows, page.limit, lambda t: [t.created_at.isoformat(), t.id])
        photos = await _photo_ids(session, [t.id for t in items])
        return [public(t, photos[t.id]) for t in items], cursor


async def steward_queue(
    session: AsyncSession, who: Principal, page: PageParams, scope: str
) -> tuple[list[TicketPublic], str | None]:
    """Open tickets sorted by the deadline they race: mine, the community queue, or (admins) all."""
    async with transaction(session):
        query = select(Ticket).where(Ticket.community == who.community)
        if scope == "mine":
            query = query.where(Ticket.assignee_id == who.subject, text(OPEN_SQL))
        elif scope == "community":
            query = query.where(Ticket.status == Status.queued.value)
        else:
            query = query.where(text(OPEN_SQL))
        after = page.after()
        if after:
            query = query.where(tuple_(Ticket.due_at, Ticket.id) > tuple_(datetime.fromisoformat(after[0]), after[1]))
        rows = list((await session.execute(query.order_by(Ticket.due_at, Ticket.id).limit(page.limit + 1))).scalars())
        if len(rows) > page.limit:
            rows = rows[: page.limit]
            cursor: str | None = encode_cursor([rows[-1].due_at.isoformat(), rows[-1].id])
        else:
            cursor = None
        return [public(t) for t in rows], cursor


async def steward_figures(session: AsyncSession, who: Principal, steward_id: str, month: str) -> StewardFigures:
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=domain.LOCAL_TZ)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=domain.LOCAL_TZ)
    async with transaction(session):
        await _steward(session, who.community, steward_id)
        done = Ticket.completed_at.is_not(None)
        on_time = and_(done, Ticket.completed_at <= Ticket.resolution_due_at)
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(done),
                    func.count().filter(on_time),
                    func.count(Ticket.rating_overall),
                    func.avg(Ticket.rating_overall),
                ).where(
                    Ticket.community == who.community,
                    Ticket.assignee_id == steward_id,
                    Ticket.created_at >= start,
                    Ticket.created_at < end,
                )
            )
        ).one()
    tickets, completed, timely, rated, avg = row
    return StewardFigures(
        steward_id=steward_id,
        month=month,
        tickets=tickets,
        completed=completed,
        on_time=timely,
        on_time_rate=round(timely / completed, 3) if completed else None,
        rated=rated,
        average_rating=round(float(avg), 2) if avg is not None else None,
    )


# --- payment -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeResult:
    paid: bool
    reference: str
    reason: str | None = None


class PaymentProvider(Protocol):
    """The port to a money payment provider (WeChat Pay, Alipay, a bank) behind one method."""

    async def charge(self, order_id: str, amount_fen: int) -> ChargeResult: ...


class LocalFakeProvider:
    """Local mode's provider: approves every charge at once, with a recognisable reference."""

    async def charge(self, order_id: str, amount_fen: int) -> ChargeResult:
        return ChargeResult(paid=True, reference=f"fake-{order_id[:8]}")


async def pay(
    session: AsyncSession,
    who: Principal,
    ticket_id: str,
    method: str,
    settings: Settings,
    provider: PaymentProvider,
) -> PaymentOrder:
    async with transaction(session):
        ticket = await _load_ticket(session, who, ticket_id, lock=True)
        category = Category(ticket.category)
        if not domain.is_paid(category):
            raise domain.BasicServiceIsFree()
        if ticket.quote_fen is None or ticket.quote_approved_at is None or ticket.payment_status in ("pending", "paid"):
            raise NothingToPay()
        if ticket.status == Status.cancelled.value:
            raise NothingToPay()
        order = PaymentOrder(
            id=new_id(),
            community=who.community,
            ticket_id=ticket.id,
            ticket_category=ticket.category,
            resident_id=who.subject,
            method=method,
            amount_fen=ticket.quote_fen,
            status="pending",
        )
        if method == "points":
            order.points = domain.points_for(ticket.quote_fen, settings.fen_per_point)
            session.add(order)
            ticket.payment_status = "pending"
            await session.flush()
            await publisher.publish(
                session,
                PointsPaymentRequested(
                    payment_id=order.id,
                    community=who.community,
                    resident_id=who.subject,
                    points=order.points,
                    order_id=ticket.id,
                ),
                key=order.id,
            )
            return order
        # The fake answers at once; a real provider would confirm by callback into a second use case.
        result = await provider.charge(order.id, order.amount_fen)
        if not result.paid:
            raise PaymentDeclined(result.reason)
        order.status, order.provider_ref, order.settled_at = "paid", result.reference, now_utc()
        session.add(order)
        ticket.payment_status = "paid"
        await session.flush()
        await _publish_settled(session, order)
        return order


async def _publish_settled(session: AsyncSession, order: PaymentOrder) -> None:
    await publisher.publish(
        session,
        PaymentSettled(
            payment_id=order.id,
            community=order.community,
            ticket_id=order.ticket_id,
            method=order.method,
            status=order.status,
            amount_fen=order.amount_fen,
        ),
        key=order.ticket_id,
    )


async def list_payments(session: AsyncSession, who: Principal, ticket_id: str) -> list[PaymentOrder]:
    async with transaction(session):
        await _load_ticket(session, who, ticket_id)
        return list(
            (
                await session.execute(
                    select(PaymentOrder).where(PaymentOrder.ticket_id == ticket_id).order_by(PaymentOrder.created_at)
                )
            ).scalars()
        )


async def settle_points_payment(session: AsyncSession, data: PointsPaymentSettled) -> None:
    """Governance captured or rejected the points (runs in the consumer's transaction)."""
    order = (
        await session.execute(
            select(PaymentOrder)
            .where(PaymentOrder.id == data.payment_id, PaymentOrder.community == data.community)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if order is None or order.status != "pending":
        return
    paid = data.status == "captured"
    order.status, order.reason, order.settled_at = ("paid" if paid else "rejected"), data.reason, now_utc()
    await session.execute(
        update(Ticket).where(Ticket.id == order.ticket_id).values(payment_status="paid" if paid else "rejected")
    )
    await _publish_settled(session, order)


# --- redemption fulfilment (积分换服务) ------------------------------------------------------------------


async def fulfil_redemption(session: AsyncSession, data: RedemptionReserved) -> None:
    """Governance reserved points for a property service: open a prepaid ticket, or say why not."""
    if data.fulfilment != "property":
        return
    existing = (await session.execute(select(Ticket.id).where(Ticket.redemption_id == data.redemption_id))).scalar_one_or_none()
    if existing is not None:
        await publisher.publish(
            session,
            RedemptionFulfilled(redemption_id=data.redemption_id, community=data.community, ticket_id=existing),
            key=data.redemption_id,
        )
        return

    async def fail(reason: str) -> None:
        await publisher.publish(
            session,
            RedemptionFailed(redemption_id=data.redemption_id, community=data.community, reason=reason),
            key=data.redemption_id,
        )

    resident = (
        await session.execute(select(Resident).where(Resident.id == data.resident_id, Resident.community == data.community))
    ).scalar_one_or_none()
    if resident is None:
        return await fail("unknown-resident")
    item = (
        await session.execute(
            select(CatalogueItem).where(
                CatalogueItem.community == data.community, CatalogueItem.code == (data.service_code or "")
            )
        )
    ).scalar_one_or_none()
    if item is None:
        return await fail("unknown-service-code")
    quantity = max(1, data.quantity)
    ticket, _ = await _create_ticket(
        session,
        NewTicket(
            community=data.community,
            resident=resident,
            category=Category.service,
            description=f"积分兑换 {item.name} x{quantity}",
            priority=Priority.normal,
            service_code=item.code,
            quantity=quantity,
            quote_fen=item.price_fen * quantity if item.price_fen else None,
            quote_approved=True,
            payment_status="paid",
            redemption_id=data.redemption_id,
            actor=REDEMPTION_ACTOR,
            role=Role.system,
        ),
        now_utc(),
    )
    await publisher.publish(
        session,
        RedemptionFulfilled(redemption_id=data.redemption_id, community=data.community, ticket_id=ticket.id),
        key=data.redemption_id,
    )


# --- SLA escalation -------------------------------------------------------------------------------------

_WATCHES = {
    "response": ("response_due_at", "response_breached_at", "('assigned','queued')"),
    "resolution": (
        "resolution_due_at",
        "resolution_breached_at",
        "('accepted','quoted','approved','in_progress')",
    ),
}


async def escalate_breaches(session: AsyncSession, batch: int = 200) -> int:
    """Claim and escalate overdue tickets; safe to run in many replicas at once.

    The claim is one conditional UPDATE over rows locked with SKIP LOCKED: a replica either wins a
    row (its `*_breached_at` was NULL and it set it) or never sees it, so each breach fires once.
    Paused tickets are not watched: their clock is stopped.
    """
    escalated = 0
    for kind, (due_col, breached_col, statuses) in _WATCHES.items():
        async with transaction(session):
            rows = (
                await session.execute(
                    text(f"""
                UPDATE tickets SET {breached_col} = now()
                WHERE id IN (
                    SELECT id FROM tickets
                    WHERE {breached_col} IS NULL AND status IN {statuses} AND {due_col} < now()
                    ORDER BY {due_col} LIMIT :batch FOR UPDATE SKIP LOCKED)
                  AND {breached_col} IS NULL
                RETURNING id, community, category, status, priority, assignee_id, {due_col} AS due_at
            """),
                    {"batch": batch},
                )
            ).all()
            for row in rows:
                session.add(
                    TicketStep(
                        ticket_id=row.id,
                        actor_id=SLA_JOB_ACTOR,
                        role=Role.system.value,
                        action=Action.escalate.value,
                        from_status=row.status,
                        to_status=row.status,
                        note=kind,
                        data={"kind": kind, "escalated_to": "property_admin"},
                    )
                )
                await publisher.publish(
                    session,
                    TicketSlaBreached(
                        ticket_id=row.id,
                        community=row.community,
                        category=row.category,
                        status=row.status,
                        priority=row.priority,
                        kind=kind,
                        due_at=row.due_at,
                        assignee_id=row.assignee_id,
                    ),
                    key=row.id,
                )
            escalated += len(rows)
    return escalated
