"""The demo seed runs against a fresh service and its data is visible through the API."""

from __future__ import annotations

from datetime import UTC, datetime

from deploy.local.demo_community import COMMUNITY, RESIDENTS, resident, staff
from services.governance import closing
from services.governance.app import create_app
from services.governance.demo import OWNERS_DECISION_OPEN_S, REWARDS, RULES, seed_demo
from services.governance.settings import Settings
from services.kit.envelope import CloudEvent
from services.kit.redelivery import publish_raw
from services.property.demo import EXCLUSIVE_AREAS, TENANTS, household_id
from tests.governance.conftest import wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


async def registry_events(svc: RunningService) -> None:
    """What property's demo seed publishes about the households and residents, as property would."""
    topic = svc.settings.kafka_namespace + "property.events"
    units = sorted({(p.building, p.unit) for p in RESIDENTS})
    for i, unit in enumerate(units):
        data = {"household_id": household_id(*unit), "community": COMMUNITY, "building_id": unit[0], "unit": unit[1]}
        data["exclusive_area"] = EXCLUSIVE_AREAS[i % len(EXCLUSIVE_AREAS)]
        event = CloudEvent(
            type="property.household.registered.v1", source="/services/property", key=data["household_id"], data=data
        )
        await publish_raw(svc.settings, topic, event)
    for p in RESIDENTS:
        data = {
            "resident_id": p.id,
            "community": COMMUNITY,
            "household_id": household_id(p.building, p.unit),
            "owner": p.name not in TENANTS,
        }
        await publish_raw(
            svc.settings,
            topic,
            CloudEvent(type="property.resident.registered.v1", source="/services/property", key=p.id, data=data),
        )


async def test_demo_seed_creates_rules_budget_catalogue_statements_and_leaderboard(stack: TestStack) -> None:
    async with run_service(stack, "governance", create_app, Settings) as svc:
        await registry_events(svc)
        await seed_demo(svc.client, lambda subject, roles: stack.token(subject, *roles, community=COMMUNITY))
        worker = stack.auth(staff("worker.feng").id, "community_worker", community=COMMUNITY)
        rules = (await svc.client.get("/rules", params={"limit": 200}, headers=worker)).json()["items"]
        assert sorted(r["code"] for r in rules) == sorted(r["code"] for r in RULES)
        rewards = (await svc.client.get("/rewards", params={"limit": 200}, headers=worker)).json()["items"]
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

        decisions = {d["kind"]: d for d in (await svc.client.get("/decisions", headers=worker)).json()["items"]}
        assert decisions["household_poll"]["status"] == "open"
        owners = decisions["owners_ordinary"]
        closes_at = datetime.fromisoformat(owners["closes_at"])

        async def closed() -> bool:
            if datetime.now(UTC) >= closes_at:
                async with svc.state.sessionmaker() as session:
                    await closing.close_due(session)
            r = await svc.client.get(f"/decisions/{owners['id']}", headers=worker)
            return bool(r.json()["status"] == "closed")

        await wait_until(closed, timeout=OWNERS_DECISION_OPEN_S + 30)
        result = (await svc.client.get(f"/decisions/{owners['id']}", headers=as_zhang)).json()["result"]
        # Eight units, eight owners (the tenant's unit counts: its owner could vote on paper); six take
        # part (three quarters, over the two-thirds quorum) and four of them approve.
        assert (result["outcome"], result["roll_voters"], result["participating_voters"]) == ("passed", 8, 6)
        yes = next(o for o in result["options"] if o["option"] == "yes")
        assert (yes["ballots"], len(yes["receipts"])) == (4, 4)
