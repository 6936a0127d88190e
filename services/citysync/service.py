"""citysync's use cases, each one transaction: building feed records from domain events, the daily
statistics, the data-sharing register, and pulls."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import event, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import domain
from services.citysync.domain import RECORD_KINDS, SCENES, STAT_COUNTERS, StatsDelta
from services.citysync.events import SOURCE, ConsumerRevoked, GrantRevoked, city_event_type, city_topic, publisher
from services.citysync.models import DailyStats, DataConsumer, Grant, Pull
from services.citysync.problems import (
    ConsumerExists,
    ConsumerInactive,
    ConsumerNotFound,
    ConsumerUnknown,
    FeedNotFound,
    GrantExists,
    GrantNotFound,
)
from services.citysync.problems import (
    ConsumerRevoked as ConsumerRevokedProblem,
)
from services.citysync.schemas import ConsumerCreate
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.envelope import CloudEvent
from services.kit.outbox import outbox_written
from services.kit.tables import outbox


@dataclass(frozen=True)
class Keys:
    """The platform hash key (what is stored) and the city topics' key (what Kafka consumers see)."""

    platform: bytes
    topic: bytes


# --- building the feeds ----------------------------------------------------------------------------

# One statement: skip a source event seen before, take the next number (locking the counter row
# until commit, so readers see records in sequence order with no gaps), insert the record.
_APPEND_RECORD = """
WITH fresh AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM feed_records WHERE scene = :scene AND source_event_id = :source_event_id)
), next AS (
    INSERT INTO feed_counters AS c (community, scene, last_seq) SELECT :community, :scene, 1 FROM fresh
    ON CONFLICT (community, scene) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq
), rec AS (
    INSERT INTO feed_records (community, scene, seq, schema_version, record_type, event_time, subject_id,
                              source_event_id, payload)
    SELECT :community, :scene, next.last_seq, :schema_version, :record_type, :event_time, :subject_id,
           :source_event_id, CAST(:payload AS jsonb)
    FROM next
    RETURNING seq
)"""
_APPEND = text(_APPEND_RECORD + " SELECT seq FROM rec")

# What the records made in one transaction add to each community's day, applied once per (community,
# day) just before the commit. A backlog holds thousands of events per community and day: adding
# each record to the day's row in its own statement made every batch update the same row hundreds
# of times in one transaction, each update a new row version that the next one had to walk past.
_ADD_TO_DAY = text(f"""
WITH spot AS (
    INSERT INTO daily_spots (community, day, spot) SELECT :community, :day, unnest(CAST(:spots AS text[]))
    ON CONFLICT DO NOTHING RETURNING 1
)
INSERT INTO daily_stats AS d (community, day, revision, published_revision, {", ".join(STAT_COUNTERS)},
                              minutes_by_type, spots_used)
VALUES (:community, :day, :changes, 0, {", ".join(":" + c for c in STAT_COUNTERS)}, CAST(:by_type AS jsonb),
        (SELECT count(*) FROM spot))
ON CONFLICT (community, day) DO UPDATE SET
    revision = d.revision + EXCLUDED.revision,
    {", ".join(f"{c} = d.{c} + EXCLUDED.{c}" for c in STAT_COUNTERS)},
    spots_used = d.spots_used + EXCLUDED.spots_used,
    minutes_by_type = CASE WHEN EXCLUDED.minutes_by_type = '{{}}'::jsonb THEN d.minutes_by_type ELSE (
        SELECT coalesce(jsonb_object_agg(k, total), '{{}}'::jsonb)
        FROM (SELECT k, sum(v) AS total
              FROM (SELECT key AS k, value::bigint AS v FROM jsonb_each_text(d.minutes_by_type)
                    UNION ALL
                    SELECT key, value::bigint FROM jsonb_each_text(EXCLUDED.minutes_by_type)) AS both_days
              GROUP BY k) AS merged) END
""")


@dataclass
class _DayTally:
    """The sum of the statistics deltas of one community's day within one transaction."""

    changes: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    minutes_by_type: dict[str, int] = field(default_factory=dict)
    spots: set[str] = field(default_factory=set)

    def add(self, delta: StatsDelta) -> None:
        self.changes += 1
        for name, value in delta.counters.items():
            self.counters[name] = self.counters.get(name, 0) + int(value)
        for service_type, minutes in delta.minutes_by_type.items():
            self.minutes_by_type[service_type] = self.minutes_by_type.get(service_type, 0) + int(minutes)
        if delta.spot is not None:
            self.spots.add(delta.spot)


