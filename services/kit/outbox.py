"""The transactional outbox: events are rows written in the same transaction as the change.

`EventPublisher.publish(session, event, key=...)` inserts the row and a NOTIFY that PostgreSQL
delivers only at commit. `OutboxRelay` runs in every replica; one of them at a time holds an
advisory lock and relays, so one aggregate's events reach the broker in the order they were
written. It claims unsent rows with `FOR UPDATE SKIP LOCKED` (the operator's republish command can
run beside it), sends them with acks=all, and marks them sent in the same transaction. A broker
outage leaves the rows unsent; they go out when it returns. Sent rows are kept for a retention
period so an operator can re-publish everything since a time (consumers dedupe by event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry import trace
from sqlalchemy import Text, delete, func, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import plain_url
from services.kit.envelope import CloudEvent, EventData, kafka_headers
from services.kit.tables import outbox
from services.kit.telemetry import OUTBOX_SENT, context_from, current_traceparent, tracer

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


_PARTITIONER = DefaultPartitioner()
_MAX_LINKS = 128  # the SDK's default span limit

_RELAY_COLUMNS = (
    outbox.c.id,
    outbox.c.event_id,
    outbox.c.topic,
    outbox.c.key,
    outbox.c.type,
    outbox.c.source,
    outbox.c.subject,
    outbox.c.occurred_at,
    outbox.c.data.cast(Text).label("data_json"),
    outbox.c.traceparent,
    outbox.c.tracestate,
)


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        producer_factory: Any,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retention: timedelta = timedelta(days=7),
        namespace: str = "",
    ):
        self.service = service
        self.namespace = namespace
        self.engine = engine
        self.producer_factory = producer_factory
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.retention = retention
        self.producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._listen_conn: asyncpg.Connection | None = None
        self._lock_key = zlib.crc32(f"kit_outbox_relay:{service}".encode())
        self.is_leader = False
        self._last_prune = 0.0
        self._tracer = tracer("kit.outbox")

    # --- the broker connection ---------------------------------------------------------------

    async def ensure_producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer: AIOKafkaProducer = self.producer_factory()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self.producer = producer
        return self.producer

    async def broker_reachable(self, timeout: float = 2.0) -> bool:
        try:
            producer = await asyncio.wait_for(self.ensure_producer(), timeout)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
            return True
        except (TimeoutError, KafkaError, OSError):
            return False

    async def _reset_producer(self) -> None:
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    # --- leadership and wake-ups ---------------------------------------------------------------

    async def _ensure_listener(self) -> None:
        conn = self._listen_conn
        if conn is not None and not conn.is_closed():
            return
        self.is_leader = False
        conn = await asyncpg.connect(plain_url(self.engine.url.render_as_string(hide_password=False)), timeout=5)
        try:
            self.is_leader = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key))
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except BaseException:
            await conn.close()
            raise
        self._listen_conn = conn

    async def _try_lead(self) -> None:
        assert self._listen_conn is not None
        if not self.is_leader:
            self.is_leader = bool(await self._listen_conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key))

    async def close(self) -> None:
        await self._reset_producer()
        await self._drop_listener()

    # --- the work -----------------------------------------------------------------------------

    async def drain(self, in_flight: int = 3) -> int:
        """Send everything unsent. While one batch waits for the broker's acks, the next is claimed
        and handed to the producer: claims are serialized, so rows enter the producer in id order."""
        pending: list[asyncio.Task[int]] = []
        total = 0
        try:
            while True:
                claimed = await self._claim_and_send()
                if not claimed[1]:
                    await claimed[0].close()
                    break
                pending.append(asyncio.create_task(self._confirm(*claimed)))
                if len(claimed[1]) < self.batch_size:
                    break
                while len(pending) >= in_flight:
                    total += await pending.pop(0)
            for task in pending:
                total += await task
            pending.clear()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return total

    async def _claim_and_send(self) -> tuple[Any, list[Any], list[asyncio.Future[Any]]]:
        producer = await self.ensure_producer()
        conn = await self.engine.connect()
        try:
            await conn.begin()
            rows = list(
                (
                    await conn.execute(
                        select(*_RELAY_COLUMNS)
                        .where(outbox.c.sent_at.is_(None))
                        .order_by(outbox.c.id)
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            futures = await self._send_rows(producer, rows)
        except BaseException:
            await conn.close()
            raise
        return conn, rows, futures

    async def _send_rows(self, producer: AIOKafkaProducer, rows: list[Any]) -> list[asyncio.Future[Any]]:
        """Hand rows to the producer as explicit per-partition batches; one future per row.

        Each row goes to the partition the default partitioner picks for its key (so a key's
        events share a partition, as with `send`), in id order within it. Building the batches
        directly skips the per-message future and partition lookup that `send` costs.
        """
        links: list[str] = []
        row_batches: list[int] = []  # for each row, the index of its batch's future
        batch_futures: list[asyncio.Future[Any]] = []
        open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        partitions: dict[str, tuple[list[int], list[int]]] = {}

        async def flush(slot: tuple[str, int]) -> None:
            batch, members = open_batches.pop(slot)
            batch_futures.append(await producer.send_batch(batch, slot[0], partition=slot[1]))
            for index in members:
                row_batches[index] = len(batch_futures) - 1

        for index, row in enumerate(rows):
            _, event_id, topic, key, type_, source, subject, occurred_at, data_json, traceparent, tracestate = row
            topic = self.namespace + topic
            if topic not in partitions:
                all_parts = sorted(await producer.partitions_for(topic))
                available = sorted(producer.client.cluster.available_partitions_for_topic(topic) or all_parts)
                partitions[topic] = (all_parts, available)
            key_bytes = key.encode()
            slot = (topic, _PARTITIONER(key_bytes, *partitions[topic]))
            # Each message carries its creation context (the request that wrote it): the consumer's
            # span continues that trace. The batch's one publish span links to all of them.
            headers = kafka_headers(
                id=event_id,
                source=source,
                type=type_,
                time=occurred_at,
                subject=subject,
                traceparent=traceparent,
                tracestate=tracestate,
            )
            if traceparent:
                links.append(traceparent)
            value = data_json.encode()
            row_batches.append(-1)
            for _attempt in range(2):
                if slot not in open_batches:
                    open_batches[slot] = (producer.create_batch(), [])
                batch, members = open_batches[slot]
                if batch.append(timestamp=None, key=key_bytes, value=value, headers=headers) is not None:
                    members.append(index)
                    break
                await flush(slot)  # full: send it, then start the next batch for this partition
            else:
                raise ValueError(f"event {event_id} does not fit in an empty batch (max_batch_size)")
        for slot in list(open_batches):
            await flush(slot)
        self._record_publish_span(len(rows), links)
        return [batch_futures[i] for i in row_batches]

    def _record_publish_span(self, count: int, traceparents: list[str]) -> None:
        """One PRODUCER span per batch handed to the producer, linked to each message's creator
        (OpenTelemetry's convention for batch publishing)."""
        links = []
        for traceparent in traceparents[:_MAX_LINKS]:
            ctx = trace.get_current_span(context_from(traceparent)).get_span_context()
            if ctx.is_valid:
                links.append(trace.Link(ctx))
        span = self._tracer.start_span(
            "outbox publish",
            kind=trace.SpanKind.PRODUCER,
            links=links,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": count},
        )
        span.end()

    async def _confirm(self, conn: Any, rows: list[Any], futures: list[asyncio.Future[Any]]) -> int:
        try:
            if not rows:
                return 0
            results = await asyncio.gather(*futures, return_exceptions=True)
            sent_ids: list[int] = []
            failed: list[int] = []
            for row, result in zip(rows, results, strict=True):
                (failed if isinstance(result, BaseException) else sent_ids).append(row[0])
            # One array parameter rather than a thousand bound values.
            if sent_ids:
                await conn.execute(text("UPDATE kit_outbox SET sent_at = now() WHERE id = ANY(:ids)"), {"ids": sent_ids})
            if failed:
                error = next(r for r in results if isinstance(r, BaseException))
                await conn.execute(
                    text("UPDATE kit_outbox SET attempts = attempts + 1, last_error = :err WHERE id = ANY(:ids)"),
                    {"ids": failed, "err": repr(error)[:1000]},
                )
            await conn.commit()
        finally:
            await conn.close()
        OUTBOX_SENT.labels(self.service).inc(len(sent_ids))
        if failed:
            raise ConnectionError(f"{len(failed)} events not acknowledged by the broker: {error!r}")
        return len(sent_ids)

    async def prune(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(outbox).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < datetime.now(UTC) - self.retention)
            )
        return int(result.rowcount or 0)

    async def run(self) -> None:
        unregister = register_waker(self.engine, self._wake.set)
        try:
            await self._run()
        finally:
            unregister()

    async def _run(self) -> None:
        backoff = 0.2
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._ensure_listener()
                await self._try_lead()
                if not self.is_leader:
                    # Another replica relays; check again now and then in case it went away.
                    await asyncio.sleep(max(self.poll_interval_s, 2.0))
                    continue
                self._wake.clear()
                await self.drain()
                if loop.time() - self._last_prune > 3600:
                    self._last_prune = loop.time()
                    await self.prune()
                backoff = 0.2
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage: wait and try again, never drop
                log.warning("outbox relay for %s paused: %s: %s", self.service, exc.__class__.__name__, exc)
                if isinstance(exc, KafkaError | ConnectionError):
                    await self._reset_producer()
                else:
                    # A database error may have cost us the advisory lock: reconnect and re-elect.
                    await self._drop_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drop_listener(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        self.is_leader = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)


async def republish_since(engine: AsyncEngine, since: datetime) -> int:
    """Mark every event that occurred since `since` unsent, so the relay sends it again."""
    async with engine.begin() as conn:
        result = await conn.execute(update(outbox).where(outbox.c.occurred_at >= since).values(sent_at=None))
        await conn.execute(text(f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"))
    return int(result.rowcount or 0)


async def unsent_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))).scalar_one())
