"""An elder may ask for copies of their time-bank messages to go to their verified relatives: the
copy says it is one, goes only to relatives the time bank verified, and never for other categories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.kit.envelope import EventData
from services.property import events as pr
from services.timebank import events as tb
from tests.notify.conftest import Community, wait_until
from tests.notify.test_timebank_kinds import publish

AT = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def logged(c: Community, elder: str) -> EventData:
    return tb.ServiceLogged(
        transfer_id=str(uuid.uuid4()),
        request_id=f"req-{uuid.uuid4().hex}",
        community=c.id,
        elder_id=elder,
        requested_by=elder,
        volunteer_id="vol-1",
        minutes=60,
        service_type="meal",
        confirm_by=AT + timedelta(days=2),
    )


async def verified(c: Community, member: str, relative: str) -> None:
    await publish(c, tb.RelativeVerified(community=c.id, member_id=member, relative_id=relative, verified_at=AT), member)

    async def known() -> bool:
        return len(await c.rows("SELECT 1 FROM relatives WHERE community = :community AND person_id = :p", p=member)) == 1

    await wait_until(known)


async def test_copies_go_to_verified_relatives_only_when_the_elder_asks(community: Community) -> None:
    c = community
    await verified(c, "elder-1", "son-1")
    # Not asked for yet: the elder alone is told.
    await publish(c, logged(c, "elder-1"), "elder-1")
    await c.wait_for_inbox("elder-1", 1)
    assert await c.inbox("son-1") == []

    r = await c.client.patch("/me/settings", json={"copy_to_relatives": True}, headers=c.auth("elder-1", "resident"))
    assert r.status_code == 200 and r.json()["copy_to_relatives"] is True, r.text
    await publish(c, logged(c, "elder-1"), "elder-1")
    [copy] = await c.wait_for_inbox("son-1", 1)
    [original, _] = await c.wait_for_inbox("elder-1", 2)
    assert copy["kind"] == original["kind"] == "care.awaiting_confirmation"
    assert copy["title"] == "【家人副本】" + original["title"] and copy["body"] == original["body"]

    # A stranger to the family gets nothing, and a ticket of the elder's is not copied (property data).
    ticket = f"tk-{uuid.uuid4().hex}"
    await publish(
        c,
        pr.TicketCompleted(
            ticket_id=ticket,
            community=c.id,
            category="repair",
            status="completed",
            assignee_id="st-1",
            resident_id="elder-1",
            completed_at=AT,
            on_time=True,
        ),
        ticket,
    )
    await c.wait_for_inbox("elder-1", 3)
    assert len(await c.inbox("son-1")) == 1
    assert await c.inbox("stranger") == []


async def test_a_relative_told_directly_is_not_told_twice(community: Community) -> None:
    c = community
    await verified(c, "elder-2", "son-2")
    r = await c.client.patch("/me/settings", json={"copy_to_relatives": True}, headers=c.auth("elder-2", "resident"))
    assert r.status_code == 200, r.text
    # The son asked for the visit: he is told as its requester, not sent a copy besides.
    event = logged(c, "elder-2").model_copy(update={"requested_by": "son-2"})
    await publish(c, event, "elder-2")
    [note] = await c.wait_for_inbox("son-2", 1)
    await c.wait_for_inbox("elder-2", 1)
    assert not note["title"].startswith("【家人副本】")
    assert len(await c.inbox("son-2")) == 1