# Many records in one statement, for `ingest_later`: the records made by a transaction are written at
# its commit, in the order they were queued. Copies of source events already in a feed are skipped;
# each feed's counter moves once by the number of fresh records (locking it until commit, as for one
# record), and the records take the numbers below it in queue order.
_APPEND_MANY = text("""
WITH input AS (
    SELECT * FROM unnest(CAST(:community AS text[]), CAST(:scene AS text[]), CAST(:schema_version AS int[]),
                         CAST(:record_type AS text[]), CAST(:event_time AS timestamptz[]),
                         CAST(:subject_id AS text[]), CAST(:source_event_id AS text[]), CAST(:payload AS text[]))
        WITH ORDINALITY AS i(community, scene, schema_version, record_type, event_time, subject_id,
                             source_event_id, payload, ord)
), fresh AS (
    SELECT i.*, row_number() OVER (PARTITION BY i.community, i.scene ORDER BY i.ord) AS n,
           count(*) OVER (PARTITION BY i.community, i.scene) AS total
    FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM feed_records f WHERE f.scene = i.scene AND f.source_event_id = i.source_event_id)
), counted AS (
    INSERT INTO feed_counters AS c (community, scene, last_seq)
    SELECT community, scene, max(total) FROM fresh GROUP BY community, scene ORDER BY community, scene
    ON CONFLICT (community, scene) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
    RETURNING community, scene, last_seq
)
INSERT INTO feed_records (community, scene, seq, schema_version, record_type, event_time, subject_id,
                          source_event_id, payload)
SELECT f.community, f.scene, c.last_seq - f.total + f.n, f.schema_version, f.record_type, f.event_time,
       f.subject_id, f.source_event_id, CAST(f.payload AS jsonb)
FROM fresh f JOIN counted c ON c.community = f.community AND c.scene = f.scene
RETURNING scene, source_event_id
""")


@dataclass(frozen=True)
class _QueuedRecord:
    community: str
    scene: str
    record_type: str
    schema_version: int
    at: datetime
    subject_id: str | None
    source_event_id: str
    payload: dict[str, Any]
    counts: StatsDelta | None


_TALLY = "citysync.day_tallies"
_QUEUE = "citysync.queued_records"
_HOOKED = "citysync.hooked"


def _hook(session: AsyncSession) -> dict[Any, Any]:
    """The session's info; the first call hooks the writing of queued records and day tallies to its
    commits (and their discarding to rollbacks), so they are in the transaction that made them."""
    info = session.sync_session.info
    if not info.get(_HOOKED):
        info[_HOOKED] = True
        event.listen(session.sync_session, "before_commit", _before_commit)
        event.listen(session.sync_session, "after_rollback", _after_rollback)
    return info


def _day_tallies(session: AsyncSession) -> dict[tuple[str, date], _DayTally]:
    tallies: dict[tuple[str, date], _DayTally] = _hook(session).setdefault(_TALLY, {})
    return tallies


def _count(tallies: dict[tuple[str, date], _DayTally], community: str, at: datetime, counts: StatsDelta) -> None:
    key = (community, domain.local_day(at))
    tally = tallies.get(key)
    if tally is None:
        tally = tallies[key] = _DayTally()
    tally.add(counts)


def _before_commit(sync_session: Session) -> None:
    # A sync event inside the async session's commit: its statements run in the same transaction.
    queued: dict[tuple[str, str], _QueuedRecord] = sync_session.info.pop(_QUEUE, None) or {}
    tallies: dict[tuple[str, date], _DayTally] = sync_session.info.pop(_TALLY, None) or {}
    if queued:
        records = list(queued.values())
        made = {
            (r.scene, r.source_event_id)
            for r in sync_session.execute(
                _APPEND_MANY,
                {
                    "community": [r.community for r in records],
                    "scene": [r.scene for r in records],
                    "schema_version": [r.schema_version for r in records],
                    "record_type": [r.record_type for r in records],
                    "event_time": [r.at for r in records],
                    "subject_id": [r.subject_id for r in records],
                    "source_event_id": [r.source_event_id for r in records],
                    "payload": [orjson.dumps(r.payload).decode() for r in records],
                },
            ).all()
        }
        for record in records:
            if record.counts is not None and (record.scene, record.source_event_id) in made:
                _count(tallies, record.community, record.at, record.counts)
    for (community, day), tally in sorted(tallies.items()):  # a fixed order: no deadlock between replicas
        params: dict[str, Any] = {name: tally.counters.get(name, 0) for name in STAT_COUNTERS}
        params.update(
            community=community,
            day=day,
            changes=tally.changes,
            spots=sorted(tally.spots),
            by_type=orjson.dumps(tally.minutes_by_type).decode(),
        )
        sync_session.execute(_ADD_TO_DAY, params)


