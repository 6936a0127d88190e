"""Handing claimed outbox rows to the producer as per-partition batches, in order per partition.

Each row goes to the partition the default partitioner picks for its key (so a key's events share
a partition, as with `send`), in id order within it. Building the batches directly skips the
per-message future and partition lookup that `send` costs.

A partition's batches are pipelined: each is handed to the producer as soon as the one before it is
(aiokafka keeps one queued behind the one in flight, and sends a partition's batches one request at
a time), so the broker is never left waiting for the relay. Order per key still holds when the
broker refuses a batch and would accept the next: the `PartitionGate` installed on the producer
looks, each time its sender takes batches to send, for a refused batch of the relay's, and fails
every batch queued behind it for that partition (`HeldBack`) before the sender can take it; a
batch not yet handed on is not. So after a refused batch nothing later for that partition reaches
the broker, and the relay's next drain sends the refused events again first: the idempotent
producer's guarantee, kept on brokers without it (Tansu). Each acknowledgement must come at an
offset above the partition's last acknowledged one; if not, the broker lost events
(`BrokerLostEvents`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from services.kit.broker_loss import BrokerLostEvents, PartitionLoss
from services.kit.envelope import kafka_headers
from services.kit.held_keys import Held

_PARTITIONER = DefaultPartitioner()
# Refusals that sending again cannot cure: the event is too large for the broker.
NEVER_ACCEPTED = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)

Slot = tuple[str, int]  # (outbox topic, partition)
_MAX_CACHED_KEYS = 100_000


class HeldBack(ConnectionError):
    """A batch not sent because an earlier batch for its partition was not acknowledged."""


@dataclass
class Handed:
    """What became of one claim's rows: batches handed on (each with its rows' ids, in order), rows
    set aside with their reason; rows held (behind a set-aside event of their key) are in neither
    and stay unsent, untouched, for the operator."""

    claimed: int = 0
    batches: list[HandedBatch] = field(default_factory=list)
    set_aside: dict[int, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)  # traceparents, for the publish span's links


@dataclass
class HandedBatch:
    task: asyncio.Task[Any]
    slot: Slot
    ids: list[int]
    keys: list[str]


class PartitionChains:
    """One drain's batches, chained per partition. `close()` at the drain's end: nothing handed on
    in a drain reaches the broker after it, and the next drain starts each chain afresh."""

    def __init__(self, namespace: str, max_event_bytes: int, acked: Callable[[], Awaitable[dict[Slot, int]]]):
        self.namespace = namespace
        self.max_event_bytes = max_event_bytes
        self._acked = acked
        self._tails: dict[Slot, asyncio.Future[bool]] = {}  # whether the last batch was handed on
        self._gates: set[PartitionGate] = set()
        self._senders: list[asyncio.Task[Any]] = []
        # Rows of a batch the broker refused as too large: each goes alone next time, so the one at
        # fault is found and set aside.
        self.send_alone: set[int] = set()
        # Each key's partition, per broker topic and its partitions: aggregates' keys recur, and
        # the partitioner is pure Python (murmur2).
        self._partition_of: dict[str, tuple[list[int], dict[str, int]]] = {}

    async def hand_on(self, producer: AIOKafkaProducer, rows: Sequence[Any], held: Held) -> Handed:
        """Batch `rows` per partition and chain each batch. `held` maps (topic, key) to the id of
        that key's first set-aside event: the key's later events are held, never sent ahead of it;
        one set aside here is added."""
        claim = _ClaimBatches(self, producer)
        handed = claim.handed
        handed.claimed = len(rows)
        links = handed.links
        partition_of: dict[str, tuple[list[int], dict[str, int]]] = {}
        max_bytes = self.max_event_bytes
        for row in rows:
            row_id, event_id, topic, key, type_, source, subject, occurred_at, data_json, traceparent, tracestate = row
            if held and row_id > held.get((topic, key), row_id):
                continue
            if topic not in partition_of:
                partition_of[topic] = await self._partitions(producer, self.namespace + topic)
            key_bytes = key.encode()
            all_parts, known = partition_of[topic]
            partition = known.get(key)
            if partition is None:
                # The default partitioner's choice for a keyed message: from all partitions, as
                # `send` does, so a key's events share one.
                partition = known[key] = int(_PARTITIONER(key_bytes, all_parts, all_parts))
            # Each message carries its creation context (the request that wrote it): the consumer's
            # span continues that trace.
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
            size = len(key_bytes) + len(value) + sum(map(len, chain.from_iterable(headers)))
            if size > max_bytes:
                handed.set_aside[row_id] = f"{size} bytes, more than the broker accepts ({max_bytes})"
                held.setdefault((topic, key), row_id)
                continue
            claim.add((topic, partition), row_id, key, (key_bytes, value, headers), alone=row_id in self.send_alone)
        for slot in list(claim.open):
            claim.flush(slot)
        return handed

    async def _partitions(self, producer: AIOKafkaProducer, broker_topic: str) -> tuple[list[int], dict[str, int]]:
        """`broker_topic`'s partitions and its keys' partitions, afresh if its partitions changed."""
        all_parts = sorted(await producer.partitions_for(broker_topic))
        cached = self._partition_of.get(broker_topic)
        if cached is None or cached[0] != all_parts or len(cached[1]) > _MAX_CACHED_KEYS:
            cached = self._partition_of[broker_topic] = (all_parts, {})
        return cached

    def chain(self, producer: AIOKafkaProducer, batch: Any, slot: Slot) -> asyncio.Task[Any]:
        handed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._send_in_order(producer, self._tails.get(slot), handed, batch, slot))
        self._tails[slot] = handed
        self._senders.append(task)
        self._gates.add(PartitionGate.of(producer))
        return task

    async def _send_in_order(
        self,
        producer: AIOKafkaProducer,
        before: asyncio.Future[bool] | None,
        handed: asyncio.Future[bool],
        batch: Any,
        slot: Slot,
    ) -> Any:
        """Hand `batch` to the producer once the partition's previous batch was handed on; await
        its acknowledgement and check its offset."""
        topic, partition = slot
        tp = TopicPartition(self.namespace + topic, partition)
        gate = PartitionGate.of(producer)
        try:
            if before is not None and not await before:
                raise HeldBack(f"an earlier batch for {topic}[{partition}] was not handed on")
            acknowledged = await producer.send_batch(batch, tp.topic, partition=partition)
            gate.handed(tp, batch)
        except BaseException:
            handed.set_result(False)
            raise
        handed.set_result(True)
        try:
            ack = await acknowledged
        except BaseException:
            gate.refused(tp)  # the gate sees refusals in the sender itself; this covers any other
            raise
        acked = await self._acked()
        last = acked.get(slot, -1)
        if ack.offset <= last:
            reason = f"acknowledged a batch at offset {ack.offset}, not above the last acknowledged batch, at {last}"
            raise BrokerLostEvents(PartitionLoss(topic, partition, ack.offset, reason))
        acked[slot] = ack.offset
        return ack

    async def close(self) -> None:
        for task in self._senders:
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        self._senders.clear()
        self._tails.clear()
        # Every batch of this drain is settled: the next drain starts with the refused ones.
        for gate in self._gates:
            gate.reopen()
        self._gates.clear()

    def cancel(self) -> None:
        for task in self._senders:
            task.cancel()


class PartitionGate:
    """Installed once on a producer: once one of the relay's batches for a partition was refused,
    the batches queued behind it for that partition are failed (`HeldBack`) before the sender can
    take them, until the relay's next drain (`reopen`).

    aiokafka sends a partition's batches one request at a time and, when a request fails, only then
    takes the next queued batch (in `MessageAccumulator.drain_by_nodes`); a refusal marks the
    batch's future at once. So checking the futures of the batches handed on, first thing in each
    drain by the sender, is exact: no batch behind a refused one is ever taken. This reads
    aiokafka's accumulator (pinned version; `tests/faults/test_relay_order.py` fails if it
    changes): the public API has no way to withdraw a queued batch.
    """

    def __init__(self, producer: AIOKafkaProducer):
        self._accumulator: Any = producer._message_accumulator
        self._drain_by_nodes = self._accumulator.drain_by_nodes
        self._accumulator.drain_by_nodes = self._drain_by_nodes_held_back
        self._handed: dict[TopicPartition, list[Any]] = {}  # aiokafka's batches not yet settled
        self._stopped: set[TopicPartition] = set()

    @classmethod
    def of(cls, producer: AIOKafkaProducer) -> PartitionGate:
        gate: PartitionGate | None = getattr(producer, "_kit_partition_gate", None)
        if gate is None:
            gate = cls(producer)
            producer._kit_partition_gate = gate
        return gate

    def handed(self, tp: TopicPartition, builder: Any) -> None:
        """Note the batch just handed on: the tail of its partition's queue, built by `builder`."""
        for batch in reversed(self._accumulator._batches.get(tp, ())):
            if batch._builder is builder:
                self._handed.setdefault(tp, []).append(batch)
                return

    def refused(self, tp: TopicPartition) -> None:
        self._stopped.add(tp)

    def reopen(self) -> None:
        self._stopped.clear()
        self._handed.clear()

    def _drain_by_nodes_held_back(self, *args: Any, **kwargs: Any) -> Any:
        for tp, batches in list(self._handed.items()):
            unsettled = []
            for batch in batches:
                if not batch.future.done():
                    unsettled.append(batch)
                elif batch.future.cancelled() or batch.future.exception() is not None:
                    self._stopped.add(tp)
            if unsettled:
                self._handed[tp] = unsettled
            else:
                del self._handed[tp]
        for tp in self._stopped:
            queued = self._accumulator._batches.pop(tp, None)
            while queued:
                batch = queued.popleft()
                batch.failure(exception=HeldBack(f"an earlier batch for {tp.topic}[{tp.partition}] was refused"))
                # Nothing awaits the drain of a batch never sent, nor its result once its sender
                # is cancelled (a relay stopping): mark both failures seen. A sender still awaiting
                # the result gets the exception all the same.
                batch._drain_waiter.exception()
                batch.future.exception()
        return self._drain_by_nodes(*args, **kwargs)


