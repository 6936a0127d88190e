"""Tables of the time bank: a double-entry ledger in the manner of TigerBeetle.

Every community has three kinds of account: one `member` account per enrolled resident, one
`pool` account (公益池) and one `community` account, the community's own settlement account that
hours enter the pool from (outside donations, subsidised hours) and that hours spent on the
community's own care services go to. Only the `community` account may go below zero; its balance
is minus the hours the community has put into circulation, which keeps debits equal to credits.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Identity, Index, Integer, Text, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel

from services.kit.db import model_base, table_of

if TYPE_CHECKING:
    Base = SQLModel  # what the type checker should see; at run time a registry of our own
else:
    Base = model_base("TimebankModel")


def _ts(nullable: bool = False, default_now: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None)


class CommunitySettings(Base, table=True):
    """Per-community rules (city rules differ), created with defaults on first use."""

    __tablename__ = "tb_community_settings"
    __table_args__ = (
        CheckConstraint("withdrawal_age IN (60, 65)", name="withdrawal_age"),
        CheckConstraint("storage_cap_minutes > 0", name="storage_cap"),
        CheckConstraint("min_balance_before_first_withdrawal >= 0", name="min_balance"),
        CheckConstraint("confirmation_timeout_minutes > 0", name="confirmation_timeout"),
        CheckConstraint("hours_valid_months BETWEEN 1 AND 600", name="hours_valid_months"),
    )
    community: str = Field(sa_column=Column(Text, primary_key=True))
    withdrawal_age: int = 60
    storage_cap_minutes: int = 90_000
    min_balance_before_first_withdrawal: int = 0
    confirmation_timeout_minutes: int = 4_320
    # With `hours_expire` on, hours credited more than `hours_valid_months` ago expire to the pool.
    hours_expire: bool = False
    hours_valid_months: int = Field(default=36, sa_column=Column(Integer, nullable=False, server_default=text("36")))
    updated_at: datetime = Field(sa_column=_ts(default_now=True))


class Account(Base, table=True):
    __tablename__ = "tb_accounts"
    __table_args__ = (
        UniqueConstraint("community", "kind", "owner_id", name="uq_tb_accounts_owner", postgresql_nulls_not_distinct=True),
        CheckConstraint("kind IN ('member', 'pool', 'community')", name="kind"),
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="non_negative_totals",
        ),
        # The "debits must not exceed credits" flag, held by the database whatever the code does.
        CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted", name="debits_within_credits"
        ),
        # The hours-expiry job pages through a community's member accounts in id order (migration 0005).
        Index("ix_tb_accounts_community_kind_id", "community", "kind", "id"),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    owner_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    debits_must_not_exceed_credits: bool = True
    debits_pending: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    debits_posted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    credits_pending: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    credits_posted: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0")))
    created_at: datetime = Field(sa_column=_ts(default_now=True))


class Member(Base, table=True):
    """An enrolled resident: volunteer, elder or both; age and relatives verified by a community worker."""

    __tablename__ = "tb_members"
    # The workers' list of members awaiting verification, oldest enrolment first (migration 0010):
    # partial, so it holds only the few members not yet seen in person.
    __table_args__ = (
        Index(
            "ix_tb_members_awaiting_verification",
            "community",
            "enrolled_at",
            "member_id",
            postgresql_where=text("age_verified_at IS NULL"),
        ),
    )
    community: str = Field(sa_column=Column(Text, primary_key=True))
    member_id: str = Field(sa_column=Column(Text, primary_key=True))
    account_id: uuid.UUID = Field(foreign_key="tb_accounts.id", unique=True)
    is_volunteer: bool = False
    is_elder: bool = False
    # 重点空巢独居老人: served from the pool first.
    priority_elder: bool = False
    birth_date: date | None = None
    age_verified_by: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    age_verified_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    first_withdrawal_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    enrolled_at: datetime = Field(sa_column=_ts(default_now=True))


class Relative(Base, table=True):
    """A verified family link, stored in both directions so either may give to the other."""

    __tablename__ = "tb_relatives"
    __table_args__ = (CheckConstraint("member_id <> relative_id", name="not_self"),)
    community: str = Field(sa_column=Column(Text, primary_key=True))
    member_id: str = Field(sa_column=Column(Text, primary_key=True))
    relative_id: str = Field(sa_column=Column(Text, primary_key=True))
    relation: str = Field(sa_column=Column(Text, nullable=False))
    verified_by: str = Field(sa_column=Column(Text, nullable=False))
    verified_at: datetime = Field(sa_column=_ts(default_now=True))


class CareRequest(Base, table=True):
    __tablename__ = "tb_care_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'accepted', 'in_progress', 'logged', 'confirmed', 'disputed', 'expired', 'cancelled')",
            name="status",
        ),
        CheckConstraint("minutes_estimated > 0", name="minutes_estimated"),
        CheckConstraint("checked_out_at IS NULL OR checked_out_at > checked_in_at", name="checkout_after_checkin"),
        Index("ix_tb_care_requests_open", "community", "starts_at", "id", postgresql_where=text("status = 'open'")),
    )
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(sa_column=Column(Text, nullable=False))
    elder_id: str = Field(sa_column=Column(Text, nullable=False))
    requested_by: str = Field(sa_column=Column(Text, nullable=False))
    service_type: str = Field(sa_column=Column(Text, nullable=False))
    place: str = Field(sa_column=Column(Text, nullable=False))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    starts_at: datetime = Field(sa_column=_ts())
    minutes_estimated: int
    status: str = Field(default="open", sa_column=Column(Text, nullable=False))
    volunteer_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    accepted_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    checked_in_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    checked_out_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    transfer_id: uuid.UUID | None = Field(default=None, unique=True)
    created_at: datetime = Field(sa_column=_ts(default_now=True))


class Transfer(Base, table=True):
    """One ledger entry. Never edited, except that a pending row records how it was resolved.

    `phase` says what the row is: `pending` (reserves the amount: debits_pending/credits_pending),
    `posted` (moves the amount: debits_posted/credits_posted; a posting of a pending transfer
    points at it with `pending_id`), or `voided` (records the release of a pending one).
    """

    __tablename__ = "tb_transfers"
    __table_args__ = (
        CheckConstraint("amount_minutes > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        CheckConstraint("phase IN ('pending', 'posted', 'voided')", name="phase"),
        CheckConstraint(
            "kind IN ('service', 'spend', 'gift', 'donation', 'funding', 'overflow', 'reversal', 'expiry')", name="kind"
        ),
        CheckConstraint("resolution IS NULL OR phase = 'pending'", name="resolution_only_pending"),
        CheckConstraint("resolution IN ('posted', 'voided', 'expired')", name="resolution"),
        # A pending transfer is resolved at most once; a transfer is reversed at most once. Partial:
        # most rows have neither, and an index entry per row (and per non-HOT update) costs writes.
        Index("uq_tb_transfers_pending_id", "pending_id", unique=True, postgresql_where=text("pending_id IS NOT NULL")),
        Index("uq_tb_transfers_reverses_id", "reverses_id", unique=True, postgresql_where=text("reverses_id IS NOT NULL")),
        Index("ix_tb_transfers_debit_seq", "debit_account_id", "seq"),
        Index("ix_tb_transfers_credit_seq", "credit_account_id", "seq"),
        Index(
            "ix_tb_transfers_open_pending",
            "community",
            "timeout_at",
            postgresql_where=text("phase = 'pending' AND resolution IS NULL"),
        ),
    )
    id: uuid.UUID = Field(primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), nullable=False, unique=True))
    community: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    phase: str = Field(sa_column=Column(Text, nullable=False))
    debit_account_id: uuid.UUID = Field(foreign_key="tb_accounts.id")
    credit_account_id: uuid.UUID = Field(foreign_key="tb_accounts.id")
    amount_minutes: int
    pending_id: uuid.UUID | None = Field(default=None, foreign_key="tb_transfers.id")
    reverses_id: uuid.UUID | None = Field(default=None, foreign_key="tb_transfers.id")
    care_request_id: uuid.UUID | None = Field(default=None, foreign_key="tb_care_requests.id")
    service_type: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    resolution: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    # Posted balance (credits_posted - debits_posted) of each side right after this row.
    debit_balance_after: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    credit_balance_after: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    timeout_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(sa_column=_ts(default_now=True))


class FailedTransfer(Base, table=True):
    """An id whose transfer was refused: asking again with it returns the same refusal."""

    __tablename__ = "tb_failed_transfers"
    id: uuid.UUID = Field(primary_key=True)
    community: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    problem_slug: str = Field(sa_column=Column(Text, nullable=False))
    detail_zh: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    detail_en: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_ts(default_now=True))


class ExpiryWarning(Base, table=True):
    """A member was told that hours expire on a day: one row per (member, day), so the warning job
    tells each lot once, whichever replica runs it and however often."""

    __tablename__ = "tb_expiry_warnings"
    community: str = Field(sa_column=Column(Text, primary_key=True))
    member_id: str = Field(sa_column=Column(Text, primary_key=True))
    expires_on: date = Field(primary_key=True)
    minutes: int = Field(sa_column=Column(BigInteger, nullable=False))
    warned_at: datetime = Field(sa_column=_ts(default_now=True))


# The Core tables, for the use cases' statements.
SETTINGS = table_of(CommunitySettings)
ACCOUNTS = table_of(Account)
MEMBERS = table_of(Member)
RELATIVES = table_of(Relative)
CARE = table_of(CareRequest)
TRANSFERS = table_of(Transfer)
FAILED = table_of(FailedTransfer)
WARNINGS = table_of(ExpiryWarning)