def _after_rollback(sync_session: Session) -> None:
    sync_session.info.pop(_QUEUE, None)
    sync_session.info.pop(_TALLY, None)


async def append_record(
    session: AsyncSession,
    *,
    community: str,
    scene: str,
    record_type: str,
    schema_version: int,
    at: datetime,
    subject_id: str | None,
    source_event_id: str,
    payload: dict[str, Any],
    counts: StatsDelta | None = None,
) -> int | None:
    """Add one record to a feed (and `counts` to its community's day, at commit); returns its
    sequence number, or None when the source event was seen before (and nothing is counted).

    The city topic gets it from `publish_city_topics`, which copies new records to the outbox in
    batches (one outbox row per record, one wake-up of the relay per batch).
    """
    seq = (
        await session.execute(
            _APPEND,
            {
                "community": community,
                "scene": scene,
                "schema_version": schema_version,
                "record_type": record_type,
                "event_time": at,
                "subject_id": subject_id,
                "source_event_id": source_event_id,
                "payload": orjson.dumps(payload).decode(),
            },
        )
    ).scalar_one_or_none()
    if seq is None:
        return None
    if counts is not None:
        _count(_day_tallies(session), community, at, counts)
    return int(seq)


def record_body(
    *,
    seq: int,
    community: str,
    scene: str,
    record_type: str,
    schema_version: int,
    event_time: datetime,
    payload: dict[str, Any],
    hasher: domain.ConsumerHasher,
) -> dict[str, Any]:
    """A record as a consumer receives it (over HTTP or on a city topic)."""
    return {
        "seq": seq,
        "community": community,
        "scene": scene,
        "record_type": record_type,
        "schema_version": schema_version,
        "event_time": event_time.astimezone(UTC).isoformat(),
        "data": hasher.payload(payload),
    }


_REVERSED_SERVICE_TYPE = text(
    "SELECT payload->>'service_type' FROM feed_records WHERE scene = 'timebank' AND subject_id = :id "
    "AND record_type = 'service_confirmed' LIMIT 1"
)


async def _record_for(
    session: AsyncSession, keys: Keys, event: CloudEvent, queued: dict[tuple[str, str], _QueuedRecord] | None = None
) -> _QueuedRecord | None:
    """The feed record one domain event becomes (None for events no feed takes)."""
    kind = RECORD_KINDS.get(event.type)
    community = event.data.get("community")
    if kind is None or not isinstance(community, str) or not community:
        return None
    at = domain.event_time(kind, event.data, event.time)
    payload = domain.deidentify(event.data, platform_key=keys.platform, on=domain.local_day(at))
    reversed_type: str | None = None
    if kind.record_type == "transfer_reversed":
        # A reversal subtracts from the service type of the transfer it corrects: that record may
        # still be queued in this transaction, or already in the feed.
        reversed_id = str(event.data.get("reverses_transfer_id"))
        reversed_type = next(
            (
                q.payload.get("service_type")
                for q in (queued or {}).values()
                if q.scene == "timebank" and q.record_type == "service_confirmed" and q.subject_id == reversed_id
            ),
            None,
        )
        if reversed_type is None:
            reversed_type = (await session.execute(_REVERSED_SERVICE_TYPE, {"id": reversed_id})).scalar_one_or_none()
    subject = payload.get(kind.subject_field)
    return _QueuedRecord(
        community=community,
        scene=kind.scene.value,
        record_type=kind.record_type,
        schema_version=kind.schema_version,
        at=at,
        subject_id=subject if isinstance(subject, str) else None,
        source_event_id=f"{event.source}#{event.id}",
        payload=payload,
        counts=domain.stats_delta(kind.record_type, payload, reversed_type),
    )


