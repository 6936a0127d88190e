"""Through the gateway: a volunteer's acceptance of a care request reaches the elder's notify inbox,
and a cancellation tells the volunteer not to come (timebank → outbox → broker → notify); a ticket a
resident files appears on the routed steward's open stream (property → broker → notify → gateway)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.e2e.conftest import Community, Person, wait_until
from tests.notify.test_stream import frames, notifications_from

ALL_WEEK = [{"weekday": d, "start_minute": 0, "end_minute": 1440} for d in range(7)]


async def inbox(community: Community, person: Person) -> list[dict[str, Any]]:
    page: dict[str, Any] = await community.call("GET", "/api/notify/notifications", person.auth)
    return list(page["items"])


async def test_care_accepted_and_cancelled_reach_the_elder_and_the_volunteer(community: Community) -> None:
    elder = await community.resident("王阿婆", "elder")
    volunteer = await community.resident("陈志愿", "volunteer")
    await community.call("POST", "/api/timebank/members", elder.auth, {"elder": True}, expected=(201,))
    await community.call("POST", "/api/timebank/members", volunteer.auth, {"volunteer": True}, expected=(201,))
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    request = await community.call(
        "POST",
        "/api/timebank/care-requests",
        elder.auth,
        {"service_type": "companionship", "starts_at": starts.isoformat(), "place": "1幢101", "minutes_estimated": 60},
        expected=(201,),
    )
    rid = request["id"]
    await community.call("POST", f"/api/timebank/care-requests/{rid}/accept", volunteer.auth)

    async def elder_told() -> bool:
        return [n["kind"] for n in await inbox(community, elder)] == ["care.accepted"]

    await wait_until(elder_told, what="notify telling the elder her request was accepted")
    await community.call("POST", f"/api/timebank/care-requests/{rid}/cancel", elder.auth)

    async def volunteer_told() -> bool:
        return [n["kind"] for n in await inbox(community, volunteer)] == ["care.cancelled"]

    await wait_until(volunteer_told, what="notify telling the volunteer not to come")
    [note] = await inbox(community, volunteer)
    assert note["urgency"] == "urgent" and "请不要前往" in note["body"]
    # The elder cancelled: she is not told of her own act; her inbox is hers alone.
    assert [n["kind"] for n in await inbox(community, elder)] == ["care.accepted"]
    count = await community.call("GET", "/api/notify/notifications/unread-count", volunteer.auth)
    assert count["unread"] == 1


async def test_a_ticket_filed_by_a_resident_appears_on_the_routed_stewards_open_stream(community: Community) -> None:
    building = await community.building("B9")
    resident = await community.resident("李大爷")
    steward = await community.staff("steward", buildings=[building])
    await community.call("PUT", f"/api/property/staff/{steward.id}/roster", community.admin, {"shifts": ALL_WEEK})
    timeout = httpx.Timeout(30, read=120)
    async with community.client.stream("GET", "/api/notify/stream", headers=steward.auth, timeout=timeout) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        stream = frames(response)
        filed_at = time.perf_counter()
        ticket = await community.call(
            "POST", "/api/property/tickets", resident.auth, {"category": "repair", "description": "楼道灯不亮"}, expected=(201,)
        )
        assert ticket["assignee_id"] == steward.id  # routed to the building's steward on shift
        [frame] = await notifications_from(stream, 1, timeout=60)
        took_s = time.perf_counter() - filed_at
    note = frame.notification
    assert note["kind"] == "ticket.filed" and str(ticket["id"])[-6:].upper() in note["body"]
    assert frame.id == "1" and note["seq"] == 1
    # Informational (no timing bound in tests): the "within a second" is measured by the bench.
    print(f"ticket filed -> steward's stream: {took_s * 1000:.0f} ms")
