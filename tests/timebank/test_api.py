"""The time bank through HTTP, against the real database: members, care, confirm, give, reverse."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.timebank import resolution
from services.timebank.events import CareRequestCancelled, ServiceConfirmed
from services.timebank.jobs import expiry_job
from tests.timebank.community import WORKER, Community, assert_ledger_invariants

OLD = date(1950, 3, 1)  # well over 65
YOUNG = date(1990, 3, 1)
PROBLEM = "urn:community:problem:"


def problem_type(r: object) -> str:
    body = r.json()  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    return str(body["type"]).removeprefix(PROBLEM)


async def test_enrol_verify_and_privacy(community: Community) -> None:
    c = community
    me = await c.enrol("res-a", volunteer=True)
    assert me["is_volunteer"] and not me["is_elder"] and me["balance"]["posted_minutes"] == 0
    # Enrolling again adds the role instead of failing.
    r = await c.client.post("/members", json={"elder": True}, headers=c.h("res-a"))
    assert r.status_code == 200 and r.json()["is_elder"] and r.json()["is_volunteer"]
    r = await c.client.post("/members", json={}, headers=c.h("res-a"))
    assert r.status_code == 422
    # Only a worker enrols someone else.
    r = await c.client.post("/members", json={"member_id": "res-b", "elder": True}, headers=c.h("res-a"))
    assert r.status_code == 403
    r = await c.client.post("/members", json={"member_id": "res-b", "elder": True}, headers=c.h(WORKER))
    assert r.status_code == 201
    # Another resident's membership is a 404, not a 403; the worker sees it.
    r = await c.client.get("/members/res-b", headers=c.h("res-a"))
    assert r.status_code == 404
    assert (await c.client.get("/members/res-b", headers=c.h(WORKER))).status_code == 200
    # Age verification is a worker's act.
    r = await c.client.post("/members/res-b/verification", json={"birth_date": "1950-01-01"}, headers=c.h("res-a"))
    assert r.status_code == 403
    r = await c.client.post("/members/res-b/verification", json={"birth_date": "1950-01-01"}, headers=c.h(WORKER))
    assert r.status_code == 200 and r.json()["birth_date"] == "1950-01-01"
    # Another community sees nothing of this one.
    other = c.stack.auth("res-a", "community_worker", community="elsewhere")
    assert (await c.client.get("/members/res-b", headers=other)).status_code == 404


async def test_service_is_logged_confirmed_for_fewer_minutes_and_published(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.enrol("son", volunteer=True)
    await c.enrol("stranger", volunteer=True)
    await c.relatives("elder", "son")
    await c.grant("elder", 300, "elder")
    rid, pending = await c.serve("elder", "vol", 60)
    # The pending debit counts against the elder at once.
    assert await c.balance("elder") == {
        "posted_minutes": 300,
        "available_minutes": 240,
        "pending_in_minutes": 0,
        "pending_out_minutes": 60,
    }
    assert (await c.balance("vol"))["pending_in_minutes"] == 60
    # The volunteer who served may not confirm; a stranger does not even see it.
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("vol"))
    assert r.status_code == 403 and problem_type(r) == "timebank/not-allowed-to-resolve"
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("stranger"))
    assert r.status_code == 404
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4()), "minutes": 61}, headers=c.h("son"))
    assert r.status_code == 422 and problem_type(r) == "timebank/minutes-exceed-pending"
    # A verified relative confirms on the elder's behalf, for fewer minutes.
    posting = str(uuid.uuid4())
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting, "minutes": 45}, headers=c.h("son"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["phase"], body["amount_minutes"], body["pending_id"]) == ("posted", 45, pending)
    assert (body["debit_balance_after"], body["credit_balance_after"]) == (255, 45)
    assert await c.balance("elder") == {
        "posted_minutes": 255,
        "available_minutes": 255,
        "pending_in_minutes": 0,
        "pending_out_minutes": 0,
    }
    assert (await c.balance("vol"))["posted_minutes"] == 45
    # Posted once: a second confirmation with another id is refused; the same one replays.
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
    assert r.status_code == 409 and problem_type(r) == "timebank/already-resolved"
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting, "minutes": 45}, headers=c.h("son"))
    assert r.status_code == 201 and r.json() == body
    r = await c.client.get(f"/care-requests/{rid}", headers=c.h("elder"))
    assert r.json()["status"] == "confirmed"
    events = await c.sql(
        "SELECT key, data FROM kit_outbox WHERE type = 'timebank.service.confirmed.v1' "
        "AND data->>'elder_id' = 'elder' AND data->>'volunteer_id' = 'vol'"
    )
    assert len(events) == 1  # the replay published nothing more
    key, data = events[0]
    assert key == posting
    assert {k: data[k] for k in ("transfer_id", "community", "volunteer_id", "elder_id", "minutes", "service_type")} == {
        "transfer_id": posting,
        "community": c.name,
        "volunteer_id": "vol",
        "elder_id": "elder",
        "minutes": 45,
        "service_type": "meal",
    }
    # The passbook shows every posted transfer with the balance after it, newest first, paginated.
    r = await c.client.get("/members/me/passbook", params={"limit": 1}, headers=c.h("elder"))
    page = r.json()
    assert [(e["minutes"], e["balance_after"]) for e in page["items"]] == [(-45, 255)]
    r = await c.client.get("/members/me/passbook", params={"limit": 1, "cursor": page["next_cursor"]}, headers=c.h("elder"))
    assert [(e["minutes"], e["balance_after"], e["kind"]) for e in r.json()["items"]] == [(300, 300, "service")]
    assert r.json()["next_cursor"] is None
    assert (await c.client.get("/members/elder/passbook", headers=c.h("stranger"))).status_code == 404
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_dispute_voids_and_expiry_voids(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 200, "elder")
    rid, pending = await c.serve("elder", "vol", 30)
    r = await c.client.post(
        f"/transfers/{pending}/dispute", json={"id": str(uuid.uuid4()), "reason": "没来"}, headers=c.h("elder")
    )
    assert r.status_code == 201 and r.json()["phase"] == "voided"
    assert await c.balance("elder") == {
        "posted_minutes": 200,
        "available_minutes": 200,
        "pending_in_minutes": 0,
        "pending_out_minutes": 0,
    }
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h(WORKER))
    assert r.status_code == 409 and problem_type(r) == "timebank/already-resolved"
    assert (await c.client.get(f"/care-requests/{rid}", headers=c.h("elder"))).json()["status"] == "disputed"
    r = await c.client.get("/pending-transfers", params={"state": "disputed"}, headers=c.h(WORKER))
    # The staff's list says why it was disputed: the reason the elder gave, stored with the void.
    assert [(t["id"], t["resolution"], t["resolution_reason"]) for t in r.json()["items"]] == [(pending, "voided", "没来")]

    rid2, pending2 = await c.serve("elder", "vol", 40)
    r = await c.client.get("/pending-transfers", headers=c.h(WORKER))
    assert [(t["id"], t["resolution_reason"]) for t in r.json()["items"]] == [(pending2, None)]
    async with c.svc.state.sessionmaker() as session:
        assert await resolution.expire_pending(session, now=datetime.now(UTC) + timedelta(days=2)) == 0
        assert await resolution.expire_pending(session, now=datetime.now(UTC) + timedelta(days=4)) == 1
        assert await resolution.expire_pending(session, now=datetime.now(UTC) + timedelta(days=4)) == 0
    assert (await c.balance("elder"))["available_minutes"] == 200
    assert (await c.balance("vol"))["pending_in_minutes"] == 0
    assert (await c.client.get(f"/care-requests/{rid2}", headers=c.h("vol"))).json()["status"] == "expired"
    r = await c.client.get("/pending-transfers", params={"state": "expired"}, headers=c.h(WORKER))
    assert [(t["id"], t["resolution_reason"]) for t in r.json()["items"]] == [(pending2, "confirmation timed out")]
    r = await c.client.post(f"/transfers/{pending2}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
    assert r.status_code == 409
    # A backlog larger than the job's batch (after an outage, say) clears in one run.
    pendings = [(await c.serve("elder", "vol", 10))[1] for _ in range(5)]
    await c.sql(
        "UPDATE tb_transfers SET timeout_at = now() - interval '1 minute' WHERE id = ANY(:ids) RETURNING id",
        ids=[uuid.UUID(p) for p in pendings],
    )
    await expiry_job(every_s=30, batch=2).run(c.svc.state)  # three steps: 2, 2, 1
    assert (await c.balance("elder"))["pending_out_minutes"] == 0
    resolved = await c.sql("SELECT resolution FROM tb_transfers WHERE id = ANY(:ids)", ids=[uuid.UUID(p) for p in pendings])
    assert [r.resolution for r in resolved] == ["expired"] * 5
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_priority_elder_is_served_from_the_pool(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=date(1940, 1, 1), priority=True)
    await c.enrol("vol", volunteer=True)
    await c.fund_pool(100)
    _, pending = await c.serve("elder", "vol", 50)
    r = await c.client.get("/pool", headers=c.h(WORKER))
    assert r.json()["pool"]["balance"] == {
        "posted_minutes": 100,
        "available_minutes": 50,
        "pending_in_minutes": 0,
        "pending_out_minutes": 50,
    }
    assert r.json()["open_pending_count"] == 1
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
    assert r.status_code == 201
    assert (await c.client.get("/pool", headers=c.h(WORKER))).json()["pool"]["balance"]["posted_minutes"] == 50
    assert (await c.balance("elder"))["posted_minutes"] == 0
    assert (await c.client.get("/pool", headers=c.h("vol"))).status_code == 403


async def test_an_elder_served_from_the_pool_reads_the_pending_transfer_and_its_posting(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=date(1940, 1, 1), priority=True)
    await c.enrol("vol", volunteer=True)
    await c.enrol("son", volunteer=True)
    await c.enrol("stranger", volunteer=True)
    await c.relatives("elder", "son")
    await c.fund_pool(100)
    _, pending = await c.serve("elder", "vol", 50)
    posting = str(uuid.uuid4())
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting}, headers=c.h("elder"))
    assert r.status_code == 201, r.text
    for transfer_id in (pending, posting):
        for reader in ("elder", "son", "vol"):
            r = await c.client.get(f"/transfers/{transfer_id}", headers=c.h(reader))
            assert r.status_code == 200, (reader, r.text)
            assert r.json()["debit_account_id"] == str(c.pool_id)
        r = await c.client.get(f"/transfers/{transfer_id}", headers=c.h("stranger"))
        assert r.status_code == 404


async def test_idempotent_ids_replay_conflict_and_failures_stay_failed(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 30, "elder")
    tid = str(uuid.uuid4())
    r1 = await c.client.post("/transfers/spend", json={"id": tid, "minutes": 20, "service_type": "meal"}, headers=c.h("elder"))
    r2 = await c.client.post("/transfers/spend", json={"id": tid, "minutes": 20, "service_type": "meal"}, headers=c.h("elder"))
    assert r1.status_code == r2.status_code == 201 and r1.json() == r2.json()
    assert (await c.balance("elder"))["posted_minutes"] == 10
    r = await c.client.post("/transfers/spend", json={"id": tid, "minutes": 5, "service_type": "meal"}, headers=c.h("elder"))
    assert r.status_code == 409 and problem_type(r) == "timebank/transfer-id-conflict"
    # A refused id stays refused, even once the balance would cover it.
    failed = str(uuid.uuid4())
    body = {"id": failed, "minutes": 25, "service_type": "meal"}
    r = await c.client.post("/transfers/spend", json=body, headers=c.h("elder"))
    assert r.status_code == 409 and problem_type(r) == "timebank/insufficient-balance"
    await c.grant("elder", 100, "elder")
    r = await c.client.post("/transfers/spend", json=body, headers=c.h("elder"))
    assert r.status_code == 409 and problem_type(r) == "timebank/insufficient-balance" and r.json()["replayed"]
    r = await c.client.post("/transfers/spend", json={**body, "minutes": 1}, headers=c.h("elder"))
    assert r.status_code == 409 and problem_type(r) == "timebank/transfer-id-conflict"
    assert (await c.balance("elder"))["posted_minutes"] == 110
    # A client id cannot be reused by someone else either.
    r = await c.client.post("/transfers/donation", json={"id": tid, "minutes": 1}, headers=c.h("vol"))
    assert r.status_code == 409 and problem_type(r) == "timebank/transfer-id-conflict"
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_bad_input_is_a_problem_and_writes_nothing(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("young", volunteer=True, elder=True, birth=YOUNG)
    await c.enrol("unverified", elder=True)
    await c.enrol("vol", volunteer=True)
    await c.grant("vol", 100, "elder")
    await c.grant("young", 100, "elder")
    before = await c.sql("SELECT count(*) FROM tb_transfers")

    async def refused(path: str, body: dict[str, object], who: str, status: int, slug: str) -> None:
        r = await c.client.post(path, json=body, headers=c.h(who))
        assert r.status_code == status, r.text
        assert problem_type(r) == slug

    new = lambda: str(uuid.uuid4())  # noqa: E731
    await refused("/transfers/donation", {"id": new(), "minutes": 0}, "vol", 422, "validation-error")
    await refused("/transfers/donation", {"id": new(), "minutes": -5}, "vol", 422, "validation-error")
    await refused("/transfers/donation", {"id": new(), "minutes": 1.5}, "vol", 422, "validation-error")
    await refused(
        "/transfers/gift", {"id": new(), "to_member_id": "elder", "minutes": 10}, "vol", 409, "timebank/not-a-verified-relative"
    )
    await refused("/transfers/gift", {"id": new(), "to_member_id": "nobody", "minutes": 10}, "vol", 404, "timebank/not-a-member")
    await refused(
        "/transfers/spend", {"id": new(), "minutes": 10, "service_type": "meal"}, "young", 409, "timebank/below-withdrawal-age"
    )
    await refused(
        "/transfers/spend", {"id": new(), "minutes": 10, "service_type": "meal"}, "unverified", 409, "timebank/age-not-verified"
    )
    await refused(
        "/transfers/batch",
        {
            "transfers": [
                {"id": new(), "kind": "funding", "minutes": 5, "debit_account_id": new(), "credit_account_id": str(c.pool_id)}
            ]
        },
        WORKER,
        409,
        "timebank/linked-transfer-failed",
    )
    # Check-out before check-in.
    rid = await c.care_request("elder")
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await c.accept(rid, "vol", at=t0)
    r = await c.client.post(f"/care-requests/{rid}/check-in", json={"at": t0.isoformat()}, headers=c.h("vol"))
    assert r.status_code == 200
    # A retried check-in answers the same request, and the first check-in's time stands.
    r = await c.client.post(f"/care-requests/{rid}/check-in", json={}, headers=c.h("vol"))
    assert r.status_code == 200 and datetime.fromisoformat(r.json()["checked_in_at"]) == t0
    await refused(
        f"/care-requests/{rid}/check-out",
        {"transfer_id": new(), "at": (t0 - timedelta(minutes=5)).isoformat()},
        "vol",
        422,
        "timebank/checkout-before-checkin",
    )
    await refused(
        f"/care-requests/{rid}/check-out", {"transfer_id": new(), "at": "2020-01-01T00:00:00"}, "vol", 422, "validation-error"
    )  # a time without an offset
    await refused(
        f"/care-requests/{rid}/check-out",
        {"transfer_id": new(), "at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        "vol",
        422,
        "timebank/time-in-future",
    )
    # The young member's own care request is paid by the young member: the age rule bites at check-out.
    rid2 = await c.care_request("young")
    await c.accept(rid2, "vol", at=t0)
    r = await c.client.post(f"/care-requests/{rid2}/check-in", json={"at": t0.isoformat()}, headers=c.h("vol"))
    await refused(f"/care-requests/{rid2}/check-out", {"transfer_id": new()}, "vol", 409, "timebank/below-withdrawal-age")
    assert await c.sql("SELECT count(*) FROM tb_transfers") == before
    assert (await c.balance("vol"))["posted_minutes"] == 100
    assert (await c.client.get(f"/care-requests/{rid2}", headers=c.h("vol"))).json()["status"] == "in_progress"
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_a_check_in_backdated_before_the_acceptance_is_refused_and_nothing_logged(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=date(1940, 1, 1), priority=True)
    await c.enrol("vol", volunteer=True)
    await c.fund_pool(100)
    rid = await c.care_request("elder")
    await c.accept(rid, "vol")
    backdated = datetime.now(UTC) - timedelta(minutes=61)
    r = await c.client.post(f"/care-requests/{rid}/check-in", json={"at": backdated.isoformat()}, headers=c.h("vol"))
    assert r.status_code == 422 and problem_type(r) == "timebank/check-in-before-acceptance", r.text
    assert r.json()["field"] == "at"
    ahead = datetime.now(UTC) + timedelta(minutes=10)
    r = await c.client.post(f"/care-requests/{rid}/check-in", json={"at": ahead.isoformat()}, headers=c.h("vol"))
    assert r.status_code == 422 and problem_type(r) == "timebank/time-in-future" and r.json()["field"] == "at"
    request = (await c.client.get(f"/care-requests/{rid}", headers=c.h("vol"))).json()
    assert (request["status"], request["checked_in_at"]) == ("accepted", None)
    # Checked in now, a check-out an hour on is in the future: no minutes are logged ahead of time.
    assert (await c.client.post(f"/care-requests/{rid}/check-in", json={}, headers=c.h("vol"))).status_code == 200
    later = datetime.now(UTC) + timedelta(minutes=61)
    r = await c.client.post(
        f"/care-requests/{rid}/check-out", json={"transfer_id": str(uuid.uuid4()), "at": later.isoformat()}, headers=c.h("vol")
    )
    assert r.status_code == 422 and problem_type(r) == "timebank/time-in-future" and r.json()["field"] == "at"
    assert await c.sql("SELECT count(*) FROM tb_transfers WHERE kind = 'service'") == [(0,)]


async def test_gift_to_verified_relative_and_storage_cap_overflow(community: Community) -> None:
    c = community
    r = await c.client.put(
        "/settings",
        json={
            "withdrawal_age": 65,
            "storage_cap_minutes": 120,
            "min_balance_before_first_withdrawal": 0,
            "confirmation_timeout_minutes": 60,
        },
        headers=c.h(WORKER),
    )
    assert r.status_code == 200 and r.json()["storage_cap_minutes"] == 120
    assert (await c.client.put("/settings", json={"withdrawal_age": 62}, headers=c.h(WORKER))).status_code == 422
    assert (await c.client.put("/settings", json={}, headers=c.h("someone"))).status_code == 403
    await c.enrol("mother", elder=True, birth=OLD)
    await c.enrol("daughter", volunteer=True)
    await c.relatives("daughter", "mother")
    await c.grant("daughter", 100, "mother")
    await c.grant("mother", 100, "mother")
    r = await c.client.post(
        "/transfers/gift", json={"id": str(uuid.uuid4()), "to_member_id": "mother", "minutes": 50}, headers=c.h("daughter")
    )
    assert r.status_code == 201, r.text
    # 150 would pass the cap of 120: the 30 over go to the pool in the same transaction.
    assert (await c.balance("mother"))["posted_minutes"] == 120
    assert (await c.balance("daughter"))["posted_minutes"] == 50
    overflow = await c.sql("SELECT amount_minutes, credit_account_id FROM tb_transfers WHERE kind = 'overflow'")
    assert [(o[0], o[1]) for o in overflow] == [(30, c.pool_id)]
    # The relative link works both ways.
    r = await c.client.post(
        "/transfers/gift", json={"id": str(uuid.uuid4()), "to_member_id": "daughter", "minutes": 10}, headers=c.h("mother")
    )
    assert r.status_code == 201
    await assert_ledger_invariants(c.svc.state.sessionmaker, cap=120)


async def test_first_withdrawal_minimum(community: Community) -> None:
    c = community
    r = await c.client.put("/settings", json={"min_balance_before_first_withdrawal": 100}, headers=c.h(WORKER))
    assert r.status_code == 200
    await c.enrol("elder", elder=True, birth=OLD)
    await c.grant("elder", 90, "elder")
    r = await c.client.post(
        "/transfers/spend", json={"id": str(uuid.uuid4()), "minutes": 10, "service_type": "meal"}, headers=c.h("elder")
    )
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/below-first-withdrawal-minimum")
    await c.grant("elder", 10, "elder")
    for minutes in (60, 30):  # the minimum holds before the first withdrawal only
        r = await c.client.post(
            "/transfers/spend", json={"id": str(uuid.uuid4()), "minutes": minutes, "service_type": "meal"}, headers=c.h("elder")
        )
        assert r.status_code == 201, r.text
    assert (await c.balance("elder"))["posted_minutes"] == 10


async def test_reversal_points_at_the_corrected_transfer(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 100, "elder")
    _, pending = await c.serve("elder", "vol", 40)
    posting = str(uuid.uuid4())
    assert (await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting}, headers=c.h("elder"))).status_code == 201
    rev = str(uuid.uuid4())
    r = await c.client.post(f"/transfers/{posting}/reversal", json={"id": rev, "reason": "登记错误"}, headers=c.h("vol"))
    assert r.status_code == 403
    r = await c.client.post(f"/transfers/{posting}/reversal", json={"id": rev, "reason": "登记错误"}, headers=c.h(WORKER))
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["reverses_id"], r.json()["amount_minutes"]) == ("reversal", posting, 40)
    assert (await c.balance("elder"))["posted_minutes"] == 100
    assert (await c.balance("vol"))["posted_minutes"] == 0
    r = await c.client.post(
        f"/transfers/{posting}/reversal", json={"id": str(uuid.uuid4()), "reason": "again"}, headers=c.h(WORKER)
    )
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/already-reversed")
    r = await c.client.post(f"/transfers/{rev}/reversal", json={"id": str(uuid.uuid4()), "reason": "undo"}, headers=c.h(WORKER))
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/not-reversible")
    r = await c.client.post(f"/transfers/{pending}/reversal", json={"id": str(uuid.uuid4()), "reason": "x"}, headers=c.h(WORKER))
    assert r.status_code == 409
    events = await c.sql("SELECT key, data FROM kit_outbox WHERE type = 'timebank.transfer.reversed.v1'")
    assert [(k, d["transfer_id"], d["reverses_transfer_id"], d["volunteer_id"], d["minutes"]) for k, d in events] == [
        (posting, rev, posting, "vol", 40)
    ]
    # The original stays as it was: nothing is edited.
    r = await c.client.get(f"/transfers/{posting}", headers=c.h("vol"))
    assert r.status_code == 200 and r.json()["amount_minutes"] == 40
    assert (await c.client.get(f"/transfers/{posting}", headers=c.h("someone"))).status_code == 404
    # Summary counts the service net of its reversal.
    r = await c.client.get("/summary", headers=c.h("vol"))
    assert r.status_code == 200 and r.json()["minutes_served"] == 100  # the grant; the reversed 40 drops out
    assert (await c.client.get("/summary", params={"month": "2025-13"}, headers=c.h("vol"))).status_code == 422
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_batch_is_all_or_none(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    vols = [f"v{i}" for i in range(10)]
    for v in vols:
        await c.enrol(v, volunteer=True)
    await c.fund_pool(1000)
    items = [
        {
            "id": str(uuid.uuid4()),
            "kind": "service",
            "debit_account_id": str(c.pool_id),
            "credit_account_id": str(c.account(vols[i % 10])),
            "minutes": 1,
            "service_type": "cleaning",
            "elder_id": "elder",
        }
        for i in range(1000)
    ]
    r = await c.client.post("/transfers/batch", json={"transfers": items}, headers=c.h(WORKER))
    assert r.status_code == 201, r.text
    assert len(r.json()["transfers"]) == 1000
    assert [(await c.balance(v))["posted_minutes"] for v in vols] == [100] * 10
    again = await c.client.post("/transfers/batch", json={"transfers": items}, headers=c.h(WORKER))
    assert again.status_code == 201 and again.json() == r.json()
    # Pool empty now: one donation then two services of which the second overdraws: none applied.
    bad = [
        {
            "id": str(uuid.uuid4()),
            "kind": "donation",
            "debit_account_id": str(c.account("v0")),
            "credit_account_id": str(c.pool_id),
            "minutes": 30,
        },
        {
            "id": str(uuid.uuid4()),
            "kind": "service",
            "debit_account_id": str(c.pool_id),
            "credit_account_id": str(c.account("v1")),
            "minutes": 20,
            "service_type": "meal",
            "elder_id": "elder",
        },
        {
            "id": str(uuid.uuid4()),
            "kind": "service",
            "debit_account_id": str(c.pool_id),
            "credit_account_id": str(c.account("v2")),
            "minutes": 20,
            "service_type": "meal",
            "elder_id": "elder",
        },
    ]
    r = await c.client.post("/transfers/batch", json={"transfers": bad}, headers=c.h(WORKER))
    assert r.status_code == 409 and r.json()["cause"] == "timebank/insufficient-balance"
    assert [(await c.balance(v))["posted_minutes"] for v in ("v0", "v1", "v2")] == [100, 100, 100]
    r = await c.client.post("/transfers/batch", json={"transfers": bad[:2]}, headers=c.h(WORKER))
    assert r.status_code == 409  # those ids failed, and stay failed
    r = await c.client.post("/transfers/batch", json={"transfers": items[:1]}, headers=c.h("v0"))
    assert r.status_code == 403
    events = await c.sql("SELECT key, data FROM kit_outbox WHERE type = 'timebank.service.confirmed.v1'")
    assert len(events) == 1000
    key, data = events[0]
    confirmed = ServiceConfirmed.model_validate(data)  # the contract, as consumers will read it
    assert (key, confirmed.elder_id, confirmed.minutes, confirmed.service_type) == (confirmed.transfer_id, "elder", 1, "cleaning")
    assert confirmed.volunteer_id in vols
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_care_requests_on_behalf_and_listing(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("son", volunteer=True)
    await c.enrol("vol", volunteer=True)
    await c.relatives("son", "elder")
    c.roles["steward-1"] = ("steward",)
    rid1 = await c.care_request("elder", by="son")
    rid2 = await c.care_request("elder", by="steward-1")
    r = await c.client.post(
        "/care-requests",
        json={
            "elder_id": "elder",
            "service_type": "meal",
            "starts_at": datetime.now(UTC).isoformat(),
            "place": "x",
            "minutes_estimated": 30,
        },
        headers=c.h("vol"),
    )
    assert r.status_code == 404
    r = await c.client.post(
        "/care-requests",
        json={"service_type": "meal", "starts_at": datetime.now(UTC).isoformat(), "place": "x", "minutes_estimated": 30},
        headers=c.h("vol"),
    )
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/not-an-elder")
    r = await c.client.get("/care-requests", params={"limit": 1}, headers=c.h("vol"))
    first = r.json()
    r = await c.client.get("/care-requests", params={"limit": 1, "cursor": first["next_cursor"]}, headers=c.h("vol"))
    assert [first["items"][0]["id"], r.json()["items"][0]["id"]] == [rid1, rid2]
    # An elder cannot serve their own request; the second volunteer finds it taken.
    await c.enrol("elder", volunteer=True)
    r = await c.client.post(f"/care-requests/{rid1}/accept", headers=c.h("elder"))
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/cannot-serve-self")
    assert (await c.client.post(f"/care-requests/{rid1}/accept", headers=c.h("vol"))).status_code == 200
    # The winner's phone retries: the accept stands, it is not "taken by someone else".
    r = await c.client.post(f"/care-requests/{rid1}/accept", headers=c.h("vol"))
    assert r.status_code == 200 and (r.json()["volunteer_id"], r.json()["status"]) == ("vol", "accepted")
    r = await c.client.post(f"/care-requests/{rid1}/accept", headers=c.h("son"))
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/care-request-taken")
    assert r.json()["status"] == 409 and r.json()["care_status"] == "accepted"
    r = await c.client.post(f"/care-requests/{rid1}/check-in", json={}, headers=c.h("son"))
    assert r.status_code == 403  # the requester sees the request but does not serve it
    r = await c.client.post(f"/care-requests/{rid1}/check-in", json={}, headers=c.h("unrelated"))
    assert r.status_code == 404
    r = await c.client.get("/care-requests", headers=c.h("vol"))
    assert [i["id"] for i in r.json()["items"]] == [rid2]
    r = await c.client.get("/care-requests", params={"status": "accepted"}, headers=c.h("vol"))
    assert [i["id"] for i in r.json()["items"]] == [rid1]
    r = await c.client.get("/care-requests", params={"status": "accepted"}, headers=c.h("son"))
    assert [i["id"] for i in r.json()["items"]] == [rid1]  # son asked for it on his mother's behalf
    await c.enrol("daughter", volunteer=True)
    await c.relatives("daughter", "elder")
    r = await c.client.get("/care-requests", params={"status": "accepted"}, headers=c.h("daughter"))
    assert [i["id"] for i in r.json()["items"]] == [rid1]  # a verified relative follows her mother's care
    r = await c.client.get("/care-requests", params={"status": "accepted"}, headers=c.h("unrelated"))
    assert r.json()["items"] == []
    # Several states at once, from one phone request: the volunteer's tasks, and open ones beside them.
    assert (await c.client.post(f"/care-requests/{rid1}/check-in", json={}, headers=c.h("vol"))).status_code == 200
    r = await c.client.get("/care-requests", params=[("status", "accepted"), ("status", "in_progress")], headers=c.h("vol"))
    assert [(i["id"], i["status"]) for i in r.json()["items"]] == [(rid1, "in_progress")]
    r = await c.client.get("/care-requests", params=[("status", "open"), ("status", "in_progress")], headers=c.h("vol"))
    assert [i["id"] for i in r.json()["items"]] == [rid1, rid2]
    r = await c.client.get("/care-requests", params=[("status", "open"), ("status", "in_progress")], headers=c.h("unrelated"))
    assert [i["id"] for i in r.json()["items"]] == [rid2]  # others' tasks stay theirs
    r = await c.client.get("/care-requests", params={"status": "wandering"}, headers=c.h("vol"))
    assert r.status_code == 422 and problem_type(r) == "validation-error"


async def test_idempotency_key_on_care_request(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True)
    body = {"service_type": "bathing", "starts_at": datetime.now(UTC).isoformat(), "place": "家中", "minutes_estimated": 45}
    headers = {**c.h("elder"), "Idempotency-Key": "req-1"}
    r1 = await c.client.post("/care-requests", json=body, headers=headers)
    r2 = await c.client.post("/care-requests", json=body, headers=headers)
    assert r1.status_code == r2.status_code == 201 and r1.json()["id"] == r2.json()["id"]
    assert await c.sql("SELECT count(*) FROM tb_care_requests") == [(1,)]


async def test_openapi_documents_problems(community: Community) -> None:
    r = await community.client.get("/openapi.json")
    spec = r.json()
    confirm = spec["paths"]["/transfers/{pending_id}/confirm"]["post"]
    assert confirm["operationId"] == "transfers-confirm"
    assert "timebank/already-resolved" in confirm["responses"]["409"]["description"]


async def test_cancel_before_the_service_starts(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    rid = await c.care_request("elder")
    assert (await c.client.post(f"/care-requests/{rid}/accept", headers=c.h("vol"))).status_code == 200
    r = await c.client.post(f"/care-requests/{rid}/cancel", headers=c.h("vol"))
    assert r.status_code == 403
    r = await c.client.post(f"/care-requests/{rid}/cancel", headers=c.h("nobody"))
    assert r.status_code == 404
    assert await cancelled_events(c) == []  # refused cancellations tell nobody anything
    r = await c.client.post(f"/care-requests/{rid}/cancel", headers=c.h("elder"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await c.client.post(f"/care-requests/{rid}/check-in", json={}, headers=c.h("vol"))
    assert r.status_code == 409 and r.json()["type"].endswith("timebank/wrong-care-request-state")
    # A retried cancel answers the cancelled request; the volunteer is told once.
    r = await c.client.post(f"/care-requests/{rid}/cancel", headers=c.h("elder"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # The volunteer who had accepted is named, so a notification service can tell them not to come.
    [(key, data)] = await cancelled_events(c)
    event = CareRequestCancelled.model_validate(data)
    assert key == event.request_id == str(rid)
    assert (event.community, event.elder_id, event.volunteer_id, event.cancelled_by) == (c.name, "elder", "vol", "elder")

    # An open request cancelled by a worker: nobody had accepted it.
    rid = await c.care_request("elder")
    r = await c.client.post(f"/care-requests/{rid}/cancel", headers=c.h(WORKER))
    assert r.status_code == 200, r.text
    assert [(d["request_id"], d["volunteer_id"], d["cancelled_by"]) for _, d in await cancelled_events(c)][1:] == [
        (str(rid), None, WORKER)
    ]


async def cancelled_events(c: Community) -> list[Any]:
    return await c.sql("SELECT key, data FROM kit_outbox WHERE type = 'timebank.care_request.cancelled.v1' ORDER BY id")


async def test_patch_settings_changes_only_what_is_given(community: Community) -> None:
    c = community
    r = await c.client.put(
        "/settings", json={"withdrawal_age": 65, "hours_expire": True, "hours_valid_months": 24}, headers=c.h(WORKER)
    )
    assert r.status_code == 200, r.text
    r = await c.client.patch("/settings", json={"storage_cap_minutes": 6_000}, headers=c.h(WORKER))
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["storage_cap_minutes"], got["withdrawal_age"], got["hours_expire"], got["hours_valid_months"]) == (
        6_000,
        65,
        True,
        24,
    )
    # A null, an unknown setting or a value out of range is refused and changes nothing.
    for body in ({"hours_valid_months": None}, {"hours_valid": 12}, {"withdrawal_age": 62}):
        r = await c.client.patch("/settings", json=body, headers=c.h(WORKER))
        assert r.status_code == 422 and problem_type(r) == "validation-error", (body, r.text)
    r = await c.client.patch("/settings", json={"withdrawal_age": 60}, headers=c.h("res-a"))
    assert r.status_code == 403 and problem_type(r) == "forbidden"
    assert (await c.client.get("/settings", headers=c.h("res-a"))).json() == got
    # PUT still replaces: what it leaves out goes back to the default.
    r = await c.client.put("/settings", json={"withdrawal_age": 65}, headers=c.h(WORKER))
    assert r.json()["hours_valid_months"] == 36 and r.json()["storage_cap_minutes"] == 90_000


async def test_concurrent_patches_of_different_settings_all_stay(community: Community) -> None:
    """Two workers editing different settings at once: a read-modify-write would lose one of them."""
    c = community
    changes: list[dict[str, Any]] = [
        {"storage_cap_minutes": 5_000},
        {"withdrawal_age": 65},
        {"hours_expire": True},
        {"hours_valid_months": 12},
        {"confirmation_timeout_minutes": 90},
        {"min_balance_before_first_withdrawal": 30},
    ]
    for _ in range(3):
        rs = await asyncio.gather(*(c.client.patch("/settings", json=ch, headers=c.h(WORKER)) for ch in changes))
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    got = (await c.client.get("/settings", headers=c.h(WORKER))).json()
    for ch in changes:
        assert ch.items() <= got.items(), (ch, got)