async def ingest(session: AsyncSession, keys: Keys, event: CloudEvent) -> int | None:
    """Turn one domain event into zero or one feed record now; returns the record's seq when one was made."""
    async with transaction(session):
        record = await _record_for(session, keys, event)
        if record is None:
            return None
        # The inbox already drops a redelivered event; append_record also drops a copy the inbox
        # could not recognise (another consumer group, a restored inbox).
        return await append_record(
            session,
            community=record.community,
            scene=record.scene,
            record_type=record.record_type,
            schema_version=record.schema_version,
            at=record.at,
            subject_id=record.subject_id,
            source_event_id=record.source_event_id,
            payload=record.payload,
            counts=record.counts,
        )


async def ingest_later(session: AsyncSession, keys: Keys, event: CloudEvent) -> None:
    """Queue the feed record of one domain event in the session's open transaction: the consumer's way.

    The transaction's records are written at its commit in one statement (`_APPEND_MANY`), in the
    order queued, with the same rules as `ingest`: a copy of a source event already in the feed (or
    queued) makes no record and counts nothing. A fetched batch of 500 events was 500 round trips,
    which is what bounded the catch-up rate. Do not mix with `ingest` in one transaction: records
    written at once would take their numbers before the queued ones.
    """
    if not session.in_transaction():
        raise RuntimeError("ingest_later queues records in an open transaction; use ingest outside one")
    queued: dict[tuple[str, str], _QueuedRecord] = _hook(session).setdefault(_QUEUE, {})
    record = await _record_for(session, keys, event, queued)
    if record is not None:
        queued.setdefault((record.scene, record.source_event_id), record)


