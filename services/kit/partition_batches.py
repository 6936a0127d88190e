"""Handing claimed outbox rows to the producer as per-partition batches, in order per partition.

Each row goes to the partition the default partitioner picks for its key (so a key's events share
a partition, as with `send`), in id order within it. Building the batches directly skips the
per-message future and partition lookup that `send` costs.

A partition's batches go to the producer one after another, each once the one before it was
acknowledged: after a refused batch nothing later for that partition is sent (`HeldBack`), and the
relay's next drain sends the refused events again first. That is the idempotent producer's
guarantee, kept on brokers without it. Each acknowledgement must come at an offset above the
partition's last acknowledged one; if not, the broker lost events (`BrokerLostEvents`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from services.kit.broker_loss import BrokerLostEvents, PartitionLoss
from services.kit.envelope import kafka_headers

_PARTITIONER = DefaultPartitioner()
# Refusals that sending again cannot cure: the event is too large for the broker.
NEVER_ACCEPTED = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)

Slot = tuple[str, int]  # (outbox topic, partition)


class HeldBack(ConnectionError):
    """A batch not sent because an earlier batch for its partition was not acknowledged."""


@dataclass
class RowFate:
    """What became of one claimed row: handed on in a batch (at `position` in it), or set aside."""

    batch: asyncio.Task[Any] | None = None
    position: int = 0
    set_aside: str | None = None


class PartitionChains:
    """One drain's batches, chained per partition. `close()` at the drain's end: nothing handed on
    in a drain reaches the broker after it, and the next drain starts each chain afresh."""

    def __init__(self, namespace: str, max_event_bytes: int, acked: Callable[[], Awaitable[dict[Slot, int]]]):
        self.namespace = namespace
        self.max_event_bytes = max_event_bytes
        self._acked = acked
        self._tails: dict[Slot, asyncio.Task[Any]] = {}
        self._senders: list[asyncio.Task[Any]] = []
        # Rows of a batch the broker refused as too large: each goes alone next time, so the one at
        # fault is found and set aside.
        self.send_alone: set[int] = set()

    async def hand_on(self, producer: AIOKafkaProducer, rows: list[Any]) -> tuple[list[RowFate], list[str]]:
        """Batch `rows` per partition and chain each batch; returns each row's fate and the
        traceparents of the rows (for the publish span's links)."""
        claim = _ClaimBatches(self, producer)
        links: list[str] = []
        partitions: dict[str, tuple[list[int], list[int]]] = {}
        for index, row in enumerate(rows):
            row_id, event_id, topic, key, type_, source, subject, occurred_at, data_json, traceparent, tracestate = row
            claim.fates.append(RowFate())
            broker_topic = self.namespace + topic
            if broker_topic not in partitions:
                all_parts = sorted(await producer.partitions_for(broker_topic))
                available = sorted(producer.client.cluster.available_partitions_for_topic(broker_topic) or all_parts)
                partitions[broker_topic] = (all_parts, available)
            key_bytes = key.encode()
            slot = (topic, _PARTITIONER(key_bytes, *partitions[broker_topic]))
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
            size = len(key_bytes) + len(value) + sum(len(k) + len(v) for k, v in headers)
            if size > self.max_event_bytes:
                claim.fates[index].set_aside = f"{size} bytes, more than the broker accepts ({self.max_event_bytes})"
                continue
            claim.add(slot, index, (key_bytes, value, headers), alone=row_id in self.send_alone)
        for slot in list(claim.open):
            claim.flush(slot)
        return claim.fates, links

    def chain(self, producer: AIOKafkaProducer, batch: Any, slot: Slot) -> asyncio.Task[Any]:
        task = asyncio.create_task(self._send_in_order(producer, self._tails.get(slot), batch, slot))
        self._tails[slot] = task
        self._senders.append(task)
        return task

    async def _send_in_order(self, producer: AIOKafkaProducer, before: asyncio.Task[Any] | None, batch: Any, slot: Slot) -> Any:
        """Send `batch` once the partition's previous batch is acknowledged; check its offset."""
        if before is not None:
            await asyncio.wait([before])
            if before.cancelled() or before.exception() is not None:
                raise HeldBack(f"an earlier batch for {slot[0]}[{slot[1]}] was not acknowledged")
        topic, partition = slot
        ack = await (await producer.send_batch(batch, self.namespace + topic, partition=partition))
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

    def cancel(self) -> None:
        for task in self._senders:
            task.cancel()


class _ClaimBatches:
    """The open batches of one claim, one per partition, until each is full or the claim ends."""

    def __init__(self, chains: PartitionChains, producer: AIOKafkaProducer):
        self.chains = chains
        self.producer = producer
        self.open: dict[Slot, tuple[Any, list[int]]] = {}
        self.fates: list[RowFate] = []

    def add(self, slot: Slot, index: int, message: tuple[bytes, bytes, list[tuple[str, bytes]]], *, alone: bool) -> None:
        key, value, headers = message
        if alone and slot in self.open:
            self.flush(slot)
        if slot not in self.open:
            self.open[slot] = (self.producer.create_batch(), [])
        if self.open[slot][0].append(timestamp=None, key=key, value=value, headers=headers) is None:
            self.flush(slot)  # full: send it, then start the next batch for this partition
            self.open[slot] = (self.producer.create_batch(), [])
            # An empty batch takes any one event.
            self.open[slot][0].append(timestamp=None, key=key, value=value, headers=headers)
        self.open[slot][1].append(index)
        if alone:
            self.flush(slot)

    def flush(self, slot: Slot) -> None:
        batch, members = self.open.pop(slot)
        task = self.chains.chain(self.producer, batch, slot)
        for position, index in enumerate(members):
            self.fates[index].batch, self.fates[index].position = task, position
