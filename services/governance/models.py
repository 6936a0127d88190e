"""Governance tables. Rules that can be raced are constraints here, not application checks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlmodel import Field, SQLModel

from services.kit.db import model_base

if TYPE_CHECKING:
    # model_base() makes the class at run time; mypy needs a static base to type the tables.
    Base = SQLModel
else:
    Base = model_base("GovernanceModel")


def _uuid_pk() -> Column[uuid.UUID]:
    # Server-side too, because Core inserts (ON CONFLICT ... RETURNING) skip Python defaults.
    return Column(UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _ts(nullable: bool = True, default_now: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None)


class Budget(Base, table=True):
    """A community's funded points budget. remaining = funded − granted + clawed_back, never below 0."""

    __tablename__ = "gov_budgets"
    __table_args__ = (
        CheckConstraint("remaining >= 0", name="remaining_not_negative"),
        CheckConstraint("remaining = funded - granted + clawed_back", name="budget_balances"),
    )
    community: str = Field(sa_column=Column(Text, primary_key=True))
    funded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    granted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    clawed_back: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    remaining: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))


class Resident(Base, table=True):
    """What governance knows of a resident: the household (from property), never names or phones."""

    __tablename__ = "gov_residents"
    community: str = Field(sa_column=Column(Text, primary_key=True))
    resident_id: str = Field(sa_column=Column(Text, primary_key=True))
    household_id: str | None = Field(default=None, sa_column=Column(Text, index=True))
    # An owner (业主) votes in owners' decisions; a tenant only in household polls.
    owner: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))


class Account(Base, table=True):
    """A resident's points. Locked FOR UPDATE by every use case that moves the resident's points."""

    __tablename__ = "gov_accounts"
    __table_args__ = (
        CheckConstraint("debt >= 0", name="debt_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )
    community: str = Field(sa_column=Column(Text, primary_key=True))
    resident_id: str = Field(sa_column=Column(Text, primary_key=True))
    # balance = sum(lots.remaining) − debt; may be negative only through clawbacks and deductions.
    balance: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    debt: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    reserved: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))


