"""Long-lived answers through the proxy: Server-Sent Events such as `/api/notify/stream`.

An ordinary answer is held until it is whole or past 64 KiB (so a break early in it is still a 502)
and its pieces are awaited at most the route's timeout: both would stop an event stream, whose
first piece is a few bytes and whose pieces come a heartbeat apart. A GET on a route named in
`stream_routes` is therefore answered differently once its status is in:

- an answer of type `text/event-stream` is passed on piece by piece as it arrives, nothing held;
- the route's timeout covers only the wait for the status and headers; after that, the gateway
  waits at most `stream_idle_timeout_s` (far above the service's heartbeat) for each next piece,
  so a service that falls silent is noticed, but a quiet stream is not cut;
- the caller's `Last-Event-ID` is forwarded like any other end-to-end header;
- streams use their own upstream connections (`stream_max_open` of them per replica), so a
  thousand idle streams never take the pooled connections ordinary requests need;
- a person may hold `stream_max_per_user` streams on this replica (429 past it); the service
  bounds them across replicas too;
- the caller going away cancels the relay (Starlette listens for the disconnect), which closes
  the upstream connection, and the service's stream ends and frees its slot;
- a stream that breaks off after its status went out ends the caller's answer cleanly (the client
  reconnects with its `Last-Event-ID`); neither that nor the stream's length counts against the
  service's circuit breaker: only a failure to answer with a status does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from prometheus_client import Gauge
from starlette.responses import StreamingResponse

from gateway.problems import StreamsExhausted, TooManyStreams
from gateway.upstream import UpstreamConnectionError, UpstreamReply

log = logging.getLogger("gateway.proxy")

OPEN_STREAMS = Gauge("gateway_open_streams", "Event streams relayed by this replica now", ["upstream"])

StreamOwner = tuple[str, str]  # (community, subject)


def is_event_stream(reply: UpstreamReply) -> bool:
    content_type = reply.header(b"content-type") or b""
    return reply.status == 200 and content_type.split(b";", 1)[0].strip().lower() == b"text/event-stream"


@dataclass
class StreamSlots:
    """Open streams on this replica, per person and in all (a bound on the replica's memory)."""

    per_user: int
    total: int
    held: dict[StreamOwner, int] = field(default_factory=dict)
    open: int = 0

    def take(self, owner: StreamOwner) -> None:
        if self.held.get(owner, 0) >= self.per_user:
            raise TooManyStreams(("请先关闭其他实时连接", "Close another open stream first"))
        if self.open >= self.total:
            raise StreamsExhausted(
                ("实时连接已满，请稍后重试", "This gateway holds as many streams as it may; try again shortly"),
                headers={"Retry-After": "5"},
            )
        self.held[owner] = self.held.get(owner, 0) + 1
        self.open += 1

    def give_back(self, owner: StreamOwner) -> None:
        left = self.held.get(owner, 0) - 1
        if left > 0:
            self.held[owner] = left
        else:
            self.held.pop(owner, None)
        self.open -= 1


def relay_stream(
    upstream: str, reply: UpstreamReply, headers: list[tuple[bytes, bytes]], release: Callable[[], None]
) -> StreamingResponse:
    """The caller's answer: the upstream's event stream passed on as it arrives; `release` when it ends."""
    response = StreamingResponse(pass_on(upstream, reply, release), status_code=reply.status)
    # Tell any proxy in front of the gateway not to buffer either (nginx honours this header).
    response.raw_headers = [*headers, (b"x-accel-buffering", b"no")]
    return response


async def pass_on(upstream: str, reply: UpstreamReply, release: Callable[[], None]) -> AsyncIterator[bytes]:
    pieces = reply.chunks()
    OPEN_STREAMS.labels(upstream).inc()
    try:
        async for piece in pieces:
            yield piece
    except TimeoutError:
        log.info("stream from %s fell silent past its idle timeout; closed", upstream)
    except UpstreamConnectionError as exc:
        # A replica that restarts ends its streams: the client reconnects with its Last-Event-ID.
        log.info("stream from %s broke off: %s", upstream, exc.__class__.__name__)
    finally:
        OPEN_STREAMS.labels(upstream).dec()
        release()
        # Closes the upstream connection (an event stream is never read to an end that frees it).
        await pieces.aclose()
        await reply.close()
