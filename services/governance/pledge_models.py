"""Governance's tables for service pledges (集体选购): offers, and one pledge per household."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlmodel import Field

from services.governance.models import Base, _ts, _uuid_pk
from services.kit.db import table_of


class PledgeOffer(Base, table=True):
    """A service opened only if enough households pledge before the deadline: `open` until then,
    `reached` the moment the minimum is met (orders follow), `lapsed` at the deadline otherwise."""

    __tablename__ = "gov_pledge_offers"
    __table_args__ = (
        CheckConstraint("status IN ('open','reached','lapsed')", name="status_known"),
        CheckConstraint("min_households >= 1", name="min_households_positive"),
        CheckConstraint("price_fen > 0", name="price_positive"),
        # The community's offers newest first, with the id that breaks ties (the list's keyset).
        Index("ix_gov_pledge_offers_community", "community", "created_at", "id"),
        # The lapsing job's queue: open offers by deadline.
        Index("ix_gov_pledge_offers_due", "deadline", postgresql_where=text("status = 'open'")),
    )
    id: uuid.UUID | None = Field(default=None, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(sa_column=Column(Text, nullable=False))
    provider: str = Field(sa_column=Column(Text, nullable=False))
    service_code: str = Field(sa_column=Column(Text, nullable=False))
    price_fen: int = Field(sa_column=Column(Integer, nullable=False))
    min_households: int = Field(sa_column=Column(Integer, nullable=False))
    deadline: datetime = Field(sa_column=_ts(False))
    status: str = Field(default="open", sa_column=Column(Text, nullable=False, server_default=text("'open'")))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))
    settled_at: datetime | None = Field(default=None, sa_column=_ts())


class Pledge(Base, table=True):
    """One pledge per household and offer (the primary key is the rule), by one of its residents."""

    __tablename__ = "gov_pledges"
    offer_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_pledge_offers.id"), primary_key=True))
    household_id: str = Field(sa_column=Column(Text, primary_key=True))
    resident_id: str = Field(sa_column=Column(Text, nullable=False))
    pledged_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


PLEDGE_OFFERS = table_of(PledgeOffer)
PLEDGES = table_of(Pledge)
