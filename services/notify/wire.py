"""How a notification travels to live streams: its Server-Sent Events frame, and the `pg_notify`
payload that carries the frame from the committing transaction to every replica's listener."""

from __future__ import annotations

from typing import Any

from services.notify.schemas import NotificationPublic

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a longer frame goes as its head alone
# (the stream then reads the notification from the database).
MAX_PAYLOAD_BYTES = 7900

Recipient = tuple[str, str]  # (community, person)


def sse_frame(row: Any) -> str:
    data = NotificationPublic.model_validate(row, from_attributes=True).model_dump_json()
    return f"id: {row.seq}\nevent: notification\ndata: {data}\n\n"


def frame_payload(row: Any) -> str:
    """`<community> <recipient> <seq>`, a newline, then the frame (or the first line alone)."""
    head = head_payload(row.community, row.recipient_id, row.seq)
    payload = f"{head}\n{sse_frame(row)}"
    return payload if len(payload.encode()) < MAX_PAYLOAD_BYTES else head


def head_payload(community: str, recipient: str, seq: int) -> str:
    """A wake-up without the frame: the recipient's streams read what they missed up to `seq`."""
    return f"{community} {recipient} {seq}"


def read_payload(payload: str) -> tuple[Recipient, int, str | None]:
    """The recipient, seq and frame (None when it did not fit) of a `frame_payload`."""
    head, _, frame = payload.partition("\n")
    community, _, rest = head.partition(" ")
    person, _, seq = rest.rpartition(" ")
    return (community, person), int(seq), frame or None
