"""Scenario 2: care in the time bank earns governance points; a correction claws them back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from services.timebank.models import CARE
from tests.e2e.conftest import Community, Person, wait_until


async def points_of(community: Community, person: Person) -> dict[str, Any]:
    result: dict[str, Any] = await community.call("GET", "/api/governance/me/points", person.auth)
    return result


async def test_confirmed_care_grants_points_and_a_reversal_claws_them_back(community: Community) -> None:
    elder = await community.resident("王阿婆", "elder")
    volunteer = await community.resident("陈志愿", "volunteer")
    worker = await community.staff("community_worker")

    # Governance: a funded budget and the earning rule for confirmed care, 10 points per full hour.
    await community.call("POST", "/api/governance/budget/fundings", worker.auth, {"points": 1000})
    rule = await community.call(
        "POST",
        "/api/governance/rules",
        worker.auth,
        {
            "code": "care-hours",
            "name": "时间银行服务",
            "trigger": "timebank.service.confirmed.v1",
            "points": 10,
            "per_hour": True,
        },
        expected=(201,),
    )
    assert rule["trigger"] == "timebank.service.confirmed.v1"

    # Time bank: both enrol themselves; a worker verifies the elder as a priority elder (paid from the
    # pool, 公益池) and funds the pool.
    await community.call("POST", "/api/timebank/members", elder.auth, {"elder": True}, expected=(201,))
    await community.call("POST", "/api/timebank/members", volunteer.auth, {"volunteer": True}, expected=(201,))
    await community.call(
        "POST",
        f"/api/timebank/members/{elder.id}/verification",
        worker.auth,
        {"birth_date": "1944-05-06", "priority_elder": True},
    )
    await community.call(
        "POST",
        "/api/timebank/transfers/funding",
        worker.auth,
        {"id": str(uuid.uuid4()), "minutes": 600, "reason": "街道拨付"},
        expected=(201,),
    )

    # The elder asks, the volunteer accepts, checks in and out (90 minutes served).
    now = datetime.now(UTC).replace(microsecond=0)
    request = await community.call(
        "POST",
        "/api/timebank/care-requests",
        {**elder.auth, "Idempotency-Key": f"care-{uuid.uuid4()}"},
        {
            "service_type": "companionship",
            "starts_at": (now - timedelta(hours=2)).isoformat(),
            "place": "1幢101",
            "minutes_estimated": 90,
        },
        expected=(201,),
    )
    assert (request["elder_id"], request["status"]) == (elder.id, "open")
    rid = request["id"]
    accepted = await community.call("POST", f"/api/timebank/care-requests/{rid}/accept", volunteer.auth)
    assert (accepted["status"], accepted["volunteer_id"]) == ("accepted", volunteer.id)
    # As if accepted 90 minutes ago: a check-in is never before the acceptance.
    async with community.platform.services["timebank"].state.sessionmaker() as session, session.begin():
        await session.execute(update(CARE).where(CARE.c.id == uuid.UUID(rid)).values(accepted_at=now - timedelta(minutes=90)))
    await community.call(
        "POST", f"/api/timebank/care-requests/{rid}/check-in", volunteer.auth, {"at": (now - timedelta(minutes=90)).isoformat()}
    )
    pending_id = str(uuid.uuid4())
    pending = await community.call(
        "POST",
        f"/api/timebank/care-requests/{rid}/check-out",
        volunteer.auth,
        {"transfer_id": pending_id, "at": now.isoformat()},
        expected=(201,),
    )
    assert (pending["phase"], pending["amount_minutes"]) == ("pending", 90)
    # No points for hours that are only logged.
    assert (await points_of(community, volunteer))["balance"] == 0

    # The elder confirms 75 of the 90 minutes: 75 min x 10 points/h = 12.5, rounded down to 12.
    posted_id = str(uuid.uuid4())
    posted = await community.call(
        "POST", f"/api/timebank/transfers/{pending_id}/confirm", elder.auth, {"id": posted_id, "minutes": 75}, expected=(201,)
    )
    assert (posted["phase"], posted["amount_minutes"]) == ("posted", 75)

    async def granted() -> bool:
        return bool((await points_of(community, volunteer))["balance"] == 12)

    await wait_until(granted, what="governance granting points for the confirmed service")
    statement = await community.call("GET", "/api/governance/me/statement", volunteer.auth)
    assert [(e["kind"], e["delta"], e["balance_after"]) for e in statement["items"]] == [("grant", 12, 12)]
    passbook = await community.call("GET", "/api/timebank/members/me/passbook", volunteer.auth)
    assert [(e["kind"], e["minutes"], e["balance_after"]) for e in passbook["items"]] == [("service", 75, 75)]
    budget = await community.call("GET", "/api/governance/budget", worker.auth)
    assert (budget["granted"], budget["remaining"]) == (12, 988)

    # A worker finds the service was logged against the wrong elder and reverses it in the time bank.
    reversal_id = str(uuid.uuid4())
    reversal = await community.call(
        "POST",
        f"/api/timebank/transfers/{posted_id}/reversal",
        worker.auth,
        {"id": reversal_id, "reason": "记录有误"},
        expected=(201,),
    )
    assert (reversal["kind"], reversal["amount_minutes"]) == ("reversal", 75)

    async def clawed_back() -> bool:
        return bool((await points_of(community, volunteer))["balance"] == 0)

    await wait_until(clawed_back, what="governance clawing the points back")
    statement = await community.call("GET", "/api/governance/me/statement", volunteer.auth)
    lines = [(e["kind"], e["delta"], e["balance_after"]) for e in statement["items"]]
    assert lines == [("reversal", -12, 0), ("grant", 12, 12)]
    assert posted_id in statement["items"][0]["reason"]  # the statement says which transfer was corrected
    points = await points_of(community, volunteer)
    assert (points["balance"], points["debt"], points["reserved"]) == (0, 0, 0)
    budget = await community.call("GET", "/api/governance/budget", worker.auth)
    assert (budget["granted"], budget["clawed_back"], budget["remaining"]) == (12, 12, 1000)
    mine = await community.call("GET", "/api/timebank/members/me", volunteer.auth)
    assert mine["balance"]["posted_minutes"] == 0
