"""Several partitions applied at once, each in its own lane, none waiting for the others.

The fetch loop hands each partition's records to that partition's lane and fetches again as soon as
a lane runs short, so one partition's next batch starts while another's transaction still runs:
Python and PostgreSQL stay busy together, and no round waits for its slowest partition.

A lane applies its records in offset order, a batch at a time, and commits its own offset after
each applied batch (a batch that fails commits nothing: the lane's error ends the loop, and the
consumer starts again from the committed offsets). At most `at_once` batches run at a time. A lane
whose partition is no longer assigned stops: it applies no more records and commits nothing (the
partition's new owner starts from the committed offset, and the inbox skips what was applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

Records = list[ConsumerRecord[Any, Any]]

# Whole assignment short of records: only records can change that, so the fetch may wait long.
IDLE_FETCH_MS = 500
# Some lane full: it may run short at any moment, and its next fetch must not wait behind an idle one.
BUSY_FETCH_MS = 20


class PartitionLanes:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        apply: Callable[[Records], Awaitable[None]],
        *,
        batch: int,
        at_once: int,
    ) -> None:
        self.consumer = consumer
        self.apply = apply
        self.batch = batch
        self.slots = asyncio.Semaphore(at_once)
        self.lanes: dict[TopicPartition, _Lane] = {}
        # Lanes whose partition was revoked while a batch of theirs still ran: a new lane for the
        # same partition waits for that batch, so the partition's order holds across a rebalance.
        self.retiring: dict[TopicPartition, asyncio.Task[None]] = {}
        self.room = asyncio.Event()

    async def run(self) -> None:
        """Fetch and hand out records until cancelled or a lane fails (its error is raised here)."""
        try:
            while True:
                self._raise_failure()
                assigned = self.consumer.assignment()
                for tp in [tp for tp, lane in self.lanes.items() if lane.revoked or tp not in assigned]:
                    self._retire(tp)
                hungry = [tp for tp in assigned if tp not in self.lanes or self.lanes[tp].backlog < self.batch]
                if assigned and not hungry:
                    self.room.clear()
                    await self.room.wait()
                    continue
                wait_ms = IDLE_FETCH_MS if len(hungry) == len(assigned) else BUSY_FETCH_MS
                fetched = await self.consumer.getmany(*hungry, timeout_ms=wait_ms, max_records=self.batch * max(len(hungry), 1))
                for tp, records in fetched.items():
                    self._lane_for(tp).feed(records)
        finally:
            tasks = [lane.task for lane in self.lanes.values() if lane.task is not None]
            tasks += self.retiring.values()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _lane_for(self, tp: TopicPartition) -> _Lane:
        """The partition's lane; a new one when it has none or its lane stopped (revoked since the
        fetch began: these records come from the new assignment, and the stopped lane drops all)."""
        lane = self.lanes.get(tp)
        if lane is not None and lane.revoked:
            self._retire(tp)
            lane = None
        if lane is None:
            lane = self.lanes[tp] = _Lane(self, tp, after=self.retiring.pop(tp, None))
        return lane

    def _retire(self, tp: TopicPartition) -> None:
        lane = self.lanes.pop(tp)
        lane.revoke()
        if lane.task is not None and not lane.task.done():
            self.retiring[tp] = lane.task

    def _raise_failure(self) -> None:
        for lane in self.lanes.values():
            if lane.failure is not None:
                raise lane.failure
        for tp, task in list(self.retiring.items()):
            if task.done():
                del self.retiring[tp]


class _Lane:
    """One partition's records, applied in order by one task at a time."""

    def __init__(self, owner: PartitionLanes, tp: TopicPartition, *, after: asyncio.Task[None] | None) -> None:
        self.owner = owner
        self.tp = tp
        self.after = after
        self.queued: Records = []
        self.next_offset = -1
        self.task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.revoked = False

    @property
    def backlog(self) -> int:
        return len(self.queued)

    def feed(self, records: Records) -> None:
        if records[0].offset < self.next_offset:
            # After a rebalance the fetcher starts again from the committed offset: what this lane
            # already holds or applied is not taken twice.
            records = [r for r in records if r.offset >= self.next_offset]
            if not records:
                return
        self.queued += records
        self.next_offset = records[-1].offset + 1
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain(), name=f"lane-{self.tp.topic}-{self.tp.partition}")

    def revoke(self) -> None:
        self.revoked = True
        self.queued = []

    def _assigned(self) -> bool:
        return not self.revoked and self.tp in self.owner.consumer.assignment()

    async def _drain(self) -> None:
        owner = self.owner
        try:
            if self.after is not None:
                await asyncio.wait([self.after])  # its outcome is its own; only its end matters here
                self.after = None
            while self.queued:
                chunk, self.queued = self.queued[: owner.batch], self.queued[owner.batch :]
                if len(self.queued) < owner.batch:
                    owner.room.set()
                async with owner.slots:
                    if not self._assigned():
                        # Taken from the queue and not applied: this lane is done, and the partition,
                        # when it comes back, starts again from its committed offset in a new lane.
                        self.revoke()
                        return
                    await owner.apply(chunk)
                if not self._assigned():
                    self.revoke()
                    return
                await owner.consumer.commit({self.tp: chunk[-1].offset + 1})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
        finally:
            owner.room.set()  # the fetch loop sees this lane short, stopped or failed
