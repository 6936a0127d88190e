"""The feeds: each domain event becomes at most one de-identified record of its scene's feed, numbered
in sequence with no gaps, and counted in its community's day for the daily statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import domain, privacy
from services.citysync.domain import RECORD_KINDS, STAT_COUNTERS, StatsDelta
from services.kit.db import transaction
from services.kit.envelope import CloudEvent


@dataclass(frozen=True)
class Keys:
    """The platform hash key (what is stored) and the city topics' key (what Kafka consumers see)."""

    platform: bytes
    topic: bytes


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
# day) just before the commit: a batch of a backlog holds many events of the same day, and updating
# the day's row once per record would leave a new row version per update for the next to walk past.
_ADD_TO_DAY = text(f"""
WITH spot AS (
    INSERT INTO daily_spots (community, day, spot) SELECT :community, :day, unnest(CAST(:spots AS text[]))
    ON CONFLICT DO NOTHING RETURNING 1
), answered AS (
    INSERT INTO daily_alarm_responses (community, day, seconds)
    SELECT :community, :day, unnest(CAST(:responses AS int[]))
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
    responses: list[int] = field(default_factory=list)

    def add(self, delta: StatsDelta) -> None:
        self.changes += 1
        for name, value in delta.counters.items():
            self.counters[name] = self.counters.get(name, 0) + int(value)
        for service_type, minutes in delta.minutes_by_type.items():
            self.minutes_by_type[service_type] = self.minutes_by_type.get(service_type, 0) + int(minutes)
        if delta.spot is not None:
            self.spots.add(delta.spot)
        if delta.response_s is not None:
            self.responses.append(delta.response_s)


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


def _hook(session: AsyncSession) -> dict[str, Any]:
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
            responses=tally.responses,
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
    hasher: privacy.ConsumerHasher,
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
    payload = privacy.deidentify(event.data, platform_key=keys.platform, on=domain.local_day(at))
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
    queued) makes no record and counts nothing. One statement per batch instead of one per event is
    what lets a backlog catch up. Do not mix with `ingest` in one transaction: records
    written at once would take their numbers before the queued ones.
    """
    if not session.in_transaction():
        raise RuntimeError("ingest_later queues records in an open transaction; use ingest outside one")
    queued: dict[tuple[str, str], _QueuedRecord] = _hook(session).setdefault(_QUEUE, {})
    record = await _record_for(session, keys, event, queued)
    if record is not None:
        queued.setdefault((record.scene, record.source_event_id), record)
