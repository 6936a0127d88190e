"""Who the caller is on the network: the peer, or what trusted proxies say the peer is.

The client address decides the per-IP rate limits and login throttles, so it is taken from
`X-Forwarded-For` only when the connection comes from one of the configured proxy networks
(`trusted_proxies`, empty by default), and then by the rightmost-untrusted rule: walking the list
from its right end (the hop nearest the gateway), past every address inside a trusted network, the
first address outside them is the client. What lies left of it was written by the client itself
and is never believed. The caller's own forwarding headers never reach a service either way
(`gateway.headers.NOT_FORWARDED`); the gateway writes its own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: Sequence[str], networks: Sequence[Network]) -> str:
    """The client's address behind `peer`, by the rightmost-untrusted rule over `X-Forwarded-For`."""
    if not is_trusted(peer, networks):
        return peer
    nearest = peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        if is_trusted(hop, networks):
            nearest = hop
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            # Not an address: no trusted proxy wrote it, so the nearest trusted hop is all we know.
            return nearest
    return nearest


class RealClient:
    """ASGI layer: the scope's client (and scheme) as the trusted proxies report them.

    Outermost, so the rate limits, the access log and the `X-Forwarded-For` the gateway sends on
    all see the same address. Without trusted proxies it changes nothing.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[str]):
        self.app = app
        self.networks = proxy_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if self.networks and scope["type"] == "http" and client and is_trusted(client[0], self.networks):
            forwarded_for = [v.decode("latin-1") for n, v in scope["headers"] if n == b"x-forwarded-for"]
            protos = [v.decode("latin-1").split(",")[-1].strip() for n, v in scope["headers"] if n == b"x-forwarded-proto"]
            scope = dict(scope)
            scope["client"] = (forwarded_client(client[0], forwarded_for, self.networks), client[1])
            if protos and protos[-1] in ("http", "https"):
                scope["scheme"] = protos[-1]
        await self.app(scope, receive, send)
