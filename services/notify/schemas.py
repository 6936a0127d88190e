"""Notify's API models (never the table classes)."""

from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, ConfigDict, Field

from services.notify.domain import Category, Channel, Language, Urgency


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int = Field(description="The recipient's own number for it, in order; a stream resumes after it (`Last-Event-ID`)")
    kind: str
    category: Category
    urgency: Urgency
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


class UnreadCount(BaseModel):
    unread: int


class MarkedRead(BaseModel):
    marked: int


class PreferencePublic(BaseModel):
    category: Category
    channel: Channel


class SettingsPublic(BaseModel):
    language: Language
    quiet_start: time = Field(description="Local time non-urgent SMS starts waiting (Asia/Shanghai)")
    quiet_end: time
    switched_off: list[PreferencePublic] = Field(description="Channels turned off per category; everything else is on")


class SettingsUpdate(BaseModel):
    language: Language | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None


class PreferenceUpdate(BaseModel):
    category: Category
    channel: Channel = Field(description="`sms`; in-app notifications cannot be switched off")
    enabled: bool
