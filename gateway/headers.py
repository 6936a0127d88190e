"""Which headers cross the gateway, each way: hop-by-hop headers never do, and an answer's are
cleaned of what only the service's side of the connection should see."""

from __future__ import annotations

from starlette.requests import Request

from services.kit.problems import Unauthorized

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
HOP_BY_HOP_BYTES = frozenset(name.encode() for name in HOP_BY_HOP)
# Never passed on as they came: hop-by-hop headers, and those the gateway sets itself.
NOT_FORWARDED = HOP_BY_HOP | {
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-community-region",
}
# The region code of the token's community (its record at the gateway), set on what citysync is asked:
# the city files a community's feed under it. Never taken from the caller (it is in NOT_FORWARDED).
REGION_HEADER = "x-community-region"
# A body read whole is sent with its own length by the client.
NOT_FORWARDED_BUFFERED = NOT_FORWARDED | {"content-length"}
# Not relayed from an answer: hop-by-hop headers, and the two the gateway's own server sets.
ANSWER_NOT_RELAYED = HOP_BY_HOP_BYTES | {b"date", b"server"}


def answer_headers(raw: list[tuple[bytes, bytes]], base_url: str, prefix: str) -> list[tuple[bytes, bytes]]:
    """The upstream's answer headers as the caller gets them, names in lower case.

    Dropped: hop-by-hop headers and any the upstream's `Connection` names (RFC 9110 §7.6.1), and
    its `Date` and `Server` (the gateway's server sets its own, and two of each confuse clients).
    A `Location` on the upstream itself is made relative to the path the caller used.
    """
    drop = ANSWER_NOT_RELAYED
    named = [value for name, value in raw if name.lower() == b"connection"]
    if named:
        drop = drop | {token.strip().lower() for value in named for token in value.split(b",")}
    headers = []
    for name, value in raw:
        lowered = name.lower()
        if lowered in drop:
            continue
        if lowered == b"location":
            value = relative_location(value, base_url, prefix)
        headers.append((lowered, value))
    return headers


def relative_location(location: bytes, base_url: str, prefix: str) -> bytes:
    """`Location` as the caller can follow it: a URL on the upstream (absolute, or a path from its
    root) becomes the gateway's path to it (`/api/timebank/...`); any other URL is left as it is.

    The upstream builds absolute URLs from the Host the gateway sends it, its own address, which a
    caller can neither reach nor should learn.
    """
    text = location.decode("latin-1")
    if text == base_url or text.startswith((base_url + "/", base_url + "?")):
        rest = text[len(base_url) :]
        return (prefix + (rest if rest.startswith("/") else "/" + rest)).encode("latin-1")
    if text.startswith("/") and not text.startswith("//"):
        return (prefix + text).encode("latin-1")
    return location


# The request headers the proxy reads itself (the first of each, as Starlette's `Headers.get`).
READ_HEADERS = frozenset({b"authorization", b"content-length", b"idempotency-key", b"transfer-encoding"})


def bearer_token(request: Request) -> str:
    return bearer_token_in(request.headers.get("authorization", ""))


def bearer_token_in(auth: str) -> str:
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(("缺少访问令牌", "Missing bearer token"))
    return token.strip()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
