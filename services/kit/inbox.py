"""The idempotent consumer: each event's effect and its inbox row commit in one transaction.

For each message, in partition order: decode the CloudEvent; in one transaction insert
`(group, source, id)` into the inbox (a duplicate means it was applied before: skip) and run the
handler for its type; commit; only then commit the Kafka offset. Redelivery is therefore harmless.

Failures are of two kinds. An outage (the database unreachable) is waited out, however long,
without counting against the event: an outage delays work and never drops it. Any other error is
retried with backoff up to `max_attempts`, then the event goes to the group's dead-letter topic
`<group>.dlq` with the error in its headers, and the events behind it keep flowing. The operator
command `replay_dead_letters` sends dead letters to `<group>.retry`, which the group also reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.envelope import CloudEvent, InvalidEnvelope
from services.kit.kafka import make_consumer, make_producer
from services.kit.partition_lanes import PartitionLanes
from services.kit.settings import ServiceSettings
from services.kit.tables import inbox
from services.kit.telemetry import CONSUMER_APPLIED, CONSUMER_DEAD, context_from, safe_reason, tracer
from services.kit.wakes import Wakes, make_resting_consumer

log = logging.getLogger("kit.inbox")

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
# Applies a whole fetched batch's new events (in partition order, each once) in one go.
BatchHandler = Callable[[AsyncSession, list[CloudEvent]], Awaitable[None]]


# A batch's inbox rows from three arrays: one statement whose text never changes with the batch's
# size (a multi-row VALUES is compiled afresh for each size, and costs more CPU than the insert).
# The rows added come back as two arrays in one row, not a row each: a backlog's batch is thousands.
INSERT_INBOX_BATCH = text(
    f"""
    WITH added AS (
        INSERT INTO {inbox.name} (consumer_group, source, event_id, event_type)
        SELECT :group, source, event_id, event_type
        FROM unnest(CAST(:sources AS text[]), CAST(:ids AS text[]), CAST(:types AS text[])) AS e(source, event_id, event_type)
        ON CONFLICT DO NOTHING
        RETURNING source, event_id
    )
    SELECT array_agg(source) AS sources, array_agg(event_id) AS ids FROM added
    """
)


def dlq_topic(group: str) -> str:
    return f"{group}.dlq"


def retry_topic(group: str) -> str:
    return f"{group}.retry"


_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: connection exceptions
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
)


def is_outage(exc: BaseException) -> bool:
    """True for errors that mean 'the database is not there right now', not 'this event is bad'."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        orig = exc.orig
        return any(isinstance(e, _OUTAGE_TYPES) for e in (orig, getattr(orig, "__cause__", None)) if e is not None)
    return isinstance(exc, _OUTAGE_TYPES)


@dataclass
class ConsumerSpec:
    """What a service's `consumers.py` declares: a group, its topics, and handlers by event type."""

    group: str
    topics: list[str]
    handlers: Mapping[str, Handler]
    # Apply each fetched batch of a partition in one transaction (one commit for up to
    # `max_batch` events) when the handlers are cheap and commits dominate. A batch that fails
    # for any reason but an outage is applied again event by event, with the usual retries.
    apply_in_batches: bool = False
    max_batch: int = 500
    # With `apply_in_batches`: one call for the batch's new events instead of a handler call per
    # event, so a service can do set-based work (one query, one insert for the whole batch).
    # Events applied one at a time (a batch of one, the fallback) still go to `handlers`.
    batch_handler: BatchHandler | None = None
    # Apply up to this many partitions' batches at once, each in its own transactions: one batch's
    # Python runs while another's statements do. Order holds within a partition (as Kafka's);
    # handlers must be safe to run concurrently (row locks taken in one order).
    partitions_at_once: int = 1
    # How long the broker may hold an empty fetch. The local profile's 10 ms keeps latency low but
    # polls constantly until the consumer rests (`wakes.py`, 0.2 s after catching up, with Redis);
    # a group that is rarely busy and not latency-bound can wait longer.
    fetch_max_wait_ms: int | None = None


