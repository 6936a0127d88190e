"""Notify's API models (never the table classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from services.kit.inputs import ClockTime, FromText, RequestBody
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
    quiet_start: Annotated[ClockTime, Field(description="Local time non-urgent SMS starts waiting (Asia/Shanghai)")]
    quiet_end: ClockTime
    switched_off: list[PreferencePublic] = Field(description="Channels turned off per category; everything else is on")
    copy_to_relatives: bool = Field(description="Copies of my time-bank messages go to my verified relatives")


class SettingsUpdate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"language": "zh-CN", "quiet_start": "22:00:00", "quiet_end": "07:00:00"}]}
    )
    language: Annotated[Language, FromText] | None = None
    quiet_start: ClockTime | None = None
    quiet_end: ClockTime | None = None
    copy_to_relatives: bool | None = None


class PreferenceUpdate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"category": "parking", "channel": "sms", "enabled": False}]})
    category: Annotated[Category, FromText]
    channel: Annotated[Channel, FromText] = Field(description="`sms`; in-app notifications cannot be switched off")
    enabled: bool
