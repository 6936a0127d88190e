"""What the proxy asks of its upstream client: the request it hands over, the answer, the errors.

The proxy (`gateway/proxy.py`) depends on this contract only; the client that fulfils it
(`gateway/upstream_client.py`) depends on it too, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

# A request body: read whole, or passed on piece by piece as the caller sends it.
RequestBody = bytes | AsyncIterable[bytes]


class UpstreamConnectionError(ConnectionError):
    """The upstream could not be reached, or closed the connection before sending any answer."""


class UpstreamProtocolError(UpstreamConnectionError):
    """The upstream's answer broke HTTP/1.1's framing, or ended before it was whole.

    The upstream received the request and may have acted on it, so the request is not sent again;
    the caller gets a 502.
    """


class InvalidUpstreamURL(ValueError):
    """A target or header that cannot be written into an HTTP/1.1 request head as it is."""


@dataclass
class UpstreamReply:
    """An upstream's answer with its body still to be read."""

    status: int
    # As they came over the wire (bytes, the upstream's case): relayed without decoding.
    headers: list[tuple[bytes, bytes]]
    # The body as it arrives; raises `UpstreamProtocolError` or `TimeoutError` if it breaks off.
    chunks: Callable[[], AsyncGenerator[bytes, None]]
    # Gives the connection back (or closes it when the answer was not read to its end).
    close: Callable[[], Awaitable[None]]

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    async def read(self) -> bytes:
        try:
            return b"".join([chunk async for chunk in self.chunks()])
        finally:
            await self.close()


class UpstreamEngine(Protocol):
    """Sends one request to an upstream and returns its answer once the status and headers are in.

    Raises `UpstreamConnectionError` (unreachable, or closed before answering),
    `UpstreamProtocolError` (an answer that is not valid HTTP/1.1 or is cut short), `TimeoutError`
    (no answer within `timeout_s`), or `InvalidUpstreamURL` (nothing sent). The answer's body
    waits at most `read_timeout_s` (default: `timeout_s`) for each next piece: an event stream
    sets it far above its heartbeat.
    """

    async def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: RequestBody,
        timeout_s: float,
        read_timeout_s: float | None = None,
    ) -> UpstreamReply: ...

    async def aclose(self) -> None: ...