class Lot(Base, table=True):
    __tablename__ = "gov_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_gov_lots_owner", "community", "resident_id"),
        Index("ix_gov_lots_due", "expires_at", postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL")),
        # A resident's live lots in spending order (`GET /me/lots` pages by it; NULLS LAST is the default).
        Index("ix_gov_lots_live", "community", "resident_id", "expires_at", "id", postgresql_where=text("remaining > 0")),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    community: str = Field(sa_column=Column(Text, nullable=False))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    remaining: int = Field(sa_column=Column(Integer, nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=_ts())
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class Entry(Base, table=True):
    """One line of a resident's statement (积分明细): every change with the balance after it."""

    __tablename__ = "gov_entries"
    __table_args__ = (
        CheckConstraint("kind IN ('grant','award','deduction','spend','refund','expiry','reversal')", name="kind_known"),
        Index("ix_gov_entries_owner", "community", "resident_id", "id"),
        Index("ix_gov_entries_month", "community", "created_at"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    community: str = Field(sa_column=Column(Text, nullable=False))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    delta: int = Field(sa_column=Column(Integer, nullable=False))
    balance_after: int = Field(sa_column=Column(BigInteger, nullable=False))
    ref_type: str | None = Field(default=None, sa_column=Column(Text))
    ref_id: str | None = Field(default=None, sa_column=Column(Text))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class Rule(Base, table=True):
    """An earning rule (积分规则) of one community."""

    __tablename__ = "gov_rules"
    __table_args__ = (
        UniqueConstraint("community", "code"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("(cap_count IS NULL) = (cap_period IS NULL)", name="cap_complete"),
        CheckConstraint("cap_count IS NULL OR cap_count > 0", name="cap_positive"),
        Index("ix_gov_rules_trigger", "community", "trigger"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    code: str = Field(sa_column=Column(Text, nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    trigger: str = Field(sa_column=Column(Text, nullable=False))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    per_hour: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    cap_count: int | None = Field(default=None, sa_column=Column(Integer))
    cap_period: str | None = Field(default=None, sa_column=Column(Text))
    lot_validity_days: int | None = Field(default=None, sa_column=Column(Integer))
    valid_from: datetime | None = Field(default=None, sa_column=_ts())
    valid_until: datetime | None = Field(default=None, sa_column=_ts())
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class CapCounter(Base, table=True):
    """Grants per (resident, rule, period): the conditional upsert on this row enforces the cap."""

    __tablename__ = "gov_cap_counters"
    community: str = Field(sa_column=Column(Text, primary_key=True))
    resident_id: str = Field(sa_column=Column(Text, primary_key=True))
    rule_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    period_start: date = Field(sa_column=Column(Date, primary_key=True))
    count: int = Field(sa_column=Column(Integer, nullable=False))


class Grant(Base, table=True):
    """Points from one source (an event or a check-in) by one rule: at most one row per pair."""

    __tablename__ = "gov_grants"
    __table_args__ = (
        UniqueConstraint("community", "source_event_id", "rule_id"),
        Index("ix_gov_grants_source_ref", "community", "source_ref"),
        CheckConstraint("status IN ('granted','skipped')", name="status_known"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    rule_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_rules.id"), nullable=False))
    source_event_id: str = Field(sa_column=Column(Text, nullable=False))
    # The source aggregate (a time-bank transfer id...), which a reversal names.
    source_ref: str | None = Field(default=None, sa_column=Column(Text))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    skip_reason: str | None = Field(default=None, sa_column=Column(Text))
    lot_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    reversed_at: datetime | None = Field(default=None, sa_column=_ts())
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class CheckinCode(Base, table=True):
    """A QR code for a check-in rule, valid on one local day."""

    __tablename__ = "gov_checkin_codes"
    code: str = Field(sa_column=Column(Text, primary_key=True))
    community: str = Field(sa_column=Column(Text, nullable=False))
    rule_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_rules.id"), nullable=False))
    valid_on: date = Field(sa_column=Column(Date, nullable=False))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class Award(Base, table=True):
    """A worker's award (positive) or deduction (negative, 负向扣分), with a reason."""

    __tablename__ = "gov_awards"
    __table_args__ = (
        CheckConstraint("points <> 0", name="points_nonzero"),
        CheckConstraint("status IN ('pending','applied','rejected')", name="status_known"),
        CheckConstraint("decided_by IS NULL OR decided_by <> created_by", name="second_worker_decides"),
        Index("ix_gov_awards_status", "community", "status"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    decided_by: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))
    decided_at: datetime | None = Field(default=None, sa_column=_ts())


class Reward(Base, table=True):
    """A catalogue entry (积分兑换目录): a property service or an item with stock."""

    __tablename__ = "gov_rewards"
    __table_args__ = (
        UniqueConstraint("community", "code"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        CheckConstraint("kind IN ('service','item')", name="kind_known"),
        CheckConstraint("kind <> 'service' OR service_code IS NOT NULL", name="service_has_code"),
        CheckConstraint("per_resident_limit IS NULL OR per_resident_limit > 0", name="limit_positive"),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    code: str = Field(sa_column=Column(Text, nullable=False))
    name: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    service_code: str | None = Field(default=None, sa_column=Column(Text))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    stock: int | None = Field(default=None, sa_column=Column(Integer))
    per_resident_limit: int | None = Field(default=None, sa_column=Column(Integer))
    active_from: datetime | None = Field(default=None, sa_column=_ts())
    active_until: datetime | None = Field(default=None, sa_column=_ts())
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class Redemption(Base, table=True):
    """One redemption saga: reserved → captured | released."""

    __tablename__ = "gov_redemptions"
    __table_args__ = (
        CheckConstraint("status IN ('reserved','captured','released')", name="status_known"),
        CheckConstraint("points > 0 AND quantity > 0", name="amounts_positive"),
        Index("ix_gov_redemptions_owner", "community", "resident_id"),
        Index("ix_gov_redemptions_due", "deadline", postgresql_where=text("status = 'reserved'")),
    )
    id: uuid.UUID = Field(default_factory=uuid.uuid4, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    reward_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_rewards.id"), nullable=False))
    quantity: int = Field(sa_column=Column(Integer, nullable=False))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    ticket_id: str | None = Field(default=None, sa_column=Column(Text))
    release_reason: str | None = Field(default=None, sa_column=Column(Text))
    deadline: datetime = Field(sa_column=_ts(False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))
    settled_at: datetime | None = Field(default=None, sa_column=_ts())


class PointsPayment(Base, table=True):
    """Property asked to be paid in points for an order; settled once per payment id."""

    __tablename__ = "gov_points_payments"
    __table_args__ = (CheckConstraint("status IN ('captured','rejected')", name="status_known"),)
    payment_id: str = Field(sa_column=Column(Text, primary_key=True))
    community: str = Field(sa_column=Column(Text, nullable=False))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    order_id: str | None = Field(default=None, sa_column=Column(Text))
    points: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class Allocation(Base, table=True):
    """Which lots paid a redemption, so a release returns the points to the same lots."""

    __tablename__ = "gov_allocations"
    __table_args__ = (CheckConstraint("points > 0", name="points_positive"),)
    redemption_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_redemptions.id"), primary_key=True))
    lot_id: int = Field(sa_column=Column(BigInteger, ForeignKey("gov_lots.id"), primary_key=True))
    points: int = Field(sa_column=Column(Integer, nullable=False))
