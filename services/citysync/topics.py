"""The city topics: every feed record, in sequence order, on its scene's Kafka topic, through the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import privacy
from services.citysync.events import SOURCE, city_event_type, city_topic
from services.citysync.feeds import Keys, record_body
from services.kit.db import transaction
from services.kit.envelope import CloudEvent
from services.kit.outbox import outbox_written
from services.kit.tables import outbox

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
        hasher = privacy.ConsumerHasher(keys.topic)
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
