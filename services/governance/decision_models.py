"""Governance's tables for collective choice (集体选择): the roll projected from property's registry,
decisions with the roll each froze when it opened, and ballots (one per voter, by a unique key)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Column, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field

from services.governance.models import Base, _ts, _uuid_pk
from services.kit.db import table_of


class RollUnit(Base, table=True):
    """A unit as property's registry last said (法释〔2009〕7号 第八、九条): exclusive area in hundredths
    of a square metre, sold or still the developer's, and the buyer key tying one buyer's units."""

    __tablename__ = "gov_roll_units"
    __table_args__ = (CheckConstraint("area >= 0", name="area_not_negative"),)
    community: str = Field(sa_column=Column(Text, primary_key=True))
    household_id: str = Field(sa_column=Column(Text, primary_key=True))
    area: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))
    sold: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true")))
    buyer_key: str | None = Field(default=None, sa_column=Column(Text))


ROLL_UNITS = table_of(RollUnit)


class Decision(Base, table=True):
    """A question put to the community: drafted, opened (its roll frozen), closed once (its result kept)."""

    __tablename__ = "gov_decisions"
    __table_args__ = (
        CheckConstraint("kind IN ('owners_ordinary','owners_major','household_poll')", name="kind_known"),
        CheckConstraint("status IN ('draft','open','closed')", name="status_known"),
        CheckConstraint("closes_at > opens_at", name="closes_after_opening"),
        CheckConstraint("cardinality(options) >= 2", name="two_options"),
        # The community's decisions newest first, with the id that breaks ties (the list's keyset).
        Index("ix_gov_decisions_community", "community", "created_at", "id"),
        # The closing job's queue: open decisions by closing time.
        Index("ix_gov_decisions_due", "closes_at", postgresql_where=text("status = 'open'")),
    )
    id: uuid.UUID | None = Field(default=None, sa_column=_uuid_pk())
    community: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    question: str = Field(sa_column=Column(Text, nullable=False))
    options: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    opens_at: datetime = Field(sa_column=_ts(False))
    closes_at: datetime = Field(sa_column=_ts(False))
    ballots_by_name: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))
    status: str = Field(default="draft", sa_column=Column(Text, nullable=False, server_default=text("'draft'")))
    created_by: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_ts(False, True))
    opened_at: datetime | None = Field(default=None, sa_column=_ts())
    closed_at: datetime | None = Field(default=None, sa_column=_ts())
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))


class DecisionUnit(Base, table=True):
    """A unit on a decision's frozen roll, copied when it opened: later registry edits change nothing."""

    __tablename__ = "gov_decision_units"
    decision_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_decisions.id"), primary_key=True))
    household_id: str = Field(sa_column=Column(Text, primary_key=True))
    area: int = Field(sa_column=Column(Integer, nullable=False))
    owner_key: str = Field(sa_column=Column(Text, nullable=False))


class DecisionOwner(Base, table=True):
    """An owner on a decision's frozen roll (法释〔2009〕7号 第九条: the developer's unsold units as one, a
    buyer's units as one), with the area of all their units, summed once when the decision opened:
    the tally joins ballots to these rows by the ballot's voter key and sums, one grouped query."""

    __tablename__ = "gov_decision_owners"
    decision_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_decisions.id"), primary_key=True))
    owner_key: str = Field(sa_column=Column(Text, primary_key=True))
    area: int = Field(sa_column=Column(BigInteger, nullable=False))


class DecisionVoter(Base, table=True):
    """Who may vote on a decision (owners for owners' decisions, every resident for a poll), frozen with the roll."""

    __tablename__ = "gov_decision_voters"
    # "The decisions I may vote on" starts from the resident, not the decision.
    __table_args__ = (Index("ix_gov_decision_voters_resident", "resident_id", "decision_id"),)
    decision_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), ForeignKey("gov_decisions.id"), primary_key=True))
    resident_id: str = Field(sa_column=Column(Text, primary_key=True))
    household_id: str = Field(sa_column=Column(Text, nullable=False))
    # The household's owner key (a poll: the household), copied too: a ballot's one roll lookup.
    owner_key: str = Field(sa_column=Column(Text, nullable=False))


class Ballot(Base, table=True):
    """One final ballot per voter key (an owner key, or a household in a poll): the primary key is
    the one-ballot rule, whoever casts it (the voter, a proxy, a worker with a paper ballot).

    It is the table's only index, and there is no foreign key: every index and key check costs each
    ballot of a burst, the voter key comes from the decision's frozen roll (whose rows hold the
    foreign key), decisions are never deleted, and nothing reads a ballot by `id` or `receipt` alone
    (a receipt is a SHA-256 over a random nonce, unique by construction). Migration 0011."""

    __tablename__ = "gov_ballots"
    __table_args__ = (CheckConstraint("channel IN ('app','proxy','paper')", name="channel_known"),)
    decision_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    voter_key: str = Field(sa_column=Column(Text, primary_key=True))
    id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")))
    community: str = Field(sa_column=Column(Text, nullable=False))
    household_id: str = Field(sa_column=Column(Text, nullable=False))
    option: str = Field(sa_column=Column(Text, nullable=False))
    channel: str = Field(sa_column=Column(Text, nullable=False))
    cast_by: str = Field(sa_column=Column(Text, nullable=False))
    on_behalf_of: str | None = Field(default=None, sa_column=Column(Text))
    proxy_basis: str | None = Field(default=None, sa_column=Column(Text))
    receipt: str = Field(sa_column=Column(Text, nullable=False))
    cast_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


class ProxyAuthorisation(Base, table=True):
    """A proxy a worker has verified and recorded: `proxy_id` may vote for `owner_id`, on the basis of a
    written authorisation (授权委托书, `written`) or as a registered relative of an elder (`relative`)."""

    __tablename__ = "gov_proxy_authorisations"
    __table_args__ = (CheckConstraint("basis IN ('written','relative')", name="basis_known"),)
    community: str = Field(sa_column=Column(Text, primary_key=True))
    owner_id: str = Field(sa_column=Column(Text, primary_key=True))
    proxy_id: str = Field(sa_column=Column(Text, primary_key=True))
    basis: str = Field(default="written", sa_column=Column(Text, nullable=False, server_default=text("'written'")))
    relation: str | None = Field(default=None, sa_column=Column(Text))
    recorded_by: str = Field(sa_column=Column(Text, nullable=False))
    recorded_at: datetime | None = Field(default=None, sa_column=_ts(False, True))


DECISIONS = table_of(Decision)
DECISION_UNITS = table_of(DecisionUnit)
DECISION_OWNERS = table_of(DecisionOwner)
DECISION_VOTERS = table_of(DecisionVoter)
BALLOTS = table_of(Ballot)
PROXIES = table_of(ProxyAuthorisation)
