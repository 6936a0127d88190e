"""Governance's tables for collective choice (集体选择): the roll projected from property's registry,
decisions with the roll each froze when it opened, and ballots (one per voter, by a unique key)."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, Integer, Text, text
from sqlmodel import Field

from services.governance.models import Base
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
