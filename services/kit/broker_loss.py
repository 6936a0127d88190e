"""Noticing that the broker lost events it had acknowledged, and sending them again.

The relay keeps each sent row's partition and offset, and per partition the offset of the last
batch the broker acknowledged, that is of the batch's first event (`kit_outbox_partitions`): a
broker that still holds the batch reports a high watermark above it. (The batch's first event,
not its last: Tansu answers ListOffsets with the last batch's first offset + 1.) The broker has
lost events when:

- its high watermark for a partition is at or below that offset (a memory-only broker restarted;
  a topic deleted and created again), or the topic is gone;
- its cluster id is not the one that acknowledged them (another cluster behind the same address);
- it acknowledges a batch at an offset not above the last acknowledged batch (the log went back while
  the relay was sending).

The relay then marks unsent the rows at the offsets the broker no longer holds; they go out again
in their original order, and consumers drop the copies they had applied already. This holds while a
service's topic has one writer, its relay (events of other writers would hide a shortened log).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.tables import outbox_partitions

_LATEST = -1  # ListOffsets' "the offset the next record will get": the high watermark


@dataclass(frozen=True)
class PartitionLoss:
    """The broker no longer holds a partition's events from offset `holds_below` on."""

    topic: str  # as the outbox names it, without the deployment's namespace
    partition: int
    holds_below: int
    reason: str


class BrokerLostEvents(ConnectionError):
    def __init__(self, loss: PartitionLoss):
        super().__init__(f"{loss.topic}[{loss.partition}]: {loss.reason}")
        self.loss = loss


@dataclass(frozen=True)
class Acknowledged:
    offset: int
    cluster_id: str | None


async def acknowledged_offsets(conn: AsyncConnection) -> dict[tuple[str, int], Acknowledged]:
    rows = await conn.execute(
        select(
            outbox_partitions.c.topic,
            outbox_partitions.c.partition,
            outbox_partitions.c.acked_offset,
            outbox_partitions.c.cluster_id,
        )
    )
    return {(topic, partition): Acknowledged(offset, cluster) for topic, partition, offset, cluster in rows}


async def find_losses(
    client: Any, namespace: str, known: dict[tuple[str, int], Acknowledged]
) -> tuple[str | None, list[PartitionLoss]]:
    """Ask the broker what it holds of each partition the relay has written to. Returns the
    cluster id and the partitions it lost; raises KafkaError when it cannot tell yet."""
    topics = sorted({namespace + topic for topic, _ in known})
    metadata = await client.send(client.get_random_node(), MetadataRequest(topics or [], False))
    cluster_id: str | None = getattr(metadata, "cluster_id", None)
    if not known:
        return cluster_id, []
    leaders: dict[tuple[str, int], int] = {}
    gone: set[str] = set()
    for entry in metadata.topics:
        error, name, partitions = entry[0], entry[1], entry[-1]
        if error == UnknownTopicOrPartitionError.errno:
            gone.add(name)
        elif error:
            raise KafkaError(f"broker metadata for {name}: error {error}")
        else:
            for partition in partitions:
                leaders[name, partition[1]] = partition[2]
    losses: list[PartitionLoss] = []
    to_ask: dict[int, list[tuple[str, int]]] = {}
    for (topic, partition), acked in sorted(known.items()):
        name = namespace + topic
        if acked.offset < 0:  # nothing acknowledged there since the last loss
            continue
        if acked.cluster_id and cluster_id and acked.cluster_id != cluster_id:
            losses.append(PartitionLoss(topic, partition, 0, f"cluster id {cluster_id} is not {acked.cluster_id}"))
        elif name in gone or (name, partition) not in leaders:
            losses.append(PartitionLoss(topic, partition, 0, "the broker no longer has the partition"))
        else:
            to_ask.setdefault(leaders[name, partition], []).append((topic, partition))
    for leader, wanted in to_ask.items():
        watermarks = await _high_watermarks(client, leader, namespace, wanted)
        for topic, partition in wanted:
            high, acked_offset = watermarks[topic, partition], known[topic, partition].offset
            if high <= acked_offset:
                reason = f"high watermark {high} is not above the last acknowledged batch, at {acked_offset}"
                losses.append(PartitionLoss(topic, partition, max(high, 0), reason))
    return cluster_id, losses


async def _high_watermarks(client: Any, leader: int, namespace: str, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    by_topic: dict[str, list[tuple[int, int]]] = {}
    for topic, partition in wanted:
        by_topic.setdefault(namespace + topic, []).append((partition, _LATEST))
    response = await client.send(leader, OffsetRequest(-1, 0, list(by_topic.items())))
    found: dict[tuple[str, int], int] = {}
    for name, partitions in response.topics:
        for partition, error, *info in partitions:
            topic = name[len(namespace) :]
            if error == UnknownTopicOrPartitionError.errno:
                found[topic, partition] = 0
            elif error:
                raise KafkaError(f"high watermark of {name}[{partition}]: error {error}")
            else:
                # v0 answers a list of offsets; later versions (timestamp, offset).
                found[topic, partition] = info[0][0] if isinstance(info[-1], list) else info[-1]
    missing = [tp for tp in wanted if tp not in found]
    if missing:
        raise KafkaError(f"no high watermark for {missing}")
    return found


async def record_acknowledged(conn: AsyncConnection, last_offsets: dict[tuple[str, int], int], cluster_id: str | None) -> None:
    """Remember each partition's last acknowledged batch offset, in the transaction that marks rows
    sent."""
    if not last_offsets:
        return
    keys = sorted(last_offsets)
    await conn.execute(
        _RECORD,
        {
            "topics": [topic for topic, _ in keys],
            "partitions": [partition for _, partition in keys],
            "offsets": [last_offsets[key] for key in keys],
            "cluster": cluster_id,
        },
    )


# GREATEST: confirms of one partition's batches may commit in either order.
_RECORD = text("""
    INSERT INTO kit_outbox_partitions AS p (topic, partition, acked_offset, cluster_id, acked_at)
    SELECT v.topic, v.partition, v.acked_offset, :cluster, now()
      FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS integer[]), CAST(:offsets AS bigint[]))
           AS v(topic, partition, acked_offset)
    ON CONFLICT (topic, partition) DO UPDATE
       SET acked_offset = GREATEST(p.acked_offset, EXCLUDED.acked_offset),
           cluster_id = COALESCE(EXCLUDED.cluster_id, p.cluster_id),
           acked_at = now()""")


async def resend_lost(conn: AsyncConnection, loss: PartitionLoss, cluster_id: str | None) -> int:
    """Mark unsent the rows of `loss`'s partition at offsets the broker no longer holds, and
    remember the loss; returns how many rows go out again."""
    resent = await conn.execute(
        text("""
            UPDATE kit_outbox SET sent_at = NULL
             WHERE topic = :topic AND kafka_partition = :partition AND kafka_offset >= :holds_below
               AND sent_at IS NOT NULL"""),
        {"topic": loss.topic, "partition": loss.partition, "holds_below": loss.holds_below},
    )
    await conn.execute(
        text("""
            UPDATE kit_outbox_partitions
               SET acked_offset = :holds_below - 1, cluster_id = COALESCE(:cluster, cluster_id),
                   losses = losses + 1, last_loss_at = now(), last_loss = :reason
             WHERE topic = :topic AND partition = :partition"""),
        {**loss.__dict__, "cluster": cluster_id},
    )
    return int(resent.rowcount or 0)
