"""Confirmation in one database call (`tb_confirm_service`): the paths it owns, through HTTP.

The cap overflow on confirmation (with a member or the pool paying), a steward as delegate, the
event's exact contract, refusals remembered per id, and each refusal with its problem fields.
"""

from __future__ import annotations

import uuid
from datetime import date

from services.timebank import ledger
from services.timebank.events import ServiceConfirmed
from tests.timebank.community import WORKER, Community, assert_ledger_invariants
from tests.timebank.test_api import problem_type

OLD = date(1950, 3, 1)


async def test_confirm_overflows_the_cap_to_the_pool_from_a_member_or_the_pool(community: Community) -> None:
    c = community
    r = await c.client.put("/settings", json={"storage_cap_minutes": 100}, headers=c.h(WORKER))
    assert r.status_code == 200
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("priority", elder=True, birth=OLD, priority=True)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 100, "elder")
    await c.grant("vol", 80, "elder")
    await c.fund_pool(200)
    _, pending = await c.serve("elder", "vol", 60)
    posting = uuid.uuid4()
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(posting)}, headers=c.h("elder"))
    assert r.status_code == 201, r.text
    # The posting shows the balance before the overflow; the 40 above the cap of 100 go to the pool.
    assert (r.json()["amount_minutes"], r.json()["credit_balance_after"]) == (60, 140)
    overflow = await c.sql(
        "SELECT id, debit_account_id, credit_account_id, amount_minutes, reason, "
        "credit_balance_after, debit_balance_after FROM tb_transfers WHERE kind = 'overflow'"
    )
    pool_before = 200 + 100 + 80 - 100 - 80  # funded 100 + 80 + 200, granted 100 + 80
    assert [tuple(o) for o in overflow] == [
        (ledger.derived_id(posting, "overflow"), c.account("vol"), c.pool_id, 40, "storage cap 100", pool_before + 40, 100)
    ]
    assert (await c.balance("vol"))["posted_minutes"] == 100
    r = await c.client.get("/members/me/passbook", headers=c.h("vol"))
    assert [(e["kind"], e["minutes"], e["balance_after"]) for e in r.json()["items"]][:2] == [
        ("overflow", -40, 100),
        ("service", 60, 140),
    ]

    # The pool pays a priority elder's care; the overflow goes back to the same (already locked) pool.
    _, pending2 = await c.serve("priority", "vol", 30)
    r = await c.client.post(f"/transfers/{pending2}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("priority"))
    assert r.status_code == 201, r.text
    assert r.json()["debit_account_id"] == str(c.pool_id) and r.json()["debit_balance_after"] == pool_before + 40 - 30
    assert (await c.balance("vol"))["posted_minutes"] == 100
    pool = (await c.client.get("/pool", headers=c.h(WORKER))).json()["pool"]["balance"]
    assert pool["posted_minutes"] == pool_before + 40  # 30 out, 30 back as overflow
    await assert_ledger_invariants(c.svc.state.sessionmaker, cap=100)


async def test_steward_confirms_and_the_event_is_exactly_the_contract(community: Community) -> None:
    c = community
    c.roles["steward-1"] = ("steward",)
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 100, "elder")
    rid, pending = await c.serve("elder", "vol", 50)
    posting = str(uuid.uuid4())
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting, "minutes": 20}, headers=c.h("steward-1"))
    assert r.status_code == 201, r.text
    assert (await c.balance("elder"))["available_minutes"] == 80
    assert (await c.client.get(f"/care-requests/{rid}", headers=c.h("elder"))).json()["status"] == "confirmed"
    assert await c.sql("SELECT first_withdrawal_at IS NOT NULL FROM tb_members WHERE member_id = 'elder'") == [(True,)]
    rows = await c.sql(
        "SELECT key, topic, source, data FROM kit_outbox WHERE type = :t AND key = :k", t=ServiceConfirmed.event_type, k=posting
    )
    assert len(rows) == 1
    key, topic, source, data = rows[0]
    assert (key, topic, source) == (posting, "timebank.events", "/services/timebank")
    # The data is what the model would have written, field for field and format for format.
    event = ServiceConfirmed.model_validate(data)
    assert event.model_dump(mode="json") == data
    assert (event.transfer_id, event.volunteer_id, event.elder_id, event.minutes, event.service_type) == (
        posting,
        "vol",
        "elder",
        20,
        "meal",
    )
    assert event.confirmed_at.isoformat() == r.json()["created_at"].replace("Z", "+00:00")


async def test_refusals_carry_their_fields_and_stay_refused(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.enrol("stranger", volunteer=True)
    await c.grant("elder", 100, "elder")
    _, pending = await c.serve("elder", "vol", 30)

    too_many = {"id": str(uuid.uuid4()), "minutes": 31}
    r = await c.client.post(f"/transfers/{pending}/confirm", json=too_many, headers=c.h("elder"))
    assert r.status_code == 422 and problem_type(r) == "timebank/minutes-exceed-pending"
    assert r.json()["pending_minutes"] == 30 and r.json()["transfer_id"] == too_many["id"]
    # The refused id is remembered: asked again it is refused again, as a replay; another body conflicts.
    r = await c.client.post(f"/transfers/{pending}/confirm", json=too_many, headers=c.h("elder"))
    assert r.status_code == 422 and problem_type(r) == "timebank/minutes-exceed-pending" and r.json()["replayed"]
    r = await c.client.post(f"/transfers/{pending}/confirm", json={**too_many, "minutes": 5}, headers=c.h("elder"))
    assert r.status_code == 409 and problem_type(r) == "timebank/transfer-id-conflict"

    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("stranger"))
    assert r.status_code == 404 and problem_type(r) == "timebank/transfer-not-found"
    r = await c.client.post(f"/transfers/{uuid.uuid4()}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
    assert r.status_code == 404 and problem_type(r) == "timebank/transfer-not-found"
    # Another community's worker does not see it either.
    other = c.stack.auth(WORKER, "community_worker", community="elsewhere")
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=other)
    assert r.status_code == 404
    # A posted (not pending) transfer cannot be confirmed.
    posting = str(uuid.uuid4())
    assert (await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting}, headers=c.h("elder"))).status_code == 201
    r = await c.client.post(f"/transfers/{posting}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h(WORKER))
    assert r.status_code == 409 and problem_type(r) == "timebank/not-pending"
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h(WORKER))
    assert r.status_code == 409 and problem_type(r) == "timebank/already-resolved"
    assert r.json()["resolution"] == "posted"
    # One event for the posting; none for the refusals and replays.
    assert await c.sql(
        "SELECT count(*) FROM kit_outbox WHERE type = :t AND data->>'volunteer_id' = 'vol'", t=ServiceConfirmed.event_type
    ) == [(1,)]
    await assert_ledger_invariants(c.svc.state.sessionmaker)
