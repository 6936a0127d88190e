"""The demo seed fills a fresh service with a living time bank, through the API, and may run twice."""

from __future__ import annotations

from deploy.local.demo_community import COMMUNITY, resident, staff
from services.timebank.demo import seed_demo
from tests.support.harness import RunningService
from tests.support.stack import TestStack
from tests.timebank.community import assert_ledger_invariants


async def test_seed_demo_is_visible_through_the_api(stack: TestStack, tb: RunningService) -> None:
    def token_for(subject: str, roles: list[str]) -> str:
        return stack.token(subject, *roles, community=COMMUNITY)

    await seed_demo(tb.client, token_for)
    await seed_demo(tb.client, token_for)  # a second run changes nothing

    worker = staff("worker.feng")
    w = {"Authorization": f"Bearer {token_for(worker.id, ['community_worker'])}"}
    summary = (await tb.client.get("/summary", headers=w)).json()
    assert summary["services"] == 5
    assert summary["minutes_served"] == 90 + 45 + 60 + 120 + 150
    assert (summary["elders"], summary["volunteers"]) == (3, 6)
    pool = (await tb.client.get("/pool", headers=w)).json()
    assert pool["pool"]["balance"]["posted_minutes"] == 3000 + 30 - (90 + 45 + 60 + 120 + 150)
    assert pool["open_pending_count"] == 0
    volunteer = resident("周杰")
    v = {"Authorization": f"Bearer {token_for(volunteer.id, ['resident', 'volunteer'])}"}
    open_requests = (await tb.client.get("/care-requests", headers=v)).json()["items"]
    assert len(open_requests) == 2
    # 刘晓燕 is with 李桂兰 now: checked in, ready to check out in the app.
    liu = resident("刘晓燕")
    as_liu = {"Authorization": f"Bearer {token_for(liu.id, list(liu.roles))}"}
    mine = (await tb.client.get("/care-requests?status=in_progress", headers=as_liu)).json()
    assert [(r["elder_id"], r["status"]) for r in mine["items"] if r["volunteer_id"] == liu.id] == [
        (resident("李桂兰").id, "in_progress")
    ]
    passbook = (await tb.client.get("/members/me/passbook", headers=v)).json()["items"]
    assert [(e["kind"], e["minutes"], e["balance_after"]) for e in passbook] == [("donation", -30, 120), ("service", 150, 150)]
    await assert_ledger_invariants(tb.state.sessionmaker)
