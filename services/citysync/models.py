"""citysync's tables: the feeds, their counters, the daily statistics, and the data-sharing register."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, LargeBinary, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from services.kit.db import model_base

if TYPE_CHECKING:
    from sqlmodel import SQLModel

    class Base(SQLModel):
        pass
else:
    Base = model_base("CitysyncModel")

SCENE_CHECK = "scene IN ('timebank', 'parking', 'property', 'governance', 'security', 'stats')"


def _tz(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=DateTime(timezone=True), nullable=nullable, **kw)


class FeedCounter(Base, table=True):
    """The last sequence number of one community's feed of one scene. Taking the next number locks
    this row until commit, so records become visible in sequence order and without gaps."""

    __tablename__ = "feed_counters"
    __table_args__ = (CheckConstraint(SCENE_CHECK, name="scene"),)
    community: str = Field(primary_key=True)
    scene: str = Field(primary_key=True)
    last_seq: int = Field(sa_type=BigInteger, nullable=False)


class FeedRecord(Base, table=True):
    """One de-identified record of a feed. Identifiers are stored only as platform hashes."""

    __tablename__ = "feed_records"
    __table_args__ = (
        CheckConstraint(SCENE_CHECK, name="scene"),
        CheckConstraint("seq > 0", name="seq_positive"),
        # A re-published or late copy of a domain event can never become a second record.
        UniqueConstraint("scene", "source_event_id"),
        Index("ix_feed_records_subject", "scene", "subject_id"),
    )
    community: str = Field(primary_key=True)
    scene: str = Field(primary_key=True)
    seq: int = Field(sa_type=BigInteger, primary_key=True)
    schema_version: int
    record_type: str
    event_time: datetime = _tz()
    subject_id: str | None = Field(default=None)
    source_event_id: str
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    recorded_at: datetime = Field(
        sa_type=DateTime(timezone=True), nullable=False, sa_column_kwargs={"server_default": text("now()")}
    )


class TopicCursor(Base, table=True):
    """How far one community's feed of one scene has been copied to its city topic's outbox."""

    __tablename__ = "topic_cursors"
    community: str = Field(primary_key=True)
    scene: str = Field(primary_key=True)
    published_seq: int = Field(sa_type=BigInteger, nullable=False)


class DailyStats(Base, table=True):
    """A community's running figures for one local day; `revision` counts changes, and the job
    publishes a statistics record whenever a closed day's revision is ahead of the published one."""

    __tablename__ = "daily_stats"
    community: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    revision: int = Field(default=0)
    published_revision: int = Field(default=0)
    services_confirmed: int = 0
    minutes_served: int = 0
    minutes_reversed: int = 0
    bookings_completed: int = 0
    booked_minutes: int = 0
    parking_fee_fen: int = Field(default=0, sa_type=BigInteger)
    tickets_submitted: int = 0
    tickets_completed: int = 0
    tickets_on_time: int = 0
    sla_breaches: int = 0
    redemptions_reserved: int = 0
    redemptions_captured: int = 0
    redemptions_released: int = 0
    points_redeemed: int = Field(default=0, sa_type=BigInteger)
    points_granted: int = Field(default=0, sa_type=BigInteger)
    visitor_passes: int = 0
    entries: int = Field(default=0, sa_type=BigInteger)
    alarms_raised: int = 0
    alarms_fire: int = 0
    alarms_smoke: int = 0
    alarms_door_forced: int = 0
    alarms_door_held_open: int = 0
    alarms_inactivity: int = 0
    alarms_answered: int = 0
    minutes_by_type: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")))
    spots_used: int = 0


class DailyAlarmResponse(Base, table=True):
    """One alarm's response time (seconds to its first answer), on the community's day it was
    answered: the day's median is taken over these. No alarm id, no person: a number on a day."""

    __tablename__ = "daily_alarm_responses"
    __table_args__ = (Index("ix_daily_alarm_responses_day", "community", "day"),)
    id: int | None = Field(default=None, sa_type=BigInteger, primary_key=True)
    community: str
    day: date
    seconds: int


class DailySpot(Base, table=True):
    """A (hashed) spot booked on a community's day: counts the distinct spots for occupancy."""

    __tablename__ = "daily_spots"
    community: str = Field(primary_key=True)
    day: date = Field(primary_key=True)
    spot: str = Field(primary_key=True)


class DataConsumer(Base, table=True):
    """A city data consumer (数据使用方): its client id is the subject of its city_sync tokens."""

    __tablename__ = "data_consumers"
    __table_args__ = (CheckConstraint("status IN ('active', 'revoked')", name="status"),)
    community: str = Field(primary_key=True)
    id: str = Field(primary_key=True)
    name: str
    # The consumer's own hash key; never shown by the API.
    hash_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = "active"
    registered_by: str
    registered_at: datetime = _tz()
    revoked_by: str | None = None
    revoked_at: datetime | None = _tz(nullable=True, default=None)


class Grant(Base, table=True):
    """A consumer's permission to pull one scene's feed; revoked grants stay in the register."""

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint(SCENE_CHECK, name="scene"),
        # At most one live grant per consumer and feed; the database says so, not a check in code.
        Index("uq_grants_live", "community", "consumer_id", "scene", unique=True, postgresql_where=text("revoked_at IS NULL")),
    )
    id: int | None = Field(default=None, sa_type=BigInteger, primary_key=True)
    community: str
    consumer_id: str
    scene: str
    granted_by: str
    granted_at: datetime = _tz()
    revoked_by: str | None = None
    revoked_at: datetime | None = _tz(nullable=True, default=None)


class Pull(Base, table=True):
    """One pull of a feed by a consumer: what it asked from, what it got."""

    __tablename__ = "pulls"
    __table_args__ = (Index("ix_pulls_consumer", "community", "consumer_id", "id"),)
    id: int | None = Field(default=None, sa_type=BigInteger, primary_key=True)
    community: str
    consumer_id: str
    scene: str
    after_seq: int = Field(sa_type=BigInteger)
    last_seq: int = Field(sa_type=BigInteger)
    record_count: int
    pulled_at: datetime = _tz()
