"""Property's tables: the community registry, tickets and their audit trail, photos, orders, settings."""

from __future__ import annotations

import uuid
from collections.abc import Set
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from services.kit.db import model_base, table_of
from services.property.domain import (
    AWAITING_RESPONSE,
    BASIC_CATEGORIES,
    LIVE_PAYMENTS,
    NO_PAYMENT,
    OPEN_STATUSES,
    RESOLUTION_WATCHED,
    WORK_STARTED,
    Category,
    PaymentMethod,
    PaymentStatus,
    Source,
    Status,
)

if TYPE_CHECKING:
    # model_base() returns a class made at run time; mypy needs a static base to type the tables.
    PropertyModel = SQLModel
else:
    PropertyModel = model_base("PropertyModel")


def sql_in(column: str, members: Set[StrEnum], *, negated: bool = False) -> str:
    """`column IN ('a','b')` for a set from the domain, in its enum's order so the SQL text is stable."""
    ordered = sorted(members, key=lambda m: list(type(m).__members__).index(m.name))
    return f"{column} {'NOT IN' if negated else 'IN'} ({','.join(repr(m.value) for m in ordered)})"


# The domain's sets as SQL: the constraints, the partial indexes and the queries use these, never a copy.
OPEN_SQL = sql_in("status", OPEN_STATUSES)
BASIC_SQL = sql_in("category", BASIC_CATEGORIES)
RESPONSE_WATCH_SQL = sql_in("status", AWAITING_RESPONSE)
RESOLUTION_WATCH_SQL = sql_in("status", RESOLUTION_WATCHED)


def new_id() -> str:
    """A new row id (a UUID as text, so ids given by callers at registration may be any string)."""
    return str(uuid.uuid4())


def _ts(nullable: bool = True, default_now: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None),
    )


class Building(PropertyModel, table=True):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("community", "code"),)
    id: str = Field(primary_key=True)
    community: str = Field(index=True)
    code: str
    name: str
    steward_id: str | None = None
    backup_steward_id: str | None = None


class Household(PropertyModel, table=True):
    """A unit (专有部分). What an owners' vote counts lives here (法释〔2009〕7号 第八、九条): the exclusive
    area in hundredths of a square metre, whether the developer has sold it, and the buyer key that
    ties several units of one buyer together."""

    __tablename__ = "households"
    __table_args__ = (
        UniqueConstraint("community", "building_id", "unit"),
        CheckConstraint("exclusive_area >= 0", name="exclusive_area_not_negative"),
    )
    id: str = Field(primary_key=True)
    community: str
    building_id: str = Field(foreign_key="buildings.id")
    unit: str
    exclusive_area: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    sold: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true")))
    buyer_key: str | None = None


class Resident(PropertyModel, table=True):
    __tablename__ = "residents"
    __table_args__ = (UniqueConstraint("community", "phone"),)
    id: str = Field(primary_key=True)
    community: str
    household_id: str = Field(foreign_key="households.id", index=True)
    name: str
    phone: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    # An owner (业主) of the household votes in owners' decisions; a tenant only in household polls.
    owner: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))


class Staff(PropertyModel, table=True):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("community", "username"),)
    id: str = Field(primary_key=True)
    community: str
    name: str
    username: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))


class RosterShift(PropertyModel, table=True):
    """A steward's weekly duty roster (值班表), in the community's local time."""

    __tablename__ = "roster_shifts"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute", name="minutes"),
    )
    id: int | None = Field(default=None, primary_key=True)
    staff_id: str = Field(foreign_key="staff.id", index=True)
    weekday: int
    start_minute: int
    end_minute: int


class CatalogueItem(PropertyModel, table=True):
    """A value-added service (增值服务) a resident may order; no price means 'quoted on site'."""

    __tablename__ = "catalogue_items"
    __table_args__ = (
        UniqueConstraint("community", "code"),
        CheckConstraint("price_fen IS NULL OR price_fen > 0", name="price_positive"),
    )
    id: int | None = Field(default=None, primary_key=True)
    community: str
    code: str
    name: str
    price_fen: int | None = None


