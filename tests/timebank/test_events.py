"""The time bank's events that tell people what happened to their care and hours: each written in
its use case's transaction through the outbox, once, however often the request is retried."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from services.timebank.events import CareRequestAccepted, HoursGifted, RelativeVerified, ServiceDisputed, ServiceLogged
from tests.timebank.community import WORKER, Community

OLD = date(1950, 3, 1)


async def outbox(c: Community, event_type: str) -> list[Any]:
    return await c.sql("SELECT key, data FROM kit_outbox WHERE type = :t ORDER BY id", t=event_type)


async def test_accepting_a_request_tells_once_and_a_lost_race_or_a_retry_tells_nothing(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("son", volunteer=True)
    await c.relatives("son", "elder")
    await c.enrol("vol", volunteer=True)
    await c.enrol("vol2", volunteer=True)
    rid = await c.care_request("elder", by="son")
    assert await outbox(c, CareRequestAccepted.event_type) == []
    assert (await c.client.post(f"/care-requests/{rid}/accept", headers=c.h("vol"))).status_code == 200
    assert (await c.client.post(f"/care-requests/{rid}/accept", headers=c.h("vol"))).status_code == 200  # a retry
    assert (await c.client.post(f"/care-requests/{rid}/accept", headers=c.h("vol2"))).status_code == 409  # too late
    [(key, data)] = await outbox(c, CareRequestAccepted.event_type)
    event = CareRequestAccepted.model_validate(data)
    assert key == event.request_id == rid
    assert (event.elder_id, event.requested_by, event.volunteer_id, event.service_type) == ("elder", "son", "vol", "meal")


async def test_a_check_out_asks_the_elder_side_to_confirm_and_a_dispute_tells_the_volunteer_once(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 200, "elder")
    rid, pending = await c.serve("elder", "vol", 30)
    [(key, data)] = await outbox(c, ServiceLogged.event_type)
    logged = ServiceLogged.model_validate(data)
    assert key == logged.request_id == rid and logged.transfer_id == pending
    assert (logged.elder_id, logged.requested_by, logged.volunteer_id, logged.minutes) == ("elder", "elder", "vol", 30)
    [(timeout_at,)] = await c.sql("SELECT timeout_at FROM tb_transfers WHERE id = :id", id=uuid.UUID(pending))
    assert logged.confirm_by == timeout_at

    dispute = {"id": str(uuid.uuid4()), "reason": "没来"}
    for _ in range(2):  # the second is a replay of the same transfer id
        r = await c.client.post(f"/transfers/{pending}/dispute", json=dispute, headers=c.h("elder"))
        assert r.status_code in (200, 201) and r.json()["phase"] == "voided", r.text
    [(key, data)] = await outbox(c, ServiceDisputed.event_type)
    disputed = ServiceDisputed.model_validate(data)
    assert key == rid and (disputed.transfer_id, disputed.pending_transfer_id) == (dispute["id"], pending)
    assert (disputed.volunteer_id, disputed.disputed_by, disputed.minutes) == ("vol", "elder", 30)
    # A dispute refused (already resolved) publishes nothing.
    r = await c.client.post(
        f"/transfers/{pending}/dispute", json={"id": str(uuid.uuid4()), "reason": "again"}, headers=c.h(WORKER)
    )
    assert r.status_code == 409
    assert len(await outbox(c, ServiceDisputed.event_type)) == 1


async def test_a_gift_tells_its_receiver_once(community: Community) -> None:
    c = community
    await c.enrol("mother", elder=True, birth=OLD)
    await c.enrol("daughter", volunteer=True)
    await c.relatives("daughter", "mother")
    await c.grant("daughter", 100, "mother")
    gift = {"id": str(uuid.uuid4()), "to_member_id": "mother", "minutes": 50}
    for _ in range(2):
        r = await c.client.post("/transfers/gift", json=gift, headers=c.h("daughter"))
        assert r.status_code in (200, 201), r.text
    r = await c.client.post("/transfers/gift", json={**gift, "id": str(uuid.uuid4()), "minutes": 500}, headers=c.h("daughter"))
    assert r.status_code == 409  # more than she has: refused, and no one is told
    [(key, data)] = await outbox(c, HoursGifted.event_type)
    event = HoursGifted.model_validate(data)
    assert key == event.transfer_id == gift["id"]
    assert (event.from_member_id, event.to_member_id, event.minutes) == ("daughter", "mother", 50)


async def test_a_new_family_link_is_published_once(community: Community) -> None:
    c = community
    await c.enrol("mother", elder=True, birth=OLD)
    await c.enrol("son", volunteer=True)
    await c.relatives("mother", "son")
    r = await c.client.post("/members/son/relatives", json={"relative_id": "mother", "relation": "母亲"}, headers=c.h(WORKER))
    assert r.status_code == 201, r.text  # the same link, from the other side: nothing new
    [(key, data)] = await outbox(c, RelativeVerified.event_type)
    event = RelativeVerified.model_validate(data)
    assert (key, event.member_id, event.relative_id, event.community) == ("mother", "mother", "son", c.name)
