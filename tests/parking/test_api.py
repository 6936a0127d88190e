"""Parking through HTTP against the real database and broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from services.kit.tables import outbox
from services.parking import bookings
from services.parking.models import Booking, GateEvent
from tests.parking.conftest import Community, next_half_hour
from tests.support.harness import RunningService

H = timedelta(hours=1)
PROBLEM = "urn:community:problem:"


async def count(svc: RunningService, model: type, community: str) -> int:
    async with svc.state.sessionmaker() as session, session.begin():
        return int(
            (await session.execute(select(func.count()).select_from(model).where(model.community == community))).scalar_one()
        )  # type: ignore[attr-defined]


async def shift_booking(svc: RunningService, booking_id: str, by: timedelta) -> None:
    """Move a booking in time (as if the clock had run on), keeping its length."""
    async with svc.state.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE bookings SET starts_at = starts_at + :by, ends_at = ends_at + :by, "
                "block_ends_at = block_ends_at + :by, entered_at = entered_at + :by WHERE id = :id"
            ),
            {"by": by, "id": uuid.UUID(booking_id)},
        )


async def test_private_spot_needs_verification_before_sharing(community: Community) -> None:
    c, client = community, community.svc.client
    r = await client.post("/spots", json={"code": "B1-007", "location": "1幢地下", "size": "standard"}, headers=c.owner_h)
    assert r.status_code == 201 and r.json()["status"] == "pending"
    spot_id = r.json()["id"]
    start = next_half_hour()
    r = await client.post(
        f"/spots/{spot_id}/windows",
        headers=c.owner_h,
        json={
            "kind": "one_off",
            "starts_at": start.isoformat(),
            "ends_at": (start + 2 * H).isoformat(),
            "price_fen_per_30min": 300,
        },
    )
    assert r.status_code == 409 and r.json()["type"] == PROBLEM + "parking/spot-not-verified"
    # A resident cannot verify their own spot.
    r = await client.post(f"/spots/{spot_id}/verification", json={"approve": True}, headers=c.owner_h)
    assert r.status_code == 403
    r = await client.post(f"/spots/{spot_id}/verification", json={"approve": True}, headers=c.steward_h)
    assert r.json()["status"] == "verified"
    # Another resident sees 404, not 403.
    r = await client.get(f"/spots/{spot_id}", headers=c.booker_h)
    assert r.status_code == 404 and r.json()["type"] == PROBLEM + "parking/spot-not-found"


async def test_overlapping_bookings_conflict_back_to_back_fits(community: Community) -> None:
    c = community
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 4 * H)
    first = await c.book(spot, start, start + H)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "held" and first.json()["fee_fen"] == 1000
    overlap = await c.book(spot, start + timedelta(minutes=30), start + 2 * H, plate="浙A88888")
    assert overlap.status_code == 409 and overlap.json()["type"] == PROBLEM + "parking/booking-conflict"
    back_to_back = await c.book(spot, start + H, start + 2 * H, plate="浙A88888")
    assert back_to_back.status_code == 201, back_to_back.text


async def test_cancelled_and_expired_bookings_do_not_block(community: Community) -> None:
    c, svc = community, community.svc
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 2 * H)
    first = (await c.book(spot, start, start + H)).json()
    r = await svc.client.post(f"/bookings/{first['id']}/cancellation", headers=c.booker_h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    second = await c.book(spot, start, start + H)
    assert second.status_code == 201
    # The hold runs out unpaid: the job expires it and the time is free again.
    async with svc.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE bookings SET hold_expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": uuid.UUID(second.json()["id"])},
        )
    async with svc.state.sessionmaker() as session:
        assert await bookings.expire_holds(session) >= 1
    r = await svc.client.get(f"/bookings/{second.json()['id']}", headers=c.booker_h)
    assert r.json()["status"] == "expired"
    pay = await svc.client.post(f"/bookings/{second.json()['id']}/payment", json={}, headers=c.booker_h)
    assert pay.status_code == 409
    assert (await c.book(spot, start, start + H)).status_code == 201


async def test_booking_must_lie_inside_a_window(community: Community) -> None:
    c = community
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 2 * H)
    for s, e in [
        (start - timedelta(minutes=30), start + H),
        (start + H, start + 2 * H + timedelta(minutes=1)),
        (start + 3 * H, start + 4 * H),
    ]:
        r = await c.book(spot, s, e)
        assert r.status_code == 409 and r.json()["type"] == PROBLEM + "parking/outside-window", (s, e)
    assert (await c.book(spot, start, start + 2 * H)).status_code == 201


async def test_buffer_keeps_a_gap_after_each_booking(community: Community) -> None:
    c = community
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 4 * H, buffer=30)
    assert (await c.book(spot, start, start + H)).status_code == 201
    assert (await c.book(spot, start + H, start + 2 * H, plate="浙A11111")).status_code == 409
    assert (await c.book(spot, start + H + timedelta(minutes=30), start + 2 * H, plate="浙A11111")).status_code == 201


async def test_bad_input_is_a_problem_and_writes_nothing(community: Community) -> None:
    c, svc = community, community.svc
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 3 * H)
    cases = [
        (await c.book(spot, start + H, start), 422, "parking/invalid-time-range"),
        (await c.book(spot, start - 3 * H, start - 2 * H), 422, "parking/booking-in-past"),
        (await c.book(spot, start, start + timedelta(minutes=10)), 422, "parking/too-short"),
        (await c.book(spot, start, start + H, plate="ZJ-12345"), 422, "validation-error"),
        (await c.book(spot, start, start + H, plate="浙I12345"), 422, "validation-error"),
        (
            await svc.client.post(
                f"/spots/{spot}/windows",
                headers=c.owner_h,
                json={
                    "kind": "one_off",
                    "starts_at": (start + 5 * H).isoformat(),
                    "ends_at": (start + 5 * H + timedelta(minutes=20)).isoformat(),
                    "price_fen_per_30min": 100,
                },
            ),
            422,
            "parking/too-short",
        ),
        (
            await svc.client.post(
                "/bookings",
                headers=c.booker_h,
                json={"spot_id": spot, "starts_at": "2030-01-01T10:00:00", "ends_at": "2030-01-01T11:00:00", "plate": "浙K12345"},
            ),
            422,
            "validation-error",
        ),
    ]
    for r, status, slug in cases:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == PROBLEM + slug
    assert await count(svc, Booking, c.id) == 0
    # A plate in the wrong format is refused without echoing it back.
    r = await c.book(spot, start, start + H, plate="浙I12345")
    assert "浙I12345" not in r.text


async def test_pay_then_cancel_refunds_by_policy(community: Community) -> None:
    c, client = community, community.svc.client
    spot = await c.spot()
    soon = next_half_hour()  # 60-90 minutes away: inside the 120-minute full-refund period
    later = soon + 5 * H
    await c.window(spot, soon, later + 2 * H)
    late = (await c.book(spot, soon, soon + H)).json()
    early = (await c.book(spot, later, later + H, plate="浙A22222")).json()
    declined = await client.post(f"/bookings/{late['id']}/payment", json={"method": "fake-decline"}, headers=c.booker_h)
    assert declined.status_code == 402
    for b in (late, early):
        r = await client.post(f"/bookings/{b['id']}/payment", json={}, headers=c.booker_h)
        assert r.status_code == 200 and r.json()["status"] == "confirmed" and r.json()["paid_fen"] == 1000
    r = await client.post(f"/bookings/{late['id']}/cancellation", headers=c.booker_h)
    assert r.json()["refunded_fen"] == 500  # late cancellation by the booker: 50%
    r = await client.post(f"/bookings/{early['id']}/cancellation", headers=c.booker_h)
    assert r.json()["refunded_fen"] == 1000
    again = (await c.book(spot, soon, soon + H)).json()
    await client.post(f"/bookings/{again['id']}/payment", json={}, headers=c.booker_h)
    r = await client.post(f"/bookings/{again['id']}/cancellation", headers=c.owner_h)
    assert r.json()["refunded_fen"] == 1000  # the owner cancels: full refund
    # A stranger cannot even see the booking.
    stranger = c.auth(str(uuid.uuid4()), "resident")
    assert (await client.get(f"/bookings/{again['id']}", headers=stranger)).status_code == 404


async def test_owner_cannot_withdraw_or_shrink_over_a_booking(community: Community) -> None:
    c, client = community, community.svc.client
    spot = await c.spot()
    start = next_half_hour()
    window = await c.window(spot, start, start + 4 * H)
    booking = (await c.book(spot, start + H, start + 2 * H)).json()
    r = await client.post(f"/windows/{window['id']}/withdrawal", headers=c.owner_h)
    assert r.status_code == 409 and r.json()["type"] == PROBLEM + "parking/window-in-use"
    r = await client.patch(
        f"/windows/{window['id']}",
        headers=c.owner_h,
        json={"starts_at": (start + 90 * timedelta(minutes=1)).isoformat(), "ends_at": (start + 4 * H).isoformat()},
    )
    assert r.status_code == 409
    r = await client.patch(
        f"/windows/{window['id']}",
        headers=c.owner_h,
        json={"starts_at": (start + H).isoformat(), "ends_at": (start + 3 * H).isoformat()},
    )
    assert r.status_code == 200, r.text
    assert (await c.book(spot, start, start + H, plate="浙A33333")).status_code == 409
    await client.post(f"/bookings/{booking['id']}/cancellation", headers=c.booker_h)
    r = await client.post(f"/windows/{window['id']}/withdrawal", headers=c.owner_h)
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert (await c.book(spot, start + H, start + 2 * H)).status_code == 409


async def test_overlapping_windows_are_refused(community: Community) -> None:
    c, client = community, community.svc.client
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 2 * H)
    r = await client.post(
        f"/spots/{spot}/windows",
        headers=c.owner_h,
        json={
            "kind": "one_off",
            "starts_at": (start + H).isoformat(),
            "ends_at": (start + 3 * H).isoformat(),
            "price_fen_per_30min": 100,
        },
    )
    assert r.status_code == 409 and r.json()["type"] == PROBLEM + "parking/window-overlaps"


async def test_weekly_window_and_search(community: Community) -> None:
    c, client = community, community.svc.client
    charging = await c.spot(has_charger=True, size="large")
    plain = await c.spot()
    for spot in (charging, plain):
        r = await client.post(
            f"/spots/{spot}/windows",
            headers=c.owner_h,
            json={
                "kind": "weekly",
                "weekdays": [1, 2, 3, 4, 5, 6, 7],
                "local_start": "00:00",
                "local_end": "00:00",
                "price_fen_per_30min": 200,
            },
        )
        assert r.status_code == 201, r.text
    start = next_half_hour(timedelta(days=2))
    params = {"starts_at": start.isoformat(), "ends_at": (start + H).isoformat()}
    r = await client.get("/free-spots", params=params, headers=c.booker_h)
    assert {s["spot_id"] for s in r.json()["items"]} == {charging, plain}
    assert all(s["fee_fen"] == 400 for s in r.json()["items"])
    r = await client.get("/free-spots", params={**params, "charging": "true"}, headers=c.booker_h)
    assert [s["spot_id"] for s in r.json()["items"]] == [charging]
    # Each filter, and a cursor, alone and together (the search is compiled once per combination).
    r = await client.get("/free-spots", params={**params, "size": "large"}, headers=c.booker_h)
    assert [s["spot_id"] for s in r.json()["items"]] == [charging]
    r = await client.get("/free-spots", params={**params, "size": "large", "charging": "false"}, headers=c.booker_h)
    assert r.json()["items"] == []
    first = (await client.get("/free-spots", params={**params, "limit": 1}, headers=c.booker_h)).json()
    rest = await client.get("/free-spots", params={**params, "limit": 1, "cursor": first["next_cursor"]}, headers=c.booker_h)
    assert [s["spot_id"] for s in first["items"] + rest.json()["items"]] == sorted([charging, plain])
    assert rest.json()["next_cursor"] is None
    paged = {**params, "cursor": first["next_cursor"], "size": "large", "charging": "true"}
    r = await client.get("/free-spots", params=paged, headers=c.booker_h)
    assert [s["spot_id"] for s in r.json()["items"]] == ([charging] if charging > plain else [])
    assert (await c.book(plain, start, start + H)).status_code == 201
    r = await client.get("/free-spots", params=params, headers=c.booker_h)
    assert [s["spot_id"] for s in r.json()["items"]] == [charging]
    # Other communities see nothing of this one.
    other = c.stack.auth(c.booker, "resident", community="elsewhere")
    assert (await client.get("/free-spots", params=params, headers=other)).json()["items"] == []


async def test_gate_entry_exit_overstay_and_completed_event(community: Community) -> None:
    c, svc = community, community.svc
    await c.register_gate()
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 3 * H, price=500)
    booking = (await c.book(spot, start, start + H, plate="浙KD12345")).json()
    await svc.client.post(f"/bookings/{booking['id']}/payment", json={}, headers=c.booker_h)
    # Make the booked hour start now, as if the clock had reached it.
    now = datetime.now(UTC)
    await shift_booking(svc, booking["id"], now - datetime.fromisoformat(booking["starts_at"]))
    r = await svc.client.post("/gate/entries", json={"plate": "浙kd 12345"}, headers=c.gate_h)
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "open" and r.json()["booking_id"] == booking["id"]
    # The car stays 1 h 31 min: 31 minutes past the end is two started half hours of overstay.
    await shift_booking(svc, booking["id"], -(H + timedelta(minutes=31)))
    r = await svc.client.post("/gate/exits", json={"plate": "浙KD12345"}, headers=c.gate_h)
    assert r.json()["decision"] == "open" and r.json()["overstay_fen"] == 1000 and r.json()["charged_fen"] == 1000
    done = (await svc.client.get(f"/bookings/{booking['id']}", headers=c.booker_h)).json()
    assert done["status"] == "completed" and done["paid_fen"] == 2000
    assert done["owner_share_fen"] == 1400  # 70% by default
    async with svc.state.sessionmaker() as session, session.begin():
        rows = (await session.execute(select(outbox).where(outbox.c.key == booking["id"]))).all()
    assert [r.type for r in rows] == ["parking.booking.confirmed.v1", "parking.booking.completed.v1"]
    assert rows[1].data["fee_fen"] == 2000 and rows[1].data["owner_share_fen"] == 1400
    assert rows[1].data["owner_id"] == c.owner and rows[1].data["community"] == c.id
    earnings = (await svc.client.get("/earnings", headers=c.owner_h)).json()
    assert earnings["total_owner_share_fen"] == 1400 and earnings["completed_bookings"] == 1


async def test_unmatched_plate_refused_or_public_rate(community: Community) -> None:
    c, svc = community, community.svc
    await c.register_gate()
    r = await svc.client.post("/gate/entries", json={"plate": "浙A99999"}, headers=c.gate_h)
    assert r.json()["decision"] == "refused"
    await c.spot(kind="public", code="P-01")
    r = await svc.client.post("/gate/entries", json={"plate": "浙A99999"}, headers=c.gate_h)
    assert r.json()["decision"] == "open" and r.json()["reason"] == "public-rate"
    # 61 minutes at the public rate (300 fen per started 30 min) is 900 fen.
    async with svc.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE bookings SET entered_at = now() - interval '61 minutes' WHERE id = :id"),
            {"id": uuid.UUID(r.json()["booking_id"])},
        )
    r = await svc.client.post("/gate/exits", json={"plate": "浙A99999"}, headers=c.gate_h)
    assert r.json()["charged_fen"] == 900


async def test_unknown_gate_device_is_refused_and_nothing_written(community: Community) -> None:
    c, svc = community, community.svc
    r = await svc.client.post("/gate/entries", json={"plate": "浙A99999"}, headers=c.gate_h)
    assert r.status_code == 403 and r.json()["type"] == PROBLEM + "parking/unknown-gate-device"
    r = await svc.client.post("/gate/entries", json={"plate": "浙A99999"}, headers=c.booker_h)
    assert r.status_code == 403
    assert await count(svc, GateEvent, c.id) == 0


async def test_steward_corrects_misread_plate_and_booking_is_matched(community: Community) -> None:
    c, svc = community, community.svc
    await c.register_gate()
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 3 * H)
    booking = (await c.book(spot, start, start + H, plate="浙B80808")).json()
    await svc.client.post(f"/bookings/{booking['id']}/payment", json={}, headers=c.booker_h)
    await shift_booking(svc, booking["id"], datetime.now(UTC) - datetime.fromisoformat(booking["starts_at"]))
    misread = (await svc.client.post("/gate/entries", json={"plate": "浙B30808"}, headers=c.gate_h)).json()
    assert misread["decision"] == "refused"
    r = await svc.client.post(f"/gate-events/{misread['event_id']}/correction", json={"plate": "浙B80808"}, headers=c.booker_h)
    assert r.status_code == 403
    r = await svc.client.post(f"/gate-events/{misread['event_id']}/correction", json={"plate": "浙B80808"}, headers=c.steward_h)
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "open" and r.json()["booking_id"] == booking["id"]
    assert (await svc.client.get(f"/bookings/{booking['id']}", headers=c.booker_h)).json()["status"] == "active"
    events = (await svc.client.get("/gate-events", headers=c.steward_h)).json()["items"]
    assert events[0]["corrected_plate"] == "浙B80808"
    occupancy = (await svc.client.get("/occupancy", headers=c.steward_h)).json()
    assert occupancy["occupied_now"] == 1 and len(occupancy["hours"]) == 24


async def test_idempotency_key_replays_booking(community: Community) -> None:
    c, svc = community, community.svc
    spot = await c.spot()
    start = next_half_hour()
    await c.window(spot, start, start + 2 * H)
    headers = {**c.booker_h, "Idempotency-Key": "book-1"}
    body = {"spot_id": spot, "starts_at": start.isoformat(), "ends_at": (start + H).isoformat(), "plate": "浙K12345"}
    results = await asyncio.gather(*(svc.client.post("/bookings", json=body, headers=headers) for _ in range(5)))
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert await count(svc, Booking, c.id) == 1