class SlaPolicyRow(PropertyModel, table=True):
    __tablename__ = "sla_policies"
    __table_args__ = (CheckConstraint("response_minutes > 0 AND resolution_minutes >= response_minutes", name="minutes"),)
    community: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    priority: str = Field(primary_key=True)
    response_minutes: int
    resolution_minutes: int


class Ticket(PropertyModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        # 基本物业服务零收费: whatever the code does, a basic ticket cannot hold a price.
        CheckConstraint(f"NOT ({BASIC_SQL}) OR (quote_fen IS NULL AND quote_approved_at IS NULL)", name="basic_is_free"),
        CheckConstraint(sql_in("category", set(Category)), name="category"),
        # Paid work cannot be under way or done without an approved quote.
        CheckConstraint(
            f"{BASIC_SQL} OR {sql_in('status', WORK_STARTED, negated=True)} OR quote_approved_at IS NOT NULL",
            name="paid_work_approved",
        ),
        CheckConstraint("quote_fen IS NULL OR quote_fen > 0", name="quote_positive"),
        CheckConstraint("rating_overall IS NULL OR rating_overall BETWEEN 1 AND 5", name="rating_overall"),
        CheckConstraint("rating_speed IS NULL OR rating_speed BETWEEN 1 AND 5", name="rating_speed"),
        UniqueConstraint("id", "category", name="uq_tickets_id_category"),
        UniqueConstraint("redemption_id"),
        UniqueConstraint("pledge_id"),
        # A system-filed ticket is one per incident (an alarm, a device's outage), however often it is told.
        UniqueConstraint("incident_id"),
        CheckConstraint(sql_in("source", set(Source)), name="source"),
        # A resident's ticket names them and their household; a system-filed one names neither (so no
        # resident-facing read, all scoped by household, can show it) and carries its incident.
        CheckConstraint(
            "CASE source WHEN 'resident' THEN resident_id IS NOT NULL AND household_id IS NOT NULL"
            " ELSE resident_id IS NULL AND household_id IS NULL AND incident_id IS NOT NULL END",
            name="filed_by",
        ),
        Index(
            "ix_tickets_steward_queue",
            "community",
            "assignee_id",
            "due_at",
            "id",
            postgresql_where=text(OPEN_SQL),
        ),
        Index(
            "ix_tickets_community_queue",
            "community",
            "due_at",
            "id",
            postgresql_where=text(f"status = '{Status.queued}'"),
        ),
        Index("ix_tickets_household", "community", "household_id", "created_at", "id"),
        # Staff's list of the community's tickets, newest first (the default sort).
        Index("ix_tickets_community_created", "community", "created_at", "id"),
        # A security guard's list: the security service's tickets only, newest first.
        Index(
            "ix_tickets_security",
            "community",
            "created_at",
            "id",
            postgresql_where=text(f"source = '{Source.security}'"),
        ),
        Index(
            "ix_tickets_response_watch",
            "response_due_at",
            postgresql_where=text(f"response_breached_at IS NULL AND {RESPONSE_WATCH_SQL}"),
        ),
        Index(
            "ix_tickets_resolution_watch",
            "resolution_due_at",
            postgresql_where=text(f"resolution_breached_at IS NULL AND {RESOLUTION_WATCH_SQL}"),
        ),
    )
    id: str = Field(primary_key=True)
    community: str
    resident_id: str | None = None
    household_id: str | None = None
    building_id: str
    category: str
    service_code: str | None = None
    quantity: int = 1
    description: str
    priority: str
    preferred_time: datetime | None = _ts()
    status: str
    assignee_id: str | None = None
    quote_fen: int | None = None
    quote_approved_at: datetime | None = _ts()
    payment_status: str = NO_PAYMENT  # or the PaymentStatus of the ticket's latest order
    created_at: datetime | None = _ts(nullable=False, default_now=True)
    response_due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    resolution_due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    paused_at: datetime | None = _ts()
    paused_minutes: int = 0
    responded_at: datetime | None = _ts()
    completed_at: datetime | None = _ts()
    response_breached_at: datetime | None = _ts()
    resolution_breached_at: datetime | None = _ts()
    rating_overall: int | None = None
    rating_speed: int | None = None
    rating_comment: str | None = None
    hurry_count: int = 0
    last_hurried_at: datetime | None = _ts()
    follow_up_note: str | None = None
    redemption_id: str | None = None
    # The governance pledge (offer:household) this order was opened for; one ticket per pledge.
    pledge_id: str | None = None
    source: str = Field(default=Source.resident.value, sa_column=Column(Text, nullable=False, server_default=text("'resident'")))
    # The incident a system-filed ticket answers (security's alarm id, or a device's outage).
    incident_id: str | None = None


