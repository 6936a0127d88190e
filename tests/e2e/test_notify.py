"""Through the gateway: a volunteer's acceptance of a care request reaches the elder's notify inbox,
and a cancellation tells the volunteer not to come (timebank → outbox → broker → notify)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Community, Person, wait_until


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
