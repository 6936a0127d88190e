"""The transactional outbox: events are rows written in the same transaction as the change.

`EventPublisher.publish(session, event, key=...)` inserts the row in the use case's transaction;
after the commit, this process's relay is woken (and the other replicas' by one NOTIFY). The relay
itself, which sends the rows to the broker, is `services/kit/relay.py`. Sent rows are kept for a
retention period so an operator can re-publish everything since a time (consumers dedupe by event
id).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent, EventData
from services.kit.tables import outbox
from services.kit.telemetry import current_traceparent

if TYPE_CHECKING:
    from services.kit.relay import OutboxRelay

log = logging.getLogger("kit.outbox")

NOTIFY_CHANNEL = "kit_outbox"


class EventPublisher:
    """Writes a service's events to its outbox. One per service, declared in its `events.py`."""

    def __init__(self, *, source: str, topic: str):
        self.source = source
        self.topic = topic

    async def publish(
        self,
        session: AsyncSession,
        event: EventData,
        *,
        key: str,
        subject: str | None = None,
        occurred_at: datetime | None = None,
    ) -> str:
        """Add the event to the current transaction. Returns the event id."""
        if not session.in_transaction():
            raise RuntimeError("publish() must run inside the use case's transaction")
        ce = CloudEvent(
            type=event.event_type,
            source=self.source,
            data=event.model_dump(mode="json"),
            key=key,
            subject=subject,
            time=occurred_at or datetime.now(UTC),
        )
        return await write_outbox(session, self.topic, ce)

    def outbox_params(self, event: EventData) -> dict[str, Any]:
        """The event as the parameters a database function writes its outbox row from (`p_event_*`,
        `p_traceparent`, `p_tracestate`), for a use case that is one statement. The function
        chooses the key and the time, and writes the row only if its work was done."""
        traceparent, tracestate = current_traceparent()
        return {
            "event_id": str(uuid.uuid4()),
            "event_topic": self.topic,
            "event_type": event.event_type,
            "event_source": self.source,
            "event_data": orjson.dumps(event.model_dump(mode="json")).decode(),
            "traceparent": traceparent,
            "tracestate": tracestate,
        }

    async def publish_many(
        self, session: AsyncSession, event_type: str, data: Sequence[Mapping[str, Any]], keys: Sequence[str]
    ) -> None:
        """Add many events of one type (their data as JSON-ready mappings) to the current
        transaction with one statement, in order, so one key's events are relayed in order.

        For batch endpoints, where a statement, a model and an envelope per event would cost more
        than the work itself. Consumers validate the data against the event type's model.
        """
        if not session.in_transaction():
            raise RuntimeError("publish_many() must run inside the use case's transaction")
        if len(data) != len(keys):
            raise ValueError("one key per event")
        if not data:
            return
        traceparent, tracestate = current_traceparent()
        await session.execute(
            _INSERT_MANY,
            {
                "topic": self.topic,
                "type": event_type,
                "source": self.source,
                "occurred_at": datetime.now(UTC),
                "keys": list(keys),
                "data": [orjson.dumps(d).decode() for d in data],
                "traceparent": traceparent,
                "tracestate": tracestate,
            },
        )
        outbox_written(session)


# Keys and data travel as two arrays; row order (and so relay order) is the events' order.
_INSERT_MANY = text("""
    INSERT INTO kit_outbox (event_id, topic, key, type, source, subject, occurred_at, data, traceparent, tracestate)
    SELECT CAST(gen_random_uuid() AS text), :topic, v.key, :type, :source, NULL, :occurred_at, CAST(v.data AS jsonb),
           :traceparent, :tracestate
      FROM unnest(CAST(:keys AS text[]), CAST(:data AS text[])) WITH ORDINALITY AS v(key, data, n)
     ORDER BY v.n""")


async def write_outbox(session: AsyncSession, topic: str, ce: CloudEvent) -> str:
    traceparent, tracestate = current_traceparent()
    await session.execute(
        outbox.insert().values(
            event_id=ce.id,
            topic=topic,
            key=ce.key,
            type=ce.type,
            source=ce.source,
            subject=ce.subject,
            occurred_at=ce.time,
            data=ce.data,
            traceparent=ce.traceparent or traceparent,
            tracestate=ce.tracestate or tracestate,
        )
    )
    outbox_written(session)
    return ce.id


# --- waking the relay --------------------------------------------------------------------------
# A NOTIFY inside every publishing transaction would make PostgreSQL serialize those commits (the
# notification queue is one global lock held through commit), capping single-event throughput.
# Instead the session is flagged; after its commit, this process wakes its own relay directly and
# asks its notifier to send one NOTIFY for the relays of other replicas, coalescing bursts.

_WRITTEN = "kit_outbox_written"
_wakers: dict[str, set[Callable[[], None]]] = {}


def outbox_written(session: AsyncSession) -> None:
    """Mark that this transaction wrote outbox rows (for code that inserts them itself). Outside a
    transaction the rows are committed already (`execute_alone`), so the relays are woken now."""
    if session.in_transaction():
        session.info[_WRITTEN] = True
    elif isinstance(session.bind, AsyncEngine):
        wake_relays(session.bind)


def _database_key(url: Any) -> str:
    return f"{url.host}:{url.port}/{url.database}"


def register_waker(engine: AsyncEngine, wake: Callable[[], None]) -> Callable[[], None]:
    key = _database_key(engine.url)
    _wakers.setdefault(key, set()).add(wake)
    return lambda: _wakers.get(key, set()).discard(wake)


def wake_relays(engine: AsyncEngine | Engine) -> None:
    """Wake this process's relay and notifier for `engine`'s database: after a commit that wrote
    outbox rows outside a session transaction (`execute_alone`)."""
    for wake in list(_wakers.get(_database_key(engine.url), ())):
        wake()


@sa_event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_WRITTEN, False):
        wake_relays(session.get_bind().engine)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


class OutboxNotifier:
    """Sends `NOTIFY kit_outbox` after commits that wrote events, at most one in flight at a time,
    and none while this process's own relay is the leader (it was woken directly)."""

    def __init__(self, engine: AsyncEngine, relay: OutboxRelay | None = None):
        self.engine = engine
        self.relay = relay
        self._poked = asyncio.Event()

    def poke(self) -> None:
        self._poked.set()

    async def run(self) -> None:
        unregister = register_waker(self.engine, self.poke)
        try:
            while True:
                await self._poked.wait()
                self._poked.clear()
                if self.relay is not None and self.relay.is_leader:
                    continue
                try:
                    async with self.engine.connect() as conn:
                        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
                        await conn.commit()
                except Exception as exc:  # the relays poll as well; a lost wake-up only delays
                    log.warning("outbox notify failed: %s", exc.__class__.__name__)
                    await asyncio.sleep(0.5)
        finally:
            unregister()


async def republish_since(engine: AsyncEngine, since: datetime) -> int:
    """Mark every event that occurred since `since` unsent, so the relay sends it again; events set
    aside are tried again too (the operator has fixed the cause)."""
    async with engine.begin() as conn:
        result = await conn.execute(update(outbox).where(outbox.c.occurred_at >= since).values(sent_at=None, set_aside_at=None))
        await conn.execute(text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))
    return int(result.rowcount or 0)


async def unsent_count(engine: AsyncEngine) -> int:
    """Events waiting for the relay (not those set aside, which wait for the operator)."""
    async with engine.connect() as conn:
        waiting = outbox.c.sent_at.is_(None) & outbox.c.set_aside_at.is_(None)
        return int((await conn.execute(select(func.count()).select_from(outbox).where(waiting))).scalar_one())