class TicketStep(PropertyModel, table=True):
    """The audit trail: one row per step, replaying to the ticket's status."""

    __tablename__ = "ticket_steps"
    # Serves a ticket's trail in its keyset order (the identity id increases with every step).
    __table_args__ = (Index("ix_ticket_steps_ticket_id_id", "ticket_id", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    ticket_id: str = Field(foreign_key="tickets.id")
    actor_id: str
    role: str
    action: str
    from_status: str | None = None
    to_status: str
    at: datetime | None = _ts(nullable=False, default_now=True)
    note: str | None = None
    data: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    )


class Photo(PropertyModel, table=True):
    __tablename__ = "photos"
    __table_args__ = (CheckConstraint("size_bytes > 0 AND size_bytes <= 2097152", name="size"),)
    id: str = Field(primary_key=True)
    community: str
    uploader_id: str
    media_type: str
    size_bytes: int
    # None for a photo the client sent straight to the object store: the service never read it whole.
    sha256: str | None = None
    # From the moment an upload URL is handed out until the uploader reports the upload done and the
    # service has checked the stored bytes; a pending photo can be neither seen nor attached.
    pending: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))
    ticket_id: str | None = Field(default=None, foreign_key="tickets.id", index=True)
    created_at: datetime | None = _ts(nullable=False, default_now=True)


class DailyTicketCount(PropertyModel, table=True):
    """Per-resident daily submissions, counted with a conditional upsert so a flood cannot race past."""

    __tablename__ = "daily_ticket_counts"
    resident_id: str = Field(primary_key=True)
    day: str = Field(primary_key=True)
    count: int = Field(sa_column=Column(Integer, nullable=False))


class PaymentOrder(PropertyModel, table=True):
    __tablename__ = "payment_orders"
    __table_args__ = (
        # The order carries its ticket's category, tied to the ticket by a composite key, and may only
        # be for a value-added service: the database itself refuses a charge on a basic ticket.
        ForeignKeyConstraint(
            ["ticket_id", "ticket_category"],
            ["tickets.id", "tickets.category"],
            name="fk_payment_orders_ticket",
        ),
        CheckConstraint(f"ticket_category = '{Category.service}'", name="paid_category_only"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint(sql_in("method", set(PaymentMethod)), name="method"),
        CheckConstraint(sql_in("status", set(PaymentStatus)), name="status"),
        Index(
            "uq_payment_orders_live",
            "ticket_id",
            unique=True,
            postgresql_where=text(sql_in("status", LIVE_PAYMENTS)),
        ),
        # Serves a ticket's payment list in its keyset order.
        Index("ix_payment_orders_ticket_id_created_at_id", "ticket_id", "created_at", "id"),
    )
    id: str = Field(primary_key=True)
    community: str
    ticket_id: str
    ticket_category: str
    resident_id: str
    method: str
    amount_fen: int
    points: int | None = None
    status: str
    provider_ref: str | None = None
    reason: str | None = None
    created_at: datetime | None = _ts(nullable=False, default_now=True)
    settled_at: datetime | None = _ts()


# Core tables, typed: statements are built from their columns (a model's attributes type as plain values).
BUILDINGS = table_of(Building)
HOUSEHOLDS = table_of(Household)
RESIDENTS = table_of(Resident)
STAFF = table_of(Staff)
ROSTER_SHIFTS = table_of(RosterShift)
CATALOGUE_ITEMS = table_of(CatalogueItem)
SLA_POLICIES = table_of(SlaPolicyRow)
TICKETS = table_of(Ticket)
TICKET_STEPS = table_of(TicketStep)
PHOTOS = table_of(Photo)
DAILY_TICKET_COUNTS = table_of(DailyTicketCount)
PAYMENT_ORDERS = table_of(PaymentOrder)
