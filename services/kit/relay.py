"""The outbox relay: sends a service's outbox rows to the broker, in order, and keeps them there.

`OutboxRelay` runs in every replica; one of them at a time holds an advisory lock and relays, so
one aggregate's events reach the broker in the order they were written. It claims unsent rows with
`FOR UPDATE SKIP LOCKED` (the operator's republish command can run beside it), sends them with
acks=all, and marks them sent, with the partition and offset the broker gave each, in the same
transaction. A broker outage leaves the rows unsent; they go out when it returns.

Order per key holds under partial failure: a partition's batches are pipelined (each handed to the
producer once the one before it was), and a gate on the producer fails the batches queued behind a
refused one before they can be sent (`partition_batches.py`), so after a refused batch nothing
later for that partition is sent until the refused events go again, in order. An event the broker
can never accept (larger than `max_event_bytes`, or refused as too large when sent alone) is set
aside with its reason; the later events of its key are held behind it (never sent ahead of it) until
the operator re-sends or deletes it, and every other key keeps flowing.

On reconnecting, and every `loss_check_interval_s`, the relay asks the broker what it still holds
(`broker_loss`) and sends again what it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry import trace
from sqlalchemy import Select, Text, delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.broker_loss import (
    Acknowledged,
    BrokerLostEvents,
    PartitionLoss,
    acknowledged_offsets,
    find_losses,
    record_acknowledged,
    resend_lost,
)
from services.kit.db import plain_url
from services.kit.held_keys import Held, held_keys, not_held
from services.kit.outbox import NOTIFY_CHANNEL, register_waker
from services.kit.partition_batches import NEVER_ACCEPTED, Handed, HeldBack, PartitionChains, Slot
from services.kit.tables import outbox
from services.kit.telemetry import (
    OUTBOX_LOSSES,
    OUTBOX_RESENT,
    OUTBOX_SENT,
    OUTBOX_SET_ASIDE,
    safe_reason,
    span_context_of,
    tracer,
)

log = logging.getLogger("kit.outbox")

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


def claim_statement(batch_size: int, held: Held) -> Select[Any]:
    """The next unsent rows in id order, locked, skipping those another transaction holds."""
    claim = select(*_RELAY_COLUMNS).where(outbox.c.sent_at.is_(None), outbox.c.set_aside_at.is_(None))
    if held:  # left out of the claim, else held rows at its head would block it
        claim = claim.where(not_held(held))
    return claim.order_by(outbox.c.id).limit(batch_size).with_for_update(skip_locked=True)


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
        loss_check_interval_s: float = 5.0,
        max_event_bytes: int = 1_000_000,
        announce: Callable[[Iterable[str]], None] | None = None,
    ):
        self.service = service
        # Told the topics of each batch the broker acknowledged: wakes idle consumers (`wakes.py`).
        self.announce = announce
        self.namespace = namespace
        self.engine = engine
        self.producer_factory = producer_factory
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.retention = retention
        self.loss_check_interval_s = loss_check_interval_s
        self.max_event_bytes = max_event_bytes
        self.producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._listen_conn: asyncpg.Connection | None = None
        self._lock_key = zlib.crc32(f"kit_outbox_relay:{service}".encode())
        self.is_leader = False
        self._last_prune = 0.0
        self._tracer = tracer("kit.outbox")
        # What the broker acknowledged, per partition: loaded from the database, kept while sending.
        self._acked: dict[Slot, int] | None = None
        self._cluster_id: str | None = None
        self._checked_at: float | None = None  # None: check before the next send
        self._chains = PartitionChains(namespace, max_event_bytes, self._load_acked)
        # Keys with a set-aside event: their later events are held behind it (`held_keys`).
        self._held: Held = {}

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
            self._checked_at = None
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
        self._checked_at = None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    # --- what the broker still holds ----------------------------------------------------------

    async def check_broker(self) -> list[PartitionLoss]:
        """Compare what the broker holds with what it acknowledged; send again what it lost."""
        producer = await self.ensure_producer()
        async with self.engine.connect() as conn:
            known = await acknowledged_offsets(conn)
        self._cluster_id, losses = await asyncio.wait_for(find_losses(producer.client, self.namespace, known), 10)
        if losses:
            await self.recover(losses)
        self._acked = None
        self._checked_at = asyncio.get_running_loop().time()
        return losses

    async def recover(self, losses: list[PartitionLoss]) -> None:
        async with self.engine.begin() as conn:
            counts = [await resend_lost(conn, loss, self._cluster_id) for loss in losses]
        # A new producer reads the topics afresh (a re-created topic may have other partitions).
        await self._reset_producer()
        for loss, count in zip(losses, counts, strict=True):
            OUTBOX_LOSSES.labels(self.service).inc()
            OUTBOX_RESENT.labels(self.service).inc(count)
            log.warning(
                "broker lost events of %s: %s[%d] holds only offsets below %d (%s); sending %d events again",
                self.service,
                loss.topic,
                loss.partition,
                loss.holds_below,
                loss.reason,
                count,
            )
        self._acked = None

    async def _load_acked(self) -> dict[Slot, int]:
        if self._acked is None:
            async with self.engine.connect() as conn:
                known: dict[Slot, Acknowledged] = await acknowledged_offsets(conn)
            self._acked = {slot: acked.offset for slot, acked in known.items()}
        return self._acked

    # --- leadership and wake-ups ---------------------------------------------------------------

    async def _ensure_listener(self) -> None:
        conn = self._listen_conn
        if conn is not None and not conn.is_closed():
            return
        self.is_leader = False
        conn = await asyncpg.connect(plain_url(self.engine.url.render_as_string(hide_password=False)), timeout=5)
        try:
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except BaseException:
            await conn.close()
            raise
        self._listen_conn = conn

    async def _try_lead(self) -> None:
        assert self._listen_conn is not None
        if not self.is_leader:
            self.is_leader = bool(await self._listen_conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key))
            if self.is_leader:  # another relay may have sent since this one last knew
                self._acked = None
                self._checked_at = None

    async def close(self) -> None:
        await self._reset_producer()
        await self._drop_listener()

    # --- the work -----------------------------------------------------------------------------

    async def drain(self, in_flight: int = 3) -> int:
        """Send everything unsent. While one batch waits for the broker's acks, the next is claimed
        and handed on: claims are serialized, so rows enter each partition's chain in id order."""
        await self._load_acked()
        async with self.engine.connect() as conn:
            self._held = await held_keys(conn)
        pending: list[asyncio.Task[int]] = []
        total = 0
        try:
            while True:
                conn, handed = await self._claim_and_send()
                if not handed.claimed:
                    await conn.close()
                    break
                pending.append(asyncio.create_task(self._confirm(conn, handed)))
                if handed.claimed < self.batch_size:
                    break
                while len(pending) >= in_flight:
                    total += await pending.pop(0)
            for task in pending:
                total += await task
            pending.clear()
        except asyncio.CancelledError:
            for task in pending:
                task.cancel()
            self._chains.cancel()
            raise
        finally:
            # After a failure, the confirms under way still record what the broker acknowledged
            # (else it is sent twice); then nothing handed on in this drain may reach the broker
            # after it: a later drain starts each partition's chain afresh.
            await asyncio.gather(*pending, return_exceptions=True)
            await self._chains.close()
        return total

    async def _claim_and_send(self) -> tuple[Any, Handed]:
        producer = await self.ensure_producer()
        conn = await self.engine.connect()
        try:
            await conn.begin()
            await conn.execute(PLAN_BY_INDEX)
            rows = (await conn.execute(claim_statement(self.batch_size, self._held))).all()
            handed = await self._chains.hand_on(producer, rows, self._held)
            self._record_publish_span(handed.claimed, handed.links)
        except BaseException:
            await conn.close()
            raise
        return conn, handed

    def _record_publish_span(self, count: int, traceparents: list[str]) -> None:
        """One PRODUCER span per batch handed to the producer, linked to each message's creator
        (OpenTelemetry's convention for batch publishing)."""
        links = []
        for traceparent in traceparents[:_MAX_LINKS]:
            ctx = span_context_of(traceparent)
            if ctx is not None:
                links.append(trace.Link(ctx))
        span = self._tracer.start_span(
            "outbox publish",
            kind=trace.SpanKind.PRODUCER,
            links=links,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": count},
        )
        span.end()

    async def _confirm(self, conn: Any, handed: Handed) -> int:
        """Wait for the broker's answer to each batch of a claim, and record it in the claim's
        transaction: a batch at a time (its rows' offsets follow from the batch's)."""
        sent_ids: list[int] = []
        partitions: list[int] = []
        offsets: list[int] = []
        failed: list[int] = []
        set_aside = handed.set_aside
        last_offsets: dict[Slot, int] = {}
        error: BaseException | None = None
        try:
            if not handed.claimed:
                return 0
            outcomes = await asyncio.gather(*(b.task for b in handed.batches), return_exceptions=True)
            for batch, outcome in zip(handed.batches, outcomes, strict=True):
                if isinstance(outcome, NEVER_ACCEPTED) and batch.ids[0] in self._chains.send_alone:
                    # Sent alone and still refused as too large: this event is the one at fault.
                    set_aside[batch.ids[0]] = f"the broker refused it: {outcome!r}"
                    self._held.setdefault((batch.slot[0], batch.keys[0]), batch.ids[0])
                elif isinstance(outcome, BaseException):
                    failed.extend(batch.ids)
                    if isinstance(outcome, NEVER_ACCEPTED):
                        self._chains.send_alone.update(batch.ids)
                    # A loss wins (the relay repairs it); a batch held back only echoes another's failure.
                    if error is None or isinstance(error, HeldBack) or isinstance(outcome, BrokerLostEvents):
                        error = outcome
                else:
                    first = outcome.offset
                    sent_ids.extend(batch.ids)
                    partitions.extend([outcome.partition] * len(batch.ids))
                    offsets.extend(range(first, first + len(batch.ids)))
                    slot = (batch.slot[0], outcome.partition)
                    last_offsets[slot] = max(last_offsets.get(slot, -1), first)
            if last_offsets and self.announce is not None:
                self.announce({self.namespace + topic for topic, _ in last_offsets})
            if sent_ids:
                await conn.execute(_MARK_SENT, {"ids": sent_ids, "partitions": partitions, "offsets": offsets})
                await record_acknowledged(conn, last_offsets, self._cluster_id)
            if failed:
                await conn.execute(
                    text("UPDATE kit_outbox SET attempts = attempts + 1, last_error = :err WHERE id = ANY(:ids)"),
                    {"ids": failed, "err": safe_reason(repr(error))},
                )
            if set_aside:
                ids = list(set_aside)
                await conn.execute(_SET_ASIDE, {"ids": ids, "reasons": [safe_reason(set_aside[i]) for i in ids]})
            await conn.commit()
        finally:
            await conn.close()
        self._chains.send_alone.difference_update(set_aside)
        OUTBOX_SENT.labels(self.service).inc(len(sent_ids))
        for row_id, reason in set_aside.items():
            OUTBOX_SET_ASIDE.labels(self.service).inc()
            log.error("outbox event %d of %s set aside, the broker can never accept it: %s", row_id, self.service, reason)
        if isinstance(error, BrokerLostEvents):
            raise error
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
                if self._checked_at is None or loop.time() - self._checked_at >= self.loss_check_interval_s:
                    await self.check_broker()
                await self.drain()
                if loop.time() - self._last_prune > 3600:
                    self._last_prune = loop.time()
                    await self.prune()
                backoff = 0.2
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except BrokerLostEvents as lost:
                await self.recover([lost.loss])
            except Exception as exc:  # an outage: wait and try again, never drop
                log.warning("outbox relay for %s paused: %s: %s", self.service, exc.__class__.__name__, exc)
                if isinstance(exc, KafkaError | ConnectionError | TimeoutError):
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


# The claim and the marking of a batch, planned by their indexes whatever the statistics say. The
# outbox is a queue: its unsent part swings from none to a backlog faster than autovacuum analyzes
# it, and with statistics saying "few unsent" the planner sorted every unsent row (rendering each
# one's JSON) on each claim, and marked a batch sent by hashing the whole table: a cost per batch
# that grows with the backlog, just when a backlog is being sent. For this transaction only.
PLAN_BY_INDEX = text("""
    SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
           set_config('enable_sort', 'off', true), set_config('enable_hashjoin', 'off', true),
           set_config('enable_mergejoin', 'off', true)""")

# One statement for the whole batch: arrays rather than a thousand bound values.
_MARK_SENT = text("""
    UPDATE kit_outbox AS o SET sent_at = now(), kafka_partition = v.partition, kafka_offset = v.kafka_offset
      FROM unnest(CAST(:ids AS bigint[]), CAST(:partitions AS integer[]), CAST(:offsets AS bigint[]))
           AS v(id, partition, kafka_offset)
     WHERE o.id = v.id""")

_SET_ASIDE = text("""
    UPDATE kit_outbox AS o SET set_aside_at = now(), last_error = v.reason
      FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS v(id, reason)
     WHERE o.id = v.id""")
