"""The gateway's own small database: the communities it serves, who may log in, the refresh tokens it issued, the tokens revoked.

Residents and staff are learned from property's registry events; the gateway never invents them.
Passwords and client secrets are stored only as argon2 hashes, refresh tokens only as SHA-256.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Column, DateTime, Index, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from services.kit.db import model_base

if TYPE_CHECKING:
    # mypy cannot use a class made at runtime as a base; to it, the registry's base is SQLModel.
    GatewayModel = SQLModel
else:
    GatewayModel = model_base("GatewayModel")


class Resident(GatewayModel, table=True):
    """A resident from property's registry; logs in by phone number and one-time code."""

    __tablename__ = "residents"
    __table_args__ = (Index("ix_residents_community_phone", "community", "phone"),)
    id: str = Field(primary_key=True)
    community: str
    phone: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    registered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class StaffMember(GatewayModel, table=True):
    """A member of staff from property's registry; logs in by username and password."""

    __tablename__ = "staff"
    __table_args__ = (Index("uq_staff_community_username", "community", "username", unique=True),)
    id: str = Field(primary_key=True)
    community: str
    username: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    password_hash: str | None = None


class ApiClient(GatewayModel, table=True):
    """A machine caller (city data sync, a gate device) holding client credentials."""

    __tablename__ = "api_clients"
    community: str = Field(primary_key=True)
    client_id: str = Field(primary_key=True)
    subject: str
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    secret_hash: str


class RefreshToken(GatewayModel, table=True):
    """One refresh token; each use replaces it by the next in its family (rotation)."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)
    token_hash: str = Field(primary_key=True)
    family_id: str
    subject: str
    community: str
    kind: str  # resident | staff | client
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class RevokedToken(GatewayModel, table=True):
    """A logged-out access token, until it would have expired: the durable deny-list (gateway/revocations.py)."""

    __tablename__ = "revoked_tokens"
    token_digest: str = Field(primary_key=True)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CommunityRecord(GatewayModel, table=True):
    """A community the gateway serves, created and configured by a platform administrator."""

    __tablename__ = "communities"
    id: str = Field(primary_key=True)
    name: str
    region_code: str
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
