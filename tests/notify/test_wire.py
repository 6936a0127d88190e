"""How a committed notification reaches a replica's streams: its frame in the `pg_notify` payload, and
a stream's mailbox that sends frames only in unbroken order, and reads the database otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from services.notify.notifications import FRAMES_UP_TO, head_payloads, wake_payloads
from services.notify.stream import Waiter, Wakes
from services.notify.wire import MAX_PAYLOAD_BYTES, frame_payload, read_payload, sse_frame


def row(seq: int, body: str = "您获得 5 积分。", person: str = "res-1") -> Any:
    return SimpleNamespace(
        id=100 + seq,
        seq=seq,
        community="c-1",
        recipient_id=person,
        kind="points.granted",
        category="points",
        urgency="normal",
        title="获得积分",
        body=body,
        created_at=datetime(2026, 12, 5, 8, 0, tzinfo=UTC),
        read_at=None,
    )


def test_a_payload_carries_the_frame_a_stream_would_have_read() -> None:
    recipient, seq, frame = read_payload(frame_payload(row(7)))
    assert recipient == ("c-1", "res-1") and seq == 7
    assert frame == sse_frame(row(7)) and frame.startswith("id: 7\nevent: notification\ndata: {")


def test_a_frame_too_long_for_notify_goes_as_its_head_alone() -> None:
    payload = frame_payload(row(3, body="长" * 3000))  # 9,000 bytes of UTF-8
    assert len(payload.encode()) < MAX_PAYLOAD_BYTES
    assert read_payload(payload) == (("c-1", "res-1"), 3, None)


def test_frames_in_unbroken_order_are_sent_and_ones_already_sent_skipped() -> None:
    waiter = Waiter()
    waiter.stale = False
    for seq in (4, 5, 6, 7):
        waiter.offer(seq, f"frame {seq}")
    assert waiter.take(after=5) == ["frame 6", "frame 7"]  # 4 and 5 came by the database read
    assert not waiter.stale and not waiter.frames


def test_a_gap_or_a_frame_that_did_not_fit_sends_the_stream_to_the_database() -> None:
    gap = Waiter()
    gap.stale = False
    gap.offer(2, "frame 2")
    gap.offer(4, "frame 4")  # 3 was a number a duplicate left unused, or is not committed yet here
    assert gap.take(after=1) == ["frame 2"] and gap.stale
    head_only = Waiter()
    head_only.stale = False
    head_only.offer(2, None)
    assert head_only.take(after=1) == [] and head_only.stale


def test_a_stream_that_falls_far_behind_reads_the_database_instead_of_holding_frames() -> None:
    waiter = Waiter()
    waiter.stale = False
    for seq in range(1, Waiter.MAX_FRAMES + 2):
        waiter.offer(seq, f"frame {seq}")
    assert waiter.stale and len(waiter.frames) < Waiter.MAX_FRAMES


def test_the_listener_hands_a_frame_only_to_its_recipients_streams_and_a_reconnect_to_all() -> None:
    wakes = Wakes("postgresql://unused")
    mine, theirs = wakes.subscribe(("c-1", "res-1")), wakes.subscribe(("c-1", "res-2"))
    for waiter in (mine, theirs):
        waiter.stale = False
    wakes.on_notify(None, 0, "notify_inbox", frame_payload(row(1)))
    wakes.on_notify(None, 0, "notify_inbox", frame_payload(row(1, person="res-1 x")))  # another id
    assert mine.ready.is_set() and mine.take(after=0) == [sse_frame(row(1))]
    assert not theirs.ready.is_set() and not theirs.frames
    wakes.wake_all()
    assert mine.stale and theirs.stale and theirs.ready.is_set()


def test_a_backlogs_batch_wakes_each_recipient_once_with_their_last_number() -> None:
    live = [row(1), row(2)]
    assert wake_payloads(live) == [frame_payload(r) for r in live]
    backlog = [row(seq, person=f"res-{p}") for p in (1, 2) for seq in range(1, FRAMES_UP_TO)]
    assert [read_payload(p) for p in wake_payloads(backlog)] == [
        (("c-1", "res-1"), FRAMES_UP_TO - 1, None),
        (("c-1", "res-2"), FRAMES_UP_TO - 1, None),
    ]


def test_a_backlogs_wake_names_each_recipients_last_new_number_in_whatever_order_they_came() -> None:
    numbers = [("c-1", "res-1", 7), ("c-1", "res-2", 3), ("c-1", "res-1", 9), ("c-1", "res-1", 8)]
    assert sorted(read_payload(p) for p in head_payloads(numbers)) == [(("c-1", "res-1"), 9, None), (("c-1", "res-2"), 3, None)]
