"""Parking's booking events, as parking writes them, reach the booker (and, for an overstay, the
spot's owner) through the real broker; the overstay goes by SMS at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.parking import events as pk
from tests.notify.conftest import Community
from tests.notify.test_timebank_kinds import publish


async def test_a_booking_is_confirmed_reminded_and_its_overstay_told_to_booker_and_owner(community: Community) -> None:
    c = community
    await c.register_resident("booker-1", "13912345678")
    booking = str(uuid.uuid4())
    start = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
    end = start + timedelta(hours=1)
    common = {"booking_id": booking, "community": c.id, "spot_id": str(uuid.uuid4()), "booker_id": "booker-1"}
    await publish(
        c, pk.BookingConfirmed(**common, owner_id="owner-1", start=start, end=end, fee_fen=1000, confirmed_at=start), booking
    )
    await publish(c, pk.BookingStartingSoon(**common, start=start, end=end), booking)
    await publish(c, pk.BookingOverstayed(**common, owner_id="owner-1", end=end, price_fen_per_30min=500), booking)
    overstay, soon, confirmed = await c.wait_for_inbox("booker-1", 3)
    assert confirmed["kind"] == "parking.confirmed" and confirmed["body"] == (
        f"预约 #{booking[-6:].upper()} 已确认：12-06 09:00 至 12-06 10:00，费用 10.00 元。"
    )
    assert soon["kind"] == "parking.starting_soon" and "将于 12-06 09:00 开始" in soon["body"]
    assert (overstay["kind"], overstay["urgency"]) == ("parking.overstay", "urgent")
    [owner] = await c.wait_for_inbox("owner-1", 1)
    assert owner["kind"] == "parking.overstay_owner" and "车辆尚未驶离" in owner["body"]
    # Only the urgent overstay goes by SMS; a confirmation and a reminder stay in the app.
    sms = await c.rows(
        "SELECT n.kind FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
        "WHERE n.community = :community AND d.channel = 'sms'"
    )
    assert [r.kind for r in sms] == ["parking.overstay"]
