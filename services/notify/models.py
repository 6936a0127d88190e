"""Notify's tables: notifications and their deliveries, each person's settings, and a small directory
of the facts other services publish that decide who is told (a ticket's resident, a building's backup
steward, who holds a role, the phone an SMS goes to)."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from services.kit.db import model_base
from services.notify.domain import FINAL_DELIVERY, DeliveryStatus

if TYPE_CHECKING:
    NotifyModel = SQLModel
else:
    NotifyModel = model_base("NotifyModel")

# Deliveries a worker may still pick up: the partial index's predicate and the claim's condition.
OPEN_DELIVERY_SQL = "status NOT IN ({})".format(",".join(repr(s.value) for s in DeliveryStatus if s in FINAL_DELIVERY))


def _ts(nullable: bool = True, default_now: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None),
    )


class Notification(NotifyModel, table=True):
    """One message to one person about one event. `seq` numbers a recipient's messages 1, 2, 3...
    in commit order (the sequence row's lock serialises them), so a stream resumes after a seq."""

    __tablename__ = "notifications"
    __table_args__ = (
        # One notification per (event, recipient): a redelivered or replayed event adds nothing.
        UniqueConstraint("event_source", "event_id", "community", "recipient_id"),
        UniqueConstraint("community", "recipient_id", "seq"),
        # Only the retention trim reads it (`created_at <` a cutoff); rows come in time order, so a
        # BRIN summary per range of pages serves it without a B-tree insert per notification.
        Index("ix_notifications_created_at", "created_at", postgresql_using="brin", postgresql_with={"autosummarize": "on"}),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    community: str
    recipient_id: str
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_source: str
    event_id: str
    event_type: str
    kind: str
    category: str
    urgency: str
    title: str
    body: str
    created_at: datetime | None = _ts(nullable=False, default_now=True)
    read_at: datetime | None = _ts()


class RecipientSequence(NotifyModel, table=True):
    """The last seq given to a recipient; its row lock orders one recipient's inserts."""

    __tablename__ = "recipient_sequences"
    community: str = Field(primary_key=True)
    recipient_id: str = Field(primary_key=True)
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class Delivery(NotifyModel, table=True):
    """A notification's copy on a channel other than in-app (today: SMS), with its retry state."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text(OPEN_DELIVERY_SQL)),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    notification_id: int = Field(sa_column=Column(BigInteger, ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False))
    channel: str
    status: str
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=False, default_now=True)
    last_error: str | None = None
    updated_at: datetime | None = _ts(nullable=False, default_now=True)


class DeliveryAttempt(NotifyModel, table=True):
    __tablename__ = "delivery_attempts"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    delivery_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    attempt: int
    outcome: str  # "sent" or "failed"
    error: str | None = None
    at: datetime | None = _ts(nullable=False, default_now=True)


class SmsHour(NotifyModel, table=True):
    """SMS sent to one person in one clock hour: the per-recipient cap counts here."""

    __tablename__ = "sms_hours"
    community: str = Field(primary_key=True)
    recipient_id: str = Field(primary_key=True)
    hour: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    sent: int = 0


class Person(NotifyModel, table=True):
    """Whoever may be told: language and quiet hours (their settings), phone and roles (the directory)."""

    __tablename__ = "people"
    community: str = Field(primary_key=True)
    person_id: str = Field(primary_key=True)
    phone: str | None = None
    roles: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    language: str = "zh-CN"
    quiet_start: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    quiet_end: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    # The person asked that copies of their time-bank messages go to their verified relatives.
    copy_to_relatives: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="false"))


class KnownRelative(NotifyModel, table=True):
    """A verified family link from the time bank (`timebank.relative.verified`), kept both ways."""

    __tablename__ = "relatives"
    community: str = Field(primary_key=True)
    person_id: str = Field(primary_key=True)
    relative_id: str = Field(primary_key=True)


class Preference(NotifyModel, table=True):
    """A channel switched on or off for one category; no row means on."""

    __tablename__ = "preferences"
    community: str = Field(primary_key=True)
    person_id: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)
    enabled: bool


class KnownBuilding(NotifyModel, table=True):
    __tablename__ = "buildings"
    community: str = Field(primary_key=True)
    building_id: str = Field(primary_key=True)
    steward_id: str | None = None
    backup_steward_id: str | None = None


class KnownTicket(NotifyModel, table=True):
    __tablename__ = "tickets"
    community: str = Field(primary_key=True)
    ticket_id: str = Field(primary_key=True)
    resident_id: str | None = None  # None for a system-filed ticket: no resident to tell
    building_id: str
