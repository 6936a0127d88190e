"""The live stream: Server-Sent Events at `/stream`, resumable with `Last-Event-ID`.

The database is the stream's source of truth: an event's id is the recipient's `seq`, and a stream
sends whatever is numbered after the last id it sent, so a client that reconnects, to this replica
or another, gets every notification it missed, once and in order. Each replica keeps one
connection listening to the commits (`pg_notify` in `notifications`), whose payload is the new
notification's frame: the listener hands it to that recipient's local streams, and a stream sends
a frame numbered right after its last one as it is, without reading the database. Anything else
(a gap, a frame too long for a payload, the listener reconnecting) makes the stream read what it
missed from the database, as does every stream when the listener reconnects after a drop (the
commits it did not hear are then in the database).

Streams per person are bounded across replicas by a Redis sorted set of open streams whose scores
are lease expiries, renewed at each heartbeat, so a replica that dies frees its slots by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import StreamingResponse

from services.kit.auth import CurrentPrincipal, Principal
from services.kit.db import plain_url
from services.kit.problems import problem_responses
from services.notify import inbox
from services.notify.notifications import WAKE_CHANNEL
from services.notify.problems import TooManyStreams
from services.notify.settings import Settings
from services.notify.wire import Recipient, read_payload, sse_frame

log = logging.getLogger("notify.stream")


class Waiter:
    """One open stream's mailbox: frames handed over by the listener, or a call to look again."""

    __slots__ = ("frames", "ready", "stale")

    # Frames a stream may fall behind by before it drops them and reads the database instead.
    MAX_FRAMES = 256

    def __init__(self) -> None:
        self.frames: deque[tuple[int, str | None]] = deque()
        self.ready = asyncio.Event()
        self.stale = True  # a new stream reads what it missed first

    def offer(self, seq: int, frame: str | None) -> None:
        if len(self.frames) >= self.MAX_FRAMES:
            self.frames.clear()
            self.stale = True
        else:
            self.frames.append((seq, frame))
        self.ready.set()

    def look_again(self) -> None:
        self.stale = True
        self.ready.set()

    def take(self, after: int) -> list[str]:
        """The frames that follow `after` without a gap; a gap or a frame that did not fit marks it stale."""
        taken = []
        while self.frames:
            seq, frame = self.frames.popleft()
            if seq <= after:
                continue  # already sent (read from the database before its frame came)
            if seq != after + 1 or frame is None:
                self.frames.clear()
                self.stale = True
                break
            taken.append(frame)
            after = seq
        return taken