class _ClaimBatches:
    """The open batches of one claim, one per partition, until each is full or the claim ends."""

    def __init__(self, chains: PartitionChains, producer: AIOKafkaProducer):
        self.chains = chains
        self.producer = producer
        self.open: dict[Slot, tuple[Any, list[int], list[str]]] = {}
        self.handed = Handed()

    def add(
        self, slot: Slot, row_id: int, key: str, message: tuple[bytes, bytes, list[tuple[str, bytes]]], *, alone: bool
    ) -> None:
        key_bytes, value, headers = message
        if alone and slot in self.open:
            self.flush(slot)
        batch = self.open.get(slot)
        if batch is None:
            batch = self.open[slot] = (self.producer.create_batch(), [], [])
        if batch[0].append(timestamp=None, key=key_bytes, value=value, headers=headers) is None:
            self.flush(slot)  # full: send it, then start the next batch for this partition
            batch = self.open[slot] = (self.producer.create_batch(), [], [])
            # An empty batch takes any one event.
            batch[0].append(timestamp=None, key=key_bytes, value=value, headers=headers)
        batch[1].append(row_id)
        batch[2].append(key)
        if alone:
            self.flush(slot)

    def flush(self, slot: Slot) -> None:
        batch, ids, keys = self.open.pop(slot)
        self.handed.batches.append(HandedBatch(self.chains.chain(self.producer, batch, slot), slot, ids, keys))
