"""The ledger reconciliation: quiet on a sound ledger, and each of its checks fails on the break it
looks for (rows changed behind the service's back, as a bad manual fix or a bug would)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

from services.timebank.audit import audit_ledger
from tests.timebank.community import WORKER, Community
from tests.timebank.test_api import OLD, problem_type


async def sound_ledger(c: Community) -> tuple[str, str]:
    """Members with hours, one confirmed service and one still pending: (confirmed, pending) ids."""
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 120, "elder")
    _, confirmed = await c.serve("elder", "vol", 30)
    r = await c.client.post(f"/transfers/{confirmed}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
    assert r.status_code == 201, r.text
    _, pending = await c.serve("elder", "vol", 20)
    return confirmed, pending


async def findings(c: Community, community: str | None = None) -> dict[str, Any]:
    async with c.svc.state.sessionmaker() as session:
        result = await audit_ledger(session, community)
    return {f.check: f for f in result.findings}


async def test_a_sound_ledger_reconciles_through_the_route(community: Community) -> None:
    c = community
    await sound_ledger(c)
    r = await c.client.get("/ledger-audit", headers=c.h(WORKER))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["community"], body["reconciles"], body["findings"]) == (c.name, True, [])
    # Accounts: pool, community, elder, volunteer. Transfers: funding, the grant, two pending, one posting.
    assert (body["accounts"], body["transfers"]) == (4, 5)
    r = await c.client.get("/ledger-audit", headers=c.h("elder"))
    assert r.status_code == 403 and problem_type(r) == "forbidden"


async def test_totals_that_disagree_with_the_transfers_are_found(community: Community) -> None:
    c = community
    await sound_ledger(c)
    elder = c.account("elder")
    await c.sql("UPDATE tb_accounts SET credits_posted = credits_posted + 5 WHERE id = :a RETURNING id", a=elder)
    found = await findings(c)
    assert set(found) == {"account_totals_disagree_with_transfers", "posted_debits_differ_from_credits"}
    assert found["account_totals_disagree_with_transfers"].ids == [str(elder)]
    unbalanced = found["posted_debits_differ_from_credits"]
    assert unbalanced.detail["credits_minutes"] - unbalanced.detail["debits_minutes"] == 5
    r = await c.client.get("/ledger-audit", headers=c.h(WORKER))
    assert r.json()["reconciles"] is False and {f["check"] for f in r.json()["findings"]} == set(found)


async def test_a_pending_transfer_whose_resolution_lost_its_row_is_found(community: Community) -> None:
    c = community
    confirmed, _ = await sound_ledger(c)
    # Deleting the posting leaves the pending row saying "posted" with nothing behind it.
    await c.sql("DELETE FROM tb_transfers WHERE pending_id = :p RETURNING id", p=uuid.UUID(confirmed))
    found = await findings(c)
    assert found["pending_resolution_mismatch"].ids == [confirmed]
    # The accounts still count the deleted posting, so their totals disagree too.
    assert found["account_totals_disagree_with_transfers"].count == 2


async def test_a_transfer_moved_to_another_community_is_found(community: Community) -> None:
    c = community
    confirmed, _ = await sound_ledger(c)
    [posting] = await c.sql("SELECT id FROM tb_transfers WHERE pending_id = :p", p=uuid.UUID(confirmed))
    await c.sql("UPDATE tb_transfers SET community = 'elsewhere' WHERE id = :t RETURNING id", t=posting.id)
    found = await findings(c)
    assert found["transfer_crosses_communities"].ids == [str(posting.id)]
    assert found["transfer_crosses_communities"].community == "elsewhere"
    assert "transfer_crosses_communities" not in await findings(c, c.name)  # scoped to the community


async def test_the_operator_command_exits_1_on_a_finding(community: Community) -> None:
    c = community
    await sound_ledger(c)

    async def command() -> tuple[int, list[dict[str, Any]]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.timebank.audit",
            "--community",
            c.name,
            env={**os.environ, "TIMEBANK_DATABASE_URL": c.svc.settings.database_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None, err
        return proc.returncode, [json.loads(line) for line in out.decode().splitlines()]

    code, lines = await command()
    assert code == 0 and lines[-1]["reconciles"] is True and lines[-1]["findings"] == 0, lines
    await c.sql("UPDATE tb_accounts SET debits_pending = debits_pending + 1 WHERE id = :a RETURNING id", a=c.account("vol"))
    code, lines = await command()
    assert code == 1, lines
    assert {line.get("check") for line in lines[:-1]} == {
        "account_totals_disagree_with_transfers",
        "pending_debits_differ_from_credits",
    }
    assert lines[-1]["reconciles"] is False and lines[-1]["findings"] == 2
