"""Idle consumers rest; a produce wakes them.

Tansu holds an empty fetch for the whole `fetch_max_wait_ms` but does not answer it early when a
record arrives, so a consumer that must see events within milliseconds polls ~100 times a second
while nothing happens (docs/notify.md, "The consumer's idle polling"). Instead, a consumer that has
caught up with every assigned partition for `REST_AFTER_S` pauses them all (a paused partition is
left out of every fetch request; with all paused, aiokafka's fetcher sends none and only looks
again at its 0.2 s timer) and rests until a wake names one of its topics or `FALLBACK_S` passes.

The wake: whoever writes a topic announces it once the broker acknowledged the write (the relay per
confirmed batch, `publish_raw`, the dead-letter replay): one Redis PUBLISH on the channel
`<kafka_namespace>kit.wakes` naming the topics, so namespaces do not wake each other. Each process
has one `Wakes`: it publishes the announcements and, when it has consumers, holds the subscription.

Nothing is lost by a missed wake: the fallback bounds the extra wait of an event no wake announced
(a producer outside the kit, a lost message); a consumer rests only while the subscription is live,
and losing it resumes everyone. Without Redis, consumers never rest (they poll as before): resting
on the fallback alone would add up to `FALLBACK_S` to every event. A rebalance gives the consumer
new, unpaused partition states (fetched from the committed offsets), so no partition stays paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from services.kit.kafka import consumer_options
from services.kit.settings import ServiceSettings
from services.kit.telemetry import CONSUMER_RESTS

log = logging.getLogger("kit.wakes")

# Caught up this long (no record fetched, nothing buffered, nothing more on the broker) before resting:
# long enough that the relay's next batch of a burst, and a wake's own events, find the consumer awake.
REST_AFTER_S = 0.2
# The longest a rest lasts without a wake: bounds the extra latency of an event no wake announced.
# A rest ended by it costs one fetch round, then the consumer rests again: ~2 fetches a second.
FALLBACK_S = 0.5
# How often a consumer looks whether it has caught up (a few lookups per assigned partition).
CHECK_S = 0.02
ANNOUNCE_TIMEOUT_S = 2.0


def wake_channel(namespace: str) -> str:
    return f"{namespace}kit.wakes"


def _encode(topics: Iterable[str]) -> str:
    return "\n".join(sorted(set(topics)))


class Wakes:
    """One process's announcements and, when it has consumers, its subscription to others'."""

    def __init__(self, redis_url: str, namespace: str, *, listen: bool = True) -> None:
        self.channel = wake_channel(namespace)
        self.listen = listen
        # Its own client: a subscription holds a connection for ever and must not time out reading.
        self.redis: Redis = Redis.from_url(redis_url, socket_connect_timeout=2, health_check_interval=10)
        self.live = False  # subscribed now: only then may a consumer rest
        self._rests: set[Rest] = set()
        self._pending: set[str] = set()
        self._announced = asyncio.Event()

    def announce(self, topics: Iterable[str]) -> None:
        """Topics the broker just acknowledged writes to; published by `run`, batches that come
        while a PUBLISH is under way going out together in the next one."""
        self._pending.update(topics)
        if self._pending:
            self._announced.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._publish())]
        if self.listen:
            tasks.append(asyncio.create_task(self._subscribe()))
        try:
            await asyncio.gather(*tasks)
        except GeneratorExit:
            # Closed by the collector after its loop ended (an app stopped without waiting for this
            # task): no loop is left to wait on, and awaiting here would be a RuntimeError.
            raise
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self._lost()

    async def close(self) -> None:
        await self.redis.aclose()

    def register(self, rest: Rest) -> None:
        self._rests.add(rest)

    def unregister(self, rest: Rest) -> None:
        self._rests.discard(rest)

    async def _publish(self) -> None:
        while True:
            await self._announced.wait()
            self._announced.clear()
            topics, self._pending = self._pending, set()
            try:
                await asyncio.wait_for(self.redis.publish(self.channel, _encode(topics)), ANNOUNCE_TIMEOUT_S)
            except Exception as exc:  # Redis away: the fallback covers the lost wake
                log.debug("wake for %s not announced: %s", sorted(topics), exc.__class__.__name__)

    async def _subscribe(self) -> None:
        backoff = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.live = True
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Said once when a live subscription goes; retries while Redis stays away are quiet.
                level = logging.WARNING if self.live else logging.DEBUG
                log.log(level, "wake subscription on %s lost: %s: %s", self.channel, exc.__class__.__name__, exc)
            finally:
                self._lost()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 2)  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _deliver(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        topics = set(text.split("\n"))
        for rest in self._rests:
            if rest.topics & topics:
                rest.wake("wake")

    def _lost(self) -> None:
        """Wakes may be missed from now on: every resting consumer fetches again, and none rests."""
        self.live = False
        for rest in self._rests:
            rest.wake("unsubscribed")


async def announce_once(settings: ServiceSettings, topics: Iterable[str]) -> None:
    """For a one-off producer (operator tools, tests): announce its topics, if the platform has Redis."""
    if not settings.redis_url:
        return
    topics = list(topics)
    client: Redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.publish(wake_channel(settings.kafka_namespace), _encode(topics))
    except Exception as exc:  # the fallback covers it
        log.debug("wake for %s not announced: %s", sorted(topics), exc.__class__.__name__)
    finally:
        await client.aclose()


class Rest:
    """Pauses one consumer's partitions while it has caught up, until a wake or the fallback."""

    def __init__(self, consumer: AIOKafkaConsumer, wakes: Wakes, topics: Iterable[str], group: str) -> None:
        self.consumer = consumer
        self.wakes = wakes
        self.topics = frozenset(topics)
        self.group = group
        self.resting = False
        self._woken = asyncio.Event()
        self._reason = ""
        self._task: asyncio.Task[None] | None = None
        self._awake_until = 0.0
        # A rest ended by the fallback: rest again once a fetch answered after this (wall ms).
        self._fetched_since_ms: float | None = None

    def start(self) -> None:
        self.wakes.register(self)
        self._task = asyncio.create_task(self._watch(), name=f"rest-{self.group}")

    async def stop(self) -> None:
        self.wakes.unregister(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._resume()

    def wake(self, reason: str) -> None:
        # Awake for a while whether resting or not: a wake that comes just before a rest would
        # otherwise be outrun by a fetch answered before the record was written.
        self._awake_until = asyncio.get_running_loop().time() + REST_AFTER_S
        self._fetched_since_ms = None
        if self.resting and not self._woken.is_set():
            self._reason = reason
            self._woken.set()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        self._awake_until = loop.time() + REST_AFTER_S
        while True:
            await asyncio.sleep(CHECK_S)
            try:
                assigned = self.consumer.assignment()
                if not (self.wakes.live and assigned and await self._caught_up(assigned)):
                    self._awake_until = max(self._awake_until, loop.time() + REST_AFTER_S)
                    self._fetched_since_ms = None
                    continue
                # A rebalance while looking: look again at the new assignment.
                if (self._fetched_since_ms is None and loop.time() < self._awake_until) or assigned != self.consumer.assignment():
                    continue
                await self._rest(assigned)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a partition revoked mid-look, say: look again
                log.debug("consumer %s could not rest: %s: %s", self.group, exc.__class__.__name__, exc)

    async def _caught_up(self, assigned: set[TopicPartition]) -> bool:
        """Every partition answered a fetch (since the last rest, when that ended by the fallback),
        and its records are all handed to the consumer: none buffered, none more on the broker."""
        # Records fetched but not yet handed over. Not public in aiokafka (pinned), and needed: Tansu
        # reports a high watermark of its last batch's first offset + 1, so a position past it does
        # not prove the rest of that batch was handed over. Renamed, this raises, and no consumer rests.
        buffered = self.consumer._fetcher._records
        for tp in assigned:
            if tp in buffered:
                return False
            highwater = self.consumer.highwater(tp)
            polled_ms = self.consumer.last_poll_timestamp(tp)
            if highwater is None or polled_ms is None:
                return False
            if self._fetched_since_ms is not None and polled_ms < self._fetched_since_ms:
                return False
            if await self.consumer.position(tp) < highwater:
                return False
        return True

    async def _rest(self, assigned: set[TopicPartition]) -> None:
        self._woken.clear()
        self._reason = "fallback"
        self.consumer.pause(*assigned)
        self.resting = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), FALLBACK_S)
        finally:
            self.resting = False
            self._resume()
        CONSUMER_RESTS.labels(self.group, self._reason).inc()
        if self._reason == "fallback":
            self._fetched_since_ms = time.time() * 1000
        else:
            self._awake_until = asyncio.get_running_loop().time() + REST_AFTER_S

    def _resume(self) -> None:
        # After a rebalance the new assignment's partitions are not paused; only these need it.
        paused = self.consumer.paused()
        if paused:
            self.consumer.resume(*paused)


class RestingConsumer(AIOKafkaConsumer):  # type: ignore[misc]  # aiokafka's class is untyped
    """An aiokafka consumer that rests while idle (`Rest`), from start to stop."""

    rest: Rest

    async def start(self) -> None:
        await super().start()
        self.rest.start()

    async def stop(self) -> None:
        await self.rest.stop()
        await super().stop()


def make_resting_consumer(
    wakes: Wakes, settings: ServiceSettings, *topics: str, group_id: str, **overrides: Any
) -> RestingConsumer:
    """`kafka.make_consumer`'s client, resting while idle."""
    consumer = RestingConsumer(*topics, group_id=group_id, **{**consumer_options(settings), **overrides})
    # Labelled as the kit's other consumer metrics: by the group's name without the namespace.
    consumer.rest = Rest(consumer, wakes, topics, group_id.removeprefix(settings.kafka_namespace))
    return consumer
