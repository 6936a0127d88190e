"""A ticket handed to another steward tells that steward (not the one who handed it over), and its
resident hears of the change of status as before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.property import events as pr
from tests.notify.conftest import Community
from tests.notify.test_timebank_kinds import publish


async def test_a_reassigned_ticket_tells_the_steward_now_holding_it(community: Community) -> None:
    c = community
    ticket = f"tk-{uuid.uuid4().hex}"
    at = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    common = {"ticket_id": ticket, "community": c.id, "category": "repair"}
    await publish(
        c,
        pr.TicketSubmitted(
            **common,
            building_id="b1",
            household_id="h1",
            resident_id="res-1",
            source="resident",
            priority="urgent",
            status="assigned",
            assignee_id="st-1",
            service_code=None,
            routed_via="building",
            response_due_at=at,
            resolution_due_at=at,
            submitted_at=at,
        ),
        ticket,
    )
    await publish(
        c,
        pr.TicketReassigned(
            **common,
            priority="urgent",
            status="assigned",
            from_assignee_id="st-1",
            assignee_id="st-2",
            actor_id="st-1",
            at=at,
        ),
        ticket,
    )
    [note] = await c.wait_for_inbox("st-2", 1, "steward")
    assert note["kind"] == "ticket.assigned"
    assert note["body"] == f"报修工单 #{ticket[-6:].upper()} 已转派给您（紧急）。"
    assert [n["kind"] for n in await c.inbox("st-1", "steward")] == ["ticket.filed"]  # not told of their own act
