"""The kit's partition lanes against a stand-in consumer: no partition waits for another, each keeps
its order, an offset is committed only after its batch applied, and a revoked partition stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from services.kit.partition_lanes import PartitionLanes, Records

A = TopicPartition("events", 0)
B = TopicPartition("events", 1)


def records(tp: TopicPartition, offsets: range) -> Records:
    return [ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"{}", None, 0, 2, []) for offset in offsets]


class StandInConsumer:
    """What the lanes use of an AIOKafkaConsumer: an assignment, fetches handed out as queued, commits."""

    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned)
        self.waiting: dict[TopicPartition, Records] = {}
        self.committed: dict[TopicPartition, list[int]] = {}
        self.arrived = asyncio.Event()
        self.changed = asyncio.Event()  # set at every fetch, commit and applied batch

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def put(self, tp: TopicPartition, batch: Records) -> None:
        self.waiting.setdefault(tp, []).extend(batch)
        self.arrived.set()

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, Records]:
        wanted = tps or tuple(self.assigned)
        if not any(self.waiting.get(tp) for tp in wanted):
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), timeout_ms / 1000)
            except TimeoutError:
                self.changed.set()
                return {}
        self.changed.set()
        return {tp: self.waiting.pop(tp) for tp in wanted if self.waiting.get(tp)}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            assert tp in self.assigned, "a commit for a partition no longer assigned"
            self.committed.setdefault(tp, []).append(offset)
        self.changed.set()


async def until(consumer: StandInConsumer, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            consumer.changed.clear()
            await consumer.changed.wait()


def start(consumer: StandInConsumer, apply: Callable[[Records], Awaitable[None]]) -> tuple[PartitionLanes, asyncio.Task[None]]:
    async def applied(batch: Records) -> None:
        await apply(batch)
        consumer.changed.set()

    lanes = PartitionLanes(consumer, applied, batch=3, at_once=2)
    return lanes, asyncio.create_task(lanes.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_slow_partition_holds_up_no_other_and_each_keeps_its_order() -> None:
    consumer = StandInConsumer(A, B)
    release_a = asyncio.Event()
    applied: dict[int, list[int]] = {0: [], 1: []}

    async def apply(batch: Records) -> None:
        if batch[0].partition == 0:
            await release_a.wait()
        applied[batch[0].partition] += [r.offset for r in batch]

    consumer.put(A, records(A, range(0, 3)))
    consumer.put(B, records(B, range(0, 4)))
    _, task = start(consumer, apply)
    await until(consumer, lambda: consumer.committed.get(B) == [3, 4])
    consumer.put(B, records(B, range(4, 8)))  # fetched and applied while A's first batch still runs
    await until(consumer, lambda: consumer.committed.get(B) == [3, 4, 7, 8])
    assert applied[0] == [] and A not in consumer.committed

    consumer.put(A, records(A, range(3, 5)))
    release_a.set()
    await until(consumer, lambda: consumer.committed.get(A) == [3, 5])
    assert applied == {0: [0, 1, 2, 3, 4], 1: list(range(8))}
    await stop(task)


async def test_a_failed_batch_commits_nothing_and_ends_the_run() -> None:
    consumer = StandInConsumer(A)
    applied: list[int] = []

    async def apply(batch: Records) -> None:
        if batch[0].offset == 3:
            raise RuntimeError("the dead-letter topic is unreachable")
        applied.extend(r.offset for r in batch)

    consumer.put(A, records(A, range(0, 9)))
    _, task = start(consumer, apply)
    with pytest.raises(RuntimeError, match="dead-letter"):
        await task
    # The batch after the failed one is not applied: the consumer starts again from offset 3.
    assert applied == [0, 1, 2] and consumer.committed == {A: [3]}


async def test_a_revoked_partition_applies_and_commits_no_more() -> None:
    consumer = StandInConsumer(A, B)
    in_first = asyncio.Event()
    release = asyncio.Event()
    applied: list[int] = []

    async def apply(batch: Records) -> None:
        if batch[0].partition == 0 and batch[0].offset == 0:
            in_first.set()
            await release.wait()
        applied.extend(r.offset for r in batch if r.partition == 0)

    consumer.put(A, records(A, range(0, 6)))
    lanes, task = start(consumer, apply)
    await in_first.wait()
    consumer.assigned = {B}  # a rebalance gives A to another member while its batch runs
    consumer.put(B, records(B, range(0, 1)))  # wakes the fetch loop, which sees the new assignment
    await until(consumer, lambda: consumer.committed.get(B) == [1])
    retired = lanes.retiring[A]
    release.set()
    await asyncio.wait([retired])
    assert A not in consumer.committed and applied == [0, 1, 2]
    await stop(task)


async def test_a_partition_given_back_is_not_applied_twice_nor_out_of_order() -> None:
    consumer = StandInConsumer(A)
    applied: list[int] = []
    release = asyncio.Event()

    async def apply(batch: Records) -> None:
        if batch[0].offset == 0:
            await release.wait()
        applied.extend(r.offset for r in batch)

    consumer.put(A, records(A, range(0, 3)))
    _, task = start(consumer, apply)
    await until(consumer, lambda: not consumer.waiting)
    # The same records fetched again (the fetcher reset to the committed offset) with new ones.
    consumer.put(A, records(A, range(0, 6)))
    await until(consumer, lambda: not consumer.waiting)
    release.set()
    await until(consumer, lambda: consumer.committed.get(A) == [3, 6])
    assert applied == list(range(6))
    await stop(task)


async def test_a_partition_lost_and_given_back_mid_batch_starts_again_from_its_committed_offset() -> None:
    consumer = StandInConsumer(A)
    in_first = asyncio.Event()
    release = asyncio.Event()
    applied: list[int] = []

    async def apply(batch: Records) -> None:
        if not in_first.is_set():
            in_first.set()
            await release.wait()
        applied.extend(r.offset for r in batch)

    consumer.put(A, records(A, range(0, 6)))
    lanes, task = start(consumer, apply)
    await in_first.wait()
    consumer.assigned = set()  # a rebalance under way: the lane's first batch ends with nothing assigned
    release.set()
    await until(consumer, lambda: A not in lanes.lanes)
    assert applied == [0, 1, 2] and A not in consumer.committed
    consumer.assigned = {A}  # given back: the fetcher starts again from the committed offset
    consumer.put(A, records(A, range(0, 6)))
    await until(consumer, lambda: consumer.committed.get(A) == [3, 6])
    assert applied == [0, 1, 2, 0, 1, 2, 3, 4, 5]  # again from 0 (the inbox skips 0-2), in order
    await stop(task)