async def publish_daily_statistics(session: AsyncSession, *, now: datetime, grace: timedelta, batch: int = 200) -> int:
    """Publish a statistics record for every closed day whose figures changed since last published.

    A late event for a day already published raises its revision, and the day is published again:
    consumers keep the highest revision of each (community, day).
    """
    last_closed = domain.local_day(now - grace) - timedelta(days=1)
    async with transaction(session):
        days = (
            (
                await session.execute(
                    select(DailyStats)
                    .where(col(DailyStats.revision) > col(DailyStats.published_revision), col(DailyStats.day) <= last_closed)
                    .order_by(col(DailyStats.community), col(DailyStats.day))
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        for stats in days:
            counters = {name: int(getattr(stats, name)) for name in STAT_COUNTERS}
            payload = domain.daily_statistics(
                stats.community, stats.day, stats.revision, counters, stats.minutes_by_type, stats.spots_used
            )
            day_end = datetime.combine(stats.day + timedelta(days=1), time.min, tzinfo=domain.LOCAL_TZ)
            await append_record(
                session,
                community=stats.community,
                scene="stats",
                record_type=domain.DAILY_STATISTICS,
                schema_version=domain.STATS_SCHEMA_VERSION,
                at=day_end.astimezone(UTC),
                subject_id=f"{stats.community}/{stats.day.isoformat()}",
                source_event_id=f"stats:{stats.community}:{stats.day.isoformat()}:r{stats.revision}",
                payload=payload,
            )
            stats.published_revision = stats.revision
        return len(days)


_FEEDS_BEHIND = text("""
SELECT c.community, c.scene FROM feed_counters c
LEFT JOIN topic_cursors t ON t.community = c.community AND t.scene = c.scene
WHERE c.last_seq > coalesce(t.published_seq, 0)
ORDER BY c.community, c.scene
""")
_TOPIC_CURSOR = text("SELECT published_seq FROM topic_cursors WHERE community = :c AND scene = :s FOR UPDATE SKIP LOCKED")
_NEW_RECORDS = text(
    "SELECT seq, record_type, schema_version, event_time, payload FROM feed_records "
    "WHERE community = :c AND scene = :s AND seq > :after ORDER BY seq LIMIT :limit"
)


async def publish_city_topics(session: AsyncSession, keys: Keys, *, batch: int = 1000) -> int:
    """Copy feed records not yet on their city topic into the outbox, in sequence order; returns how many.

    Each feed's place is kept in `topic_cursors` and moved in the same transaction as the outbox rows,
    so every record goes to its topic exactly once (and the relay and consumers dedupe by event id).
    A replica that finds a feed's cursor locked leaves that feed to the replica holding it.
    """
    async with transaction(session):
        feeds = (await session.execute(_FEEDS_BEHIND)).all()
        hasher = domain.ConsumerHasher(keys.topic)
        rows: list[dict[str, Any]] = []
        for community, scene in feeds:
            await session.execute(
                text("INSERT INTO topic_cursors (community, scene, published_seq) VALUES (:c, :s, 0) ON CONFLICT DO NOTHING"),
                {"c": community, "s": scene},
            )
            after = (await session.execute(_TOPIC_CURSOR, {"c": community, "s": scene})).scalar_one_or_none()
            if after is None:
                continue
            records = (
                await session.execute(_NEW_RECORDS, {"c": community, "s": scene, "after": after, "limit": batch - len(rows)})
            ).all()
            for r in records:
                event = CloudEvent(
                    type=city_event_type(scene, r.record_type, r.schema_version),
                    source=SOURCE,
                    key=community,
                    subject=f"{community}/{scene}/{r.seq}",
                    time=r.event_time,
                    data=record_body(
                        seq=r.seq,
                        community=community,
                        scene=scene,
                        record_type=r.record_type,
                        schema_version=r.schema_version,
                        event_time=r.event_time,
                        payload=r.payload,
                        hasher=hasher,
                    ),
                )
                rows.append(
                    {
                        "event_id": event.id,
                        "topic": city_topic(scene),
                        "key": event.key,
                        "type": event.type,
                        "source": event.source,
                        "subject": event.subject,
                        "occurred_at": event.time,
                        "data": event.data,
                    }
                )
            if records:
                await session.execute(
                    text("UPDATE topic_cursors SET published_seq = :seq WHERE community = :c AND scene = :s"),
                    {"seq": records[-1].seq, "c": community, "s": scene},
                )
            if len(rows) >= batch:
                break
        if rows:
            # The kit's outbox table, many rows at once; the kit wakes the relay after the commit.
            await session.execute(outbox.insert(), rows)
            outbox_written(session)
        return len(rows)


# --- the data-sharing register ---------------------------------------------------------------------


@dataclass
class ConsumerView:
    consumer: DataConsumer
    grants: list[Grant]


async def _consumer(session: AsyncSession, community: str, consumer_id: str, *, lock: bool = False) -> DataConsumer:
    query = select(DataConsumer).where(col(DataConsumer.community) == community, col(DataConsumer.id) == consumer_id)
    if lock:
        query = query.with_for_update()
    found: DataConsumer | None = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise ConsumerNotFound()
    return found


async def _grants(session: AsyncSession, community: str, consumer_ids: list[str]) -> dict[str, list[Grant]]:
    rows = (
        (
            await session.execute(
                select(Grant)
                .where(col(Grant.community) == community, col(Grant.consumer_id).in_(consumer_ids))
                .order_by(col(Grant.id))
            )
        )
        .scalars()
        .all()
    )
    out: dict[str, list[Grant]] = {cid: [] for cid in consumer_ids}
    for grant in rows:
        out[grant.consumer_id].append(grant)
    return out


async def register_consumer(session: AsyncSession, worker: Principal, data: ConsumerCreate) -> ConsumerView:
    async with transaction(session):
        now = datetime.now(UTC)
        inserted = (
            await session.execute(
                insert(DataConsumer)
                .values(
                    community=worker.community,
                    id=data.id,
                    name=data.name,
                    hash_key=secrets.token_bytes(32),
                    status="active",
                    registered_by=worker.subject,
                    registered_at=now,
                )
                .on_conflict_do_nothing()
                .returning(col(DataConsumer.id))
            )
        ).first()
        if inserted is None:
            raise ConsumerExists()
        return ConsumerView(await _consumer(session, worker.community, data.id), [])


async def get_consumer(session: AsyncSession, community: str, consumer_id: str) -> ConsumerView:
    async with transaction(session):
        consumer = await _consumer(session, community, consumer_id)
        return ConsumerView(consumer, (await _grants(session, community, [consumer_id]))[consumer_id])


async def list_consumers(session: AsyncSession, community: str, *, after: str | None, limit: int) -> list[ConsumerView]:
    async with transaction(session):
        query = select(DataConsumer).where(col(DataConsumer.community) == community)
        if after is not None:
            query = query.where(col(DataConsumer.id) > after)
        consumers = (await session.execute(query.order_by(col(DataConsumer.id)).limit(limit + 1))).scalars().all()
        grants = await _grants(session, community, [c.id for c in consumers])
        return [ConsumerView(c, grants[c.id]) for c in consumers]


async def revoke_consumer(session: AsyncSession, worker: Principal, consumer_id: str) -> ConsumerView:
    """Revoke a consumer: its next pull is refused (403). Revoking twice changes nothing."""
    async with transaction(session):
        consumer = await _consumer(session, worker.community, consumer_id, lock=True)
        if consumer.status != "revoked":
            consumer.status = "revoked"
            consumer.revoked_by = worker.subject
            consumer.revoked_at = datetime.now(UTC)
            await publisher.publish(
                session,
                ConsumerRevoked(consumer_id=consumer.id, community=consumer.community, revoked_at=consumer.revoked_at),
                key=consumer.id,
            )
        return ConsumerView(consumer, (await _grants(session, worker.community, [consumer_id]))[consumer_id])


async def grant_feed(session: AsyncSession, worker: Principal, consumer_id: str, scene: str) -> Grant:
    async with transaction(session):
        consumer = await _consumer(session, worker.community, consumer_id, lock=True)
        if consumer.status != "active":
            raise ConsumerInactive()
        # The partial unique index keeps one live grant per consumer and feed, however requests race.
        row = (
            await session.execute(
                insert(Grant)
                .values(
                    community=worker.community,
                    consumer_id=consumer_id,
                    scene=scene,
                    granted_by=worker.subject,
                    granted_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(
                    index_elements=["community", "consumer_id", "scene"], index_where=text("revoked_at IS NULL")
                )
                .returning(col(Grant.id))
            )
        ).first()
        if row is None:
            raise GrantExists()
        created: Grant = (await session.execute(select(Grant).where(col(Grant.id) == row[0]))).scalar_one()
        return created


async def revoke_grant(session: AsyncSession, worker: Principal, consumer_id: str, scene: str) -> Grant:
    """Revoke a live grant. A pull in flight holds the grant row FOR SHARE, so this waits for it;
    once it returns, no pull of this feed by this consumer can succeed."""
    async with transaction(session):
        await _consumer(session, worker.community, consumer_id)
        grant: Grant | None = (
            await session.execute(
                select(Grant)
                .where(
                    col(Grant.community) == worker.community,
                    col(Grant.consumer_id) == consumer_id,
                    col(Grant.scene) == scene,
                    col(Grant.revoked_at).is_(None),
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if grant is None:
            raise GrantNotFound()
        grant.revoked_at = datetime.now(UTC)
        grant.revoked_by = worker.subject
        await publisher.publish(
            session,
            GrantRevoked(consumer_id=consumer_id, community=worker.community, scene=scene, revoked_at=grant.revoked_at),
            key=consumer_id,
        )
        return grant


async def list_pulls(
    session: AsyncSession, community: str, *, consumer_id: str | None, scene: str | None, before_id: int | None, limit: int
) -> list[Pull]:
    """The pull register, newest first."""
    async with transaction(session):
        query = select(Pull).where(col(Pull.community) == community)
        if consumer_id is not None:
            query = query.where(col(Pull.consumer_id) == consumer_id)
        if scene is not None:
            query = query.where(col(Pull.scene) == scene)
        if before_id is not None:
            query = query.where(col(Pull.id) < before_id)
        return list((await session.execute(query.order_by(col(Pull.id).desc()).limit(limit + 1))).scalars().all())


# --- pulling -----------------------------------------------------------------------------------------

_CONSUMER_FOR_PULL = text("SELECT status, hash_key FROM data_consumers WHERE community = :c AND id = :id FOR SHARE")
# The hot path of every sync job: one statement, so one round trip and one transaction. PostgreSQL
# runs a statement sent on the bare driver connection as its own transaction (SQLAlchemy's adapter
# only sends BEGIN before statements it runs itself), so everything that must hold together is in
# this statement: the consumer and its live grant locked FOR SHARE (a revocation waits for a pull
# in flight, and a pull that starts after it sees it), the page, and its register row. A refused
# pull reads no records and records nothing. The first row is the consumer (no seq; none when the
# consumer is unknown), then the page in seq order, one more than asked to tell whether more follow.
# The time is rendered by PostgreSQL (the session runs in UTC); the payload is decoded by orjson.
_PULL = """
WITH consumer AS (
    SELECT c.status, c.hash_key, g.id AS grant_id
    FROM data_consumers c
    LEFT JOIN LATERAL (SELECT id FROM grants WHERE community = c.community AND consumer_id = c.id AND scene = $2
                       AND revoked_at IS NULL FOR SHARE) g ON true
    WHERE c.community = $1 AND c.id = $5
    FOR SHARE OF c
), allowed AS (
    SELECT 1 FROM consumer WHERE status = 'active' AND grant_id IS NOT NULL
), page AS (
    SELECT seq, record_type, schema_version, event_time, payload FROM feed_records
    WHERE community = $1 AND scene = $2 AND seq > $3 AND EXISTS (SELECT FROM allowed)
    ORDER BY seq LIMIT $4 + 1
), recorded AS (
    INSERT INTO pulls (community, consumer_id, scene, after_seq, last_seq, record_count, pulled_at)
    SELECT $1, $5, $2, $3, coalesce(max(seq), $3), count(*), now()
    FROM (SELECT seq FROM page ORDER BY seq LIMIT $4) AS served
    HAVING EXISTS (SELECT FROM allowed)
)
SELECT status, hash_key, grant_id, NULL::bigint AS seq, NULL::text AS record_type, NULL::int AS schema_version,
       NULL::text AS event_time, NULL::text AS payload
FROM consumer
UNION ALL
SELECT NULL, NULL, NULL, seq, record_type, schema_version, to_json(event_time) #>> '{}', payload::text FROM page
ORDER BY seq NULLS FIRST
"""


async def pull(session: AsyncSession, caller: Principal, scene: str, *, after: int, limit: int) -> dict[str, Any]:
    """One page of a feed after `after`, in sequence order, in the caller's own hashes; recorded in
    the register in the same transaction (the same statement)."""
    async with transaction(session):
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        assert driver is not None
        rows = await driver.fetch(_PULL, caller.community, scene, after, limit, caller.subject)
    if not rows:
        raise ConsumerUnknown()
    status, hash_key, grant_id = rows[0][0], rows[0][1], rows[0][2]
    if status != "active":
        raise ConsumerRevokedProblem()
    if scene not in SCENES or grant_id is None:
        raise FeedNotFound()
    page = rows[1 : limit + 1]
    rekey, loads, dumps = domain.ConsumerHasher(bytes(hash_key)).rekey, orjson.loads, orjson.dumps
    community = caller.community
    # Each payload is serialised as soon as it is re-keyed, so its dict is freed at once and the
    # records hold only strings, numbers and a Fragment: untracked by the garbage collector, which
    # otherwise walks (and promotes) the ~1,500 containers of every page while it is being built.
    records = [
        {
            "seq": seq,
            "community": community,
            "scene": scene,
            "record_type": record_type,
            "schema_version": version,
            "event_time": at,
            "data": orjson.Fragment(dumps(rekey(loads(payload)))),
        }
        for _, _, _, seq, record_type, version, at, payload in page
    ]
    return {
        "scene": scene,
        "community": community,
        "records": records,
        "next_cursor": str(page[-1][3] if page else after),
        "has_more": len(rows) > limit + 1,
    }


async def feed_summaries(session: AsyncSession, caller: Principal) -> list[dict[str, Any]]:
    """The feeds the caller may pull, with each one's latest sequence number."""
    async with transaction(session):
        consumer = (await session.execute(_CONSUMER_FOR_PULL, {"c": caller.community, "id": caller.subject})).first()
        if consumer is None:
            raise ConsumerUnknown()
        if consumer.status != "active":
            raise ConsumerRevokedProblem()
        rows = (
            await session.execute(
                text(
                    "SELECT g.scene, coalesce(c.last_seq, 0) AS last_seq FROM grants g "
                    "LEFT JOIN feed_counters c ON c.community = g.community AND c.scene = g.scene "
                    "WHERE g.community = :c AND g.consumer_id = :id AND g.revoked_at IS NULL ORDER BY g.scene"
                ),
                {"c": caller.community, "id": caller.subject},
            )
        ).all()
        return [{"scene": r.scene, "last_seq": int(r.last_seq)} for r in rows]
