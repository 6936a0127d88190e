"""The time bank's care and hours events, as the time bank writes them, reach the people the table
names (through the real broker), and not whoever caused them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from services.kit.envelope import CloudEvent, EventData
from services.timebank import events as tb
from tests.notify.conftest import Community


def as_published(c: Community, data: EventData, key: str) -> CloudEvent:
    """The event exactly as its publisher's model writes it (the community is the test's)."""
    return c.event(data.event_type, key, **data.model_dump(mode="json", exclude={"community"}))


async def publish(c: Community, data: EventData, key: str) -> None:
    await c.publish(as_published(c, data, key))


async def test_care_accepted_logged_and_disputed_tell_the_elder_side_and_the_volunteer(community: Community) -> None:
    c = community
    request = f"req-{uuid.uuid4().hex}"
    starts = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    common = {"request_id": request, "community": c.id, "elder_id": "elder-1", "service_type": "meal"}
    await publish(
        c,
        tb.CareRequestAccepted(**common, requested_by="son-1", volunteer_id="vol-1", starts_at=starts, accepted_at=starts),
        request,
    )
    await publish(
        c,
        tb.ServiceLogged(
            **common,
            transfer_id=str(uuid.uuid4()),
            requested_by="son-1",
            volunteer_id="vol-1",
            minutes=90,
            confirm_by=starts + timedelta(days=2),
        ),
        request,
    )
    await publish(
        c,
        tb.ServiceDisputed(
            **common,
            transfer_id=str(uuid.uuid4()),
            pending_transfer_id=str(uuid.uuid4()),
            volunteer_id="vol-1",
            minutes=90,
            disputed_by="son-1",
            reason="没来 13812345678",
        ),
        request,
    )
    elder = await c.wait_for_inbox("elder-1", 2)
    assert [n["kind"] for n in elder] == ["care.awaiting_confirmation", "care.accepted"]  # newest first
    assert "12-06 10:00" in elder[1]["body"] and "已有志愿者接单" in elder[1]["body"]
    assert "1.5 小时" in elder[0]["body"] and "12-08 10:00 前确认" in elder[0]["body"]
    son = await c.wait_for_inbox("son-1", 2)  # who asked on the elder's behalf follows it too
    assert [n["kind"] for n in son] == ["care.awaiting_confirmation", "care.accepted"]
    [disputed] = await c.wait_for_inbox("vol-1", 1)
    assert disputed["kind"] == "care.disputed" and "1.5 小时被提出异议" in disputed["body"]
    assert "13812345678" not in disputed["body"] and "没来" not in disputed["body"]  # the free-text reason stays out
    # The son disputed: he is not told of his own act.
    assert [n["kind"] for n in await c.inbox("son-1")] == ["care.awaiting_confirmation", "care.accepted"]


async def test_a_gift_tells_its_receiver_in_their_language_and_not_the_giver(community: Community) -> None:
    c = community
    r = await c.client.patch("/me/settings", json={"language": "en"}, headers=c.auth("mother-1", "resident"))
    assert r.status_code == 200, r.text
    transfer = str(uuid.uuid4())
    gift = tb.HoursGifted(transfer_id=transfer, community=c.id, from_member_id="daughter-1", to_member_id="mother-1", minutes=120)
    ce = as_published(c, gift, transfer)
    await c.publish(ce)
    await c.publish(ce)  # republished: told once
    # A second gift on the same key (so after the republished one, in order) marks the end.
    await publish(c, gift.model_copy(update={"transfer_id": str(uuid.uuid4()), "minutes": 30}), transfer)
    later, note = await c.wait_for_inbox("mother-1", 2)
    assert (note["kind"], note["title"], note["body"]) == ("hours.gift_received", "Hours received", "A relative gave you 2.0 h.")
    assert later["body"] == "A relative gave you 0.5 h."
    assert len(await c.inbox("mother-1")) == 2
    assert await c.inbox("daughter-1") == []


async def test_hours_about_to_expire_are_told_to_their_member_with_the_day(community: Community) -> None:
    c = community
    await publish(
        c,
        tb.HoursExpiring(community=c.id, member_id="elder-2", minutes=90, expires_on=date(2027, 1, 4), valid_months=36),
        "elder-2",
    )
    [note] = await c.wait_for_inbox("elder-2", 1)
    assert note["kind"] == "hours.expiring"
    assert note["body"] == "您有 1.5 小时将于 2027-01-04 到期转入公益池，可在此前使用或赠予亲属。"
