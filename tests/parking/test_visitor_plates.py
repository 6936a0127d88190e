"""A visitor pass with a plate (security's `pass.car_allowed`) lets the car in through the gate by the
booking's own matching, without a booking: inside its window only, never after revocation, and no
more often than its entries allow, even when gates read the plate at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.kit.envelope import CloudEvent
from services.kit.inbox import EventConsumer
from services.parking.consumers import security_consumer
from tests.parking.conftest import Community

H = timedelta(hours=1)


async def deliver(c: Community, event_type: str, pass_id: str, **data: Any) -> None:
    """Apply a security event as parking's consumer does (through the idempotent inbox)."""
    event = CloudEvent(
        type=event_type, source="/services/security", data={"community": c.id, "pass_id": pass_id, **data}, key=pass_id
    )
    consumer = EventConsumer(security_consumer, settings=c.svc.settings, sessionmaker=c.svc.state.sessionmaker)
    assert await consumer.apply(event)


async def allow(c: Community, plate: str, start: datetime, end: datetime, max_entries: int | None = None) -> str:
    pass_id = f"vp-{uuid.uuid4().hex[:12]}"
    window = {"valid_from": start.isoformat(), "valid_until": end.isoformat(), "max_entries": max_entries}
    await deliver(c, "security.pass.car_allowed.v1", pass_id, plate=plate, **window)
    return pass_id


async def enter(c: Community, plate: str) -> dict[str, Any]:
    r = await c.svc.client.post("/gate/entries", json={"plate": plate}, headers=c.gate_h)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_plate_pass_opens_the_gate_only_inside_its_window(community: Community) -> None:
    c = community
    await c.register_gate()  # and no public spot: a car nothing admits is refused
    now = datetime.now(UTC)
    inside = await allow(c, "浙A12345", now - H, now + H)
    await allow(c, "浙B22222", now + 2 * H, now + 3 * H)  # not yet (beyond the entry grace)
    await allow(c, "浙C33333", now - 3 * H, now - H)  # over

    opened = await enter(c, "浙a 12345")  # read as the camera does: normalised like a booking's plate
    assert (opened["decision"], opened["reason"], opened["visitor_pass_id"]) == ("open", "visitor-pass", inside)
    assert opened["booking_id"] is None
    for plate in ("浙B22222", "浙C33333", "浙D44444"):
        refused = await enter(c, plate)
        assert (refused["decision"], refused["visitor_pass_id"]) == ("refused", None), plate
    left = (await c.svc.client.post("/gate/exits", json={"plate": "浙A12345"}, headers=c.gate_h)).json()
    assert (left["decision"], left["reason"], left["visitor_pass_id"]) == ("open", "visitor-pass", inside)


async def test_a_plate_pass_refuses_after_revocation_and_after_its_entries(community: Community) -> None:
    c = community
    await c.register_gate()
    now = datetime.now(UTC)
    revoked = await allow(c, "浙E55555", now - H, now + H)
    await deliver(c, "security.pass.revoked.v1", revoked, building_id="b1", revoked_seq=1, valid_until=(now + H).isoformat())
    assert (await enter(c, "浙E55555"))["decision"] == "refused"

    twice = await allow(c, "浙F66666", now - H, now + H, max_entries=2)
    assert [(await enter(c, "浙F66666"))["decision"] for _ in range(3)] == ["open", "open", "refused"]
    # A republished `car_allowed` (another event id) does not give the entries back.
    window = {"valid_from": (now - H).isoformat(), "valid_until": (now + H).isoformat(), "max_entries": 2}
    await deliver(c, "security.pass.car_allowed.v1", twice, plate="浙F66666", **window)
    assert (await enter(c, "浙F66666"))["decision"] == "refused"


async def test_gates_reading_a_single_entry_plate_at_once_let_one_car_in(community: Community) -> None:
    c = community
    await c.register_gate()
    now = datetime.now(UTC)
    await allow(c, "浙G77777", now - H, now + H, max_entries=1)
    answers = await asyncio.gather(*(enter(c, "浙G77777") for _ in range(12)))
    assert sorted(a["decision"] for a in answers) == ["open"] + ["refused"] * 11
