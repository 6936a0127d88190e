"""The demo seed runs against a fresh service and its data is visible through the API."""

from __future__ import annotations

from deploy.local.demo_community import COMMUNITY, resident, staff
from services.governance.app import create_app
from services.governance.demo import REWARDS, RULES, seed_demo
from services.governance.settings import Settings
from tests.support.harness import run_service
from tests.support.stack import TestStack


async def test_demo_seed_creates_rules_budget_catalogue_statements_and_leaderboard(stack: TestStack) -> None:
    async with run_service(stack, "governance", create_app, Settings) as svc:
        await seed_demo(svc.client, lambda subject, roles: stack.token(subject, *roles, community=COMMUNITY))
        worker = stack.auth(staff("worker.feng").id, "community_worker", community=COMMUNITY)
        rules = (await svc.client.get("/rules", headers=worker)).json()
        assert sorted(r["code"] for r in rules) == sorted(r["code"] for r in RULES)
        rewards = (await svc.client.get("/rewards", headers=worker)).json()
        assert len(rewards) == len(REWARDS)
        budget = (await svc.client.get("/budget", headers=worker)).json()
        assert budget["funded"] == 50_000 and 0 < budget["granted"] < 50_000
        pending = (await svc.client.get("/awards", params={"status": "pending"}, headers=worker)).json()
        assert len(pending["items"]) == 1
        zhang = resident("张建国")
        as_zhang = stack.auth(zhang.id, *zhang.roles, community=COMMUNITY)
        statement = (await svc.client.get("/me/statement", headers=as_zhang)).json()["items"]
        assert {e["kind"] for e in statement} >= {"grant", "award", "spend"}
        assert statement[0]["balance_after"] == (await svc.client.get("/me/points", headers=as_zhang)).json()["balance"]
        board = (await svc.client.get("/leaderboard", headers=as_zhang)).json()
        assert board["rows"][0]["resident_id"] == zhang.id
        assert len(board["rows"]) == 8
        reserved = (await svc.client.get("/redemptions", params={"status": "reserved"}, headers=worker)).json()
        assert len(reserved["items"]) == 2
