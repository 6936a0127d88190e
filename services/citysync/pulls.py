"""Pulling a feed: a consumer's page of records in its own hashes, recorded in the register."""

from __future__ import annotations

from typing import TypedDict

import orjson
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import privacy
from services.citysync.domain import SCENES
from services.citysync.problems import ConsumerRevoked, ConsumerUnknown, FeedNotFound
from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page

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


class PulledRecord(TypedDict):
    """One record as the consumer receives it; `data` is already JSON (its keyed hashes the consumer's)."""

    seq: int
    community: str
    scene: str
    record_type: str
    schema_version: int
    event_time: str
    data: orjson.Fragment


class PulledPage(TypedDict):
    scene: str
    community: str
    region_code: str | None
    records: list[PulledRecord]
    next_cursor: str
    has_more: bool


class FeedLatest(TypedDict):
    scene: str
    last_seq: int


async def pull(
    session: AsyncSession, caller: Principal, scene: str, *, after: int, limit: int, region_code: str | None = None
) -> PulledPage:
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
        raise ConsumerRevoked()
    if scene not in SCENES or grant_id is None:
        raise FeedNotFound()
    page = rows[1 : limit + 1]
    rekey, loads, dumps = privacy.ConsumerHasher(bytes(hash_key)).rekey, orjson.loads, orjson.dumps
    community = caller.community
    # Each payload is serialised as soon as it is re-keyed, so its dict is freed at once and the
    # records hold only strings, numbers and a Fragment: untracked by the garbage collector, which
    # otherwise walks (and promotes) every container of the page while it is being built.
    records: list[PulledRecord] = [
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
        "region_code": region_code,
        "records": records,
        "next_cursor": str(page[-1][3] if page else after),
        "has_more": len(rows) > limit + 1,
    }


async def feed_summaries(session: AsyncSession, caller: Principal, page: PageParams) -> tuple[list[FeedLatest], str | None]:
    """The feeds the caller may pull, by scene, with each one's latest sequence number.

    A consumer holds at most one live grant per scene (uq_grants_live, which also serves the order).
    """
    after = page.after_key(str)
    async with transaction(session):
        consumer = (await session.execute(_CONSUMER_FOR_PULL, {"c": caller.community, "id": caller.subject})).first()
        if consumer is None:
            raise ConsumerUnknown()
        if consumer.status != "active":
            raise ConsumerRevoked()
        rows = (
            await session.execute(
                text(
                    "SELECT g.scene, coalesce(c.last_seq, 0) AS last_seq FROM grants g "
                    "LEFT JOIN feed_counters c ON c.community = g.community AND c.scene = g.scene "
                    "WHERE g.community = :c AND g.consumer_id = :id AND g.revoked_at IS NULL "
                    "AND (CAST(:after AS text) IS NULL OR g.scene > :after) ORDER BY g.scene LIMIT :limit"
                ),
                {"c": caller.community, "id": caller.subject, "after": after[0] if after else None, "limit": page.limit + 1},
            )
        ).all()
    feeds: list[FeedLatest] = [{"scene": r.scene, "last_seq": int(r.last_seq)} for r in rows]
    return make_page(feeds, page.limit, lambda feed: [feed["scene"]])
