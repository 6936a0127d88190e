"""A key's events held behind its set-aside one, so they never overtake it.

An event the broker can never accept is set aside (`kit_outbox.set_aside_at`); the later events of
the same key (same topic and key) stay unsent behind it, since a consumer that saw them without it
would apply the key's history with a hole in it. They go out, in order, once the operator re-sends
the set-aside event (`republish --since`, after fixing its cause) or deletes it. Every other key
keeps flowing: the relay leaves the held events out of its claims, so they never block a claim.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

Held = dict[tuple[str, str], int]  # (topic, key) -> id of the key's first set-aside event


async def held_keys(conn: AsyncConnection) -> Held:
    """Keys with an event set aside (set-aside rows are unsent: this walks the unsent index)."""
    rows = await conn.execute(_HELD_KEYS)
    return {(topic, key): first for topic, key, first in rows}


def not_held(held: Held) -> TextClause:
    """A claim's condition: the row is not behind a set-aside event of its key."""
    keys = sorted(held)
    return _NOT_HELD.bindparams(
        held_topics=[topic for topic, _ in keys], held_keys=[key for _, key in keys], held_ids=[held[k] for k in keys]
    )


async def held_count(conn: AsyncConnection) -> int:
    """How many unsent events wait behind a set-aside event of their key (for `outbox-status`)."""
    return int((await conn.execute(_HELD_COUNT)).scalar_one())


_HELD_KEYS = text("""
    SELECT topic, key, min(id) FROM kit_outbox
     WHERE sent_at IS NULL AND set_aside_at IS NOT NULL
     GROUP BY topic, key""")

_NOT_HELD = text("""
    NOT EXISTS (
        SELECT 1 FROM unnest(CAST(:held_topics AS text[]), CAST(:held_keys AS text[]), CAST(:held_ids AS bigint[]))
               AS h(topic, key, id)
         WHERE h.topic = kit_outbox.topic AND h.key = kit_outbox.key AND kit_outbox.id > h.id)""")

_HELD_COUNT = text("""
    SELECT count(*) FROM kit_outbox AS o
     WHERE o.sent_at IS NULL AND o.set_aside_at IS NULL
       AND EXISTS (SELECT 1 FROM kit_outbox AS s
                    WHERE s.sent_at IS NULL AND s.set_aside_at IS NOT NULL
                      AND s.topic = o.topic AND s.key = o.key AND s.id < o.id)""")