class EventConsumer:
    def __init__(
        self,
        spec: ConsumerSpec,
        *,
        settings: ServiceSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        wakes: Wakes | None = None,
    ):
        self.spec = spec
        self.wakes = wakes  # with them, the consumer rests while idle (services/kit/wakes.py)
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.max_attempts = settings.consumer_max_attempts
        self.backoff_s = settings.consumer_backoff_s
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._tracer = tracer("kit.inbox")
        self.ready = asyncio.Event()

    @property
    def group(self) -> str:
        return self.settings.kafka_namespace + self.spec.group

    @property
    def topics(self) -> list[str]:
        ns = self.settings.kafka_namespace
        return [*(ns + t for t in self.spec.topics), retry_topic(self.group)]

    async def apply(self, event: CloudEvent) -> bool:
        """Apply one event exactly once. Returns False when it had been applied already."""
        handler = self.spec.handlers.get(event.type)
        async with self.sessionmaker() as session, session.begin():
            inserted = (
                await session.execute(
                    insert(inbox)
                    .values(consumer_group=self.spec.group, source=event.source, event_id=event.id, event_type=event.type)
                    .on_conflict_do_nothing()
                    .returning(inbox.c.event_id)
                )
            ).first()
            if inserted is None:
                return False
            if handler is not None:
                await handler(session, event)
        CONSUMER_APPLIED.labels(self.spec.group, event.type).inc()
        return True

    async def _start(self) -> None:
        producer = make_producer(self.settings)
        extra = {} if self.spec.fetch_max_wait_ms is None else {"fetch_max_wait_ms": self.spec.fetch_max_wait_ms}
        if self.wakes is None:
            consumer = make_consumer(self.settings, *self.topics, group_id=self.group, **extra)
        else:
            consumer = make_resting_consumer(self.wakes, self.settings, *self.topics, group_id=self.group, **extra)
        try:
            await producer.start()
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self.producer, self.consumer = producer, consumer

    async def close(self) -> None:
        consumer, producer = self.consumer, self.producer
        self.consumer = self.producer = None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if self.consumer is None:
                    await self._start()
                    backoff = 0.2
                assert self.consumer is not None
                self.ready.set()
                if self.spec.partitions_at_once > 1:
                    await self._apply_partitions_at_once(self.consumer)  # returns only by an error
                    continue
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.spec.max_batch)
                for tp, records in batches.items():
                    await self._apply_in_order(records)
                    await self.consumer.commit({tp: records[-1].offset + 1})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer %s paused: %s: %s", self.spec.group, exc.__class__.__name__, exc)
                self.ready.clear()
                await self.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _apply_in_order(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        """One partition's fetched records, in order: in batches of `max_batch` when the spec says so."""
        step = self.spec.max_batch
        for chunk in (records[i : i + step] for i in range(0, len(records), step)):
            if not (self.spec.apply_in_batches and len(chunk) > 1 and await self._deliver_batch(chunk)):
                for record in chunk:
                    await self._deliver(record)

    async def _apply_partitions_at_once(self, consumer: AIOKafkaConsumer) -> None:
        """Each partition's records in its own lane, in order, none waiting for the others; a lane
        commits its partition's offset after each applied batch (`partition_lanes`)."""
        lanes = PartitionLanes(consumer, self._apply_in_order, batch=self.spec.max_batch, at_once=self.spec.partitions_at_once)
        await lanes.run()

    async def apply_batch(self, events: list[CloudEvent]) -> int:
        """Apply events in one transaction, skipping those applied before; returns how many were new."""
        async with self.sessionmaker() as session, session.begin():
            added = (
                await session.execute(
                    INSERT_INBOX_BATCH,
                    {
                        "group": self.spec.group,
                        "sources": [e.source for e in events],
                        "ids": [e.id for e in events],
                        "types": [e.type for e in events],
                    },
                )
            ).one()
            # As many added as sent: none was applied before, and none came twice in the batch.
            fresh = events if len(added.ids or ()) == len(events) else _added_once(events, added.sources, added.ids)
            if self.spec.batch_handler is not None:
                await self.spec.batch_handler(session, fresh)
            else:
                for event in fresh:
                    handler = self.spec.handlers.get(event.type)
                    if handler is not None:
                        await handler(session, event)
            applied = len(fresh)
        # One labelled child per type, not a lookup per event (a backlog's batch is thousands).
        for event_type, count in Counter(event.type for event in events).items():
            CONSUMER_APPLIED.labels(self.spec.group, event_type).inc(count)
        return applied

    async def _deliver_batch(self, records: list[ConsumerRecord[Any, Any]]) -> bool:
        """True when the whole batch was applied; False to fall back to one event at a time."""
        try:
            events = [CloudEvent.from_kafka(r.key, r.value, r.headers) for r in records]
        except InvalidEnvelope:
            return False
        outage_backoff = 0.2
        while True:
            with self._tracer.start_as_current_span(
                f"{records[0].topic} process batch", kind=trace.SpanKind.CONSUMER, links=_links(events)
            ) as span:
                span.set_attribute("messaging.batch.message_count", len(events))
                span.set_attribute("messaging.consumer.group.name", self.spec.group)
                try:
                    await self.apply_batch(events)
                    return True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_outage(exc):
                        log.info(
                            "batch of %d in %s fell back to single events: %s",
                            len(events),
                            self.spec.group,
                            exc.__class__.__name__,
                        )
                        return False
                    await asyncio.sleep(outage_backoff)
                    outage_backoff = min(outage_backoff * 2, 5.0)

    async def _deliver(self, record: ConsumerRecord[Any, Any]) -> None:
        try:
            event = CloudEvent.from_kafka(record.key, record.value, record.headers)
        except InvalidEnvelope as exc:
            await self._dead_letter(record, f"invalid envelope: {exc}", attempts=1)
            return
        parent = context_from(event.traceparent, event.tracestate)
        attempts = 0
        outage_backoff = 0.2
        while True:
            with self._tracer.start_as_current_span(
                f"{record.topic} process", context=parent, kind=trace.SpanKind.CONSUMER
            ) as span:
                span.set_attribute("messaging.system", "kafka")
                span.set_attribute("messaging.consumer.group.name", self.spec.group)
                span.set_attribute("messaging.message.id", event.id)
                span.set_attribute("cloudevents.event_type", event.type)
                try:
                    await self.apply(event)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(trace.StatusCode.ERROR)
                    if is_outage(exc):
                        # Not the event's fault: wait for the database without spending attempts.
                        log.warning("consumer %s waiting for the database: %s", self.spec.group, exc.__class__.__name__)
                        await asyncio.sleep(outage_backoff)
                        outage_backoff = min(outage_backoff * 2, 5.0)
                        continue
                    attempts += 1
                    log.warning(
                        "event %s (%s) failed in %s, attempt %d/%d: %s",
                        event.id,
                        event.type,
                        self.spec.group,
                        attempts,
                        self.max_attempts,
                        exc.__class__.__name__,
                        extra={"event_id": event.id, "event_type": event.type},
                    )
                    if attempts >= self.max_attempts:
                        await self._dead_letter(record, f"{exc.__class__.__name__}: {exc}", attempts)
                        return
            await asyncio.sleep(self.backoff_s * 2 ** (attempts - 1))

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], error: str, attempts: int) -> None:
        assert self.producer is not None
        headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
        headers += [
            # The error's text may quote the event's data: masked and bounded (`safe_reason`).
            ("dlq_error", safe_reason(error).encode()),
            ("dlq_group", self.spec.group.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self.producer.send_and_wait(dlq_topic(self.group), value=record.value, key=record.key, headers=headers)
        CONSUMER_DEAD.labels(self.spec.group).inc()
        log.error(
            "event at %s[%d]@%d dead-lettered by %s after %d attempts",
            record.topic,
            record.partition,
            record.offset,
            self.spec.group,
            attempts,
        )


def _added_once(events: list[CloudEvent], sources: list[str] | None, ids: list[str] | None) -> list[CloudEvent]:
    """The events whose inbox row this batch added, each once (an event twice in a batch: the first)."""
    new = set(zip(sources or (), ids or (), strict=True))
    fresh = []
    for event in events:
        if (event.source, event.id) in new:
            new.discard((event.source, event.id))
            fresh.append(event)
    return fresh


def _links(events: list[CloudEvent]) -> list[trace.Link]:
    """A batch span links to each event's producing span: every trace still reaches its effect."""
    links = []
    for event in events:
        ctx = context_from(event.traceparent, event.tracestate)
        if ctx is not None:
            span_ctx = trace.get_current_span(ctx).get_span_context()
            if span_ctx.is_valid:
                links.append(trace.Link(span_ctx))
    return links


__all__ = ["BatchHandler", "ConsumerSpec", "EventConsumer", "Handler", "KafkaError"]