class Wakes:
    """The local streams waiting per recipient, and the one connection that listens for commits."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.waiting: dict[Recipient, set[Waiter]] = defaultdict(set)
        self.connection: asyncpg.Connection | None = None
        self.local_streams: dict[Recipient, int] = defaultdict(int)

    def subscribe(self, recipient: Recipient) -> Waiter:
        waiter = Waiter()
        self.waiting[recipient].add(waiter)
        return waiter

    def unsubscribe(self, recipient: Recipient, waiter: Waiter) -> None:
        self.waiting[recipient].discard(waiter)
        if not self.waiting[recipient]:
            del self.waiting[recipient]

    def on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        # Most commits are for people with no stream here: only their head is read.
        head = payload.partition("\n")[0]
        community, _, rest = head.partition(" ")
        waiters = self.waiting.get((community, rest.rpartition(" ")[0]))
        if not waiters:
            return
        _, seq, frame = read_payload(payload)
        for waiter in waiters:
            waiter.offer(seq, frame)

    def wake_all(self) -> None:
        for waiters in self.waiting.values():
            for waiter in waiters:
                waiter.look_again()

    async def listen(self) -> None:
        """Hold the listening connection; reconnect (and wake every stream to look again) when it drops."""
        backoff = 0.2
        while True:
            try:
                connection = await asyncpg.connect(plain_url(self.database_url))
                await connection.add_listener(WAKE_CHANNEL, self.on_notify)
                self.connection, backoff = connection, 0.2
                self.wake_all()
                closed = asyncio.Event()
                connection.add_termination_listener(partial(set_on_close, closed))
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream listener reconnecting: %s", exc.__class__.__name__)
            finally:
                if self.connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.connection.close(), 2)
                    self.connection = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def set_on_close(closed: asyncio.Event, _connection: Any) -> None:
    closed.set()


# Atomically: drop expired leases, refuse when the person has `limit` open streams, else add one.
OPEN_STREAM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


REDIS_CALLS_AT_ONCE = 16


class StreamSlots:
    """Open streams per person, bounded across replicas (Redis), or per process without Redis."""

    def __init__(self, redis: Any, wakes: Wakes, settings: Settings) -> None:
        self.redis = redis
        self.wakes = wakes
        self.limit = settings.max_streams_per_user
        # Three missed heartbeats (and never under 10 s, so a busy loop's late renewal keeps the slot).
        self.lease_s = max(settings.heartbeat_s * 3, 10.0)
        # The kit's Redis pool queues a burst only up to its 2 s timeout: a thousand streams opening
        # or renewing at once would time out there and starve notify's other Redis calls. Their
        # bookkeeping takes turns on a few connections instead, with no timeout.
        self.turns = asyncio.Semaphore(REDIS_CALLS_AT_ONCE)

    @staticmethod
    def key(recipient: Recipient) -> str:
        return f"notify:streams:{recipient[0]}:{recipient[1]}"

    async def take(self, recipient: Recipient, stream_id: str) -> bool:
        if self.redis is None:
            if self.wakes.local_streams[recipient] >= self.limit:
                return False
            self.wakes.local_streams[recipient] += 1
            return True
        now = time.time()
        args = [now, now + self.lease_s, self.limit, stream_id, int(self.lease_s * 2000)]
        async with self.turns:
            return bool(await self.redis.eval(OPEN_STREAM, 1, self.key(recipient), *args))

    async def renew(self, recipient: Recipient, stream_id: str) -> None:
        if self.redis is not None:
            key = self.key(recipient)
            async with self.turns, self.redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {stream_id: time.time() + self.lease_s}, xx=True)
                pipe.pexpire(key, int(self.lease_s * 2000))
                await pipe.execute()

    async def give_back(self, recipient: Recipient, stream_id: str) -> None:
        if self.redis is None:
            self.wakes.local_streams[recipient] -= 1
            return
        async with self.turns:
            await self.redis.zrem(self.key(recipient), stream_id)


async def stream_events(state: Any, who: Principal, after: int, stream_id: str) -> AsyncIterator[str]:
    settings: Settings = state.settings
    wakes: Wakes = state.wakes
    slots: StreamSlots = state.stream_slots
    recipient = (who.community, who.subject)
    waiter = wakes.subscribe(recipient)
    try:
        yield "retry: 2000\n\n"
        while True:
            waiter.ready.clear()  # before looking: a commit meanwhile wakes the next wait
            if waiter.stale:
                waiter.stale = False
                async with state.sessionmaker() as session:
                    rows = await inbox.since(session, who.community, who.subject, after)
                for row in rows:
                    yield sse_frame(row)
                    after = row.seq
                if rows:
                    waiter.stale = True  # there may be more than one read's worth
                    continue
            frames = waiter.take(after)
            for frame in frames:
                yield frame
                after += 1
            if frames or waiter.stale:
                continue
            if who.expires_at and time.time() >= who.expires_at:
                return  # a stream does not outlive its token: the client reconnects with a fresh one
            try:
                await asyncio.wait_for(waiter.ready.wait(), settings.heartbeat_s)
            except TimeoutError:
                yield ": heartbeat\n\n"
                await slots.renew(recipient, stream_id)
    finally:
        wakes.unsubscribe(recipient, waiter)
        with contextlib.suppress(Exception):
            await asyncio.shield(slots.give_back(recipient, stream_id))


stream_routes = APIRouter(tags=["notify"])


@stream_routes.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An event stream"},
        **problem_responses(TooManyStreams),
    },
)
async def stream(
    request: Request,
    who: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header(description="The last `id` received: the stream resumes after it")] = None,
) -> StreamingResponse:
    """My notifications, live (Server-Sent Events).

    Each event is `event: notification` with the notification as JSON and its `seq` as the `id`;
    reconnect with `Last-Event-ID` and every notification after it arrives, once and in order,
    from any replica. A comment line is sent every heartbeat interval (15 s). The stream ends
    when the access token expires (reconnect with a fresh one). A person may hold a few streams at
    once (several devices); one more is refused with 429.
    """
    after = int(last_event_id) if last_event_id and last_event_id.strip().isdigit() else 0
    stream_id = uuid.uuid4().hex
    if not await request.app.state.stream_slots.take((who.community, who.subject), stream_id):
        raise TooManyStreams(("请先关闭其他实时连接", "Close another open stream first"))
    return StreamingResponse(
        stream_events(request.app.state, who, after, stream_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def start_wakes(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    wakes = Wakes(settings.database_url)
    app.state.wakes = wakes
    app.state.stream_slots = StreamSlots(app.state.redis, wakes, settings)
    app.state.wake_listener = asyncio.create_task(wakes.listen(), name="notify-stream-listener")


async def stop_wakes(app: FastAPI) -> None:
    task: asyncio.Task[None] = app.state.wake_listener
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
