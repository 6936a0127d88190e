"""Closing a decision at its closing time, once across replicas: the count, the result, the event.

Each replica's job takes due decisions FOR UPDATE SKIP LOCKED, so two jobs never close the same
decision, and the status check in the same statement makes a decision closed once and only once.
Ballots hold the decision FOR SHARE, so a ballot in flight is counted or refused, never lost.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance.accounts import now_utc
from services.governance.decision_models import BALLOTS, DECISION_UNITS, DECISIONS, Decision
from services.governance.events import DecisionClosed, OptionCount, publisher
from services.governance.tally import Kind, Unit, tally_owners, tally_poll
from services.kit.db import transaction

BATCH = 20


async def close_due(session: AsyncSession) -> int:
    """Close up to `BATCH` decisions past their closing time; returns how many this call closed."""
    async with transaction(session):
        now = now_utc()
        query = (
            select(Decision)
            .where(DECISIONS.c.status == "open", DECISIONS.c.closes_at <= now)
            .order_by(DECISIONS.c.closes_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
        due = (await session.scalars(query)).all()
        for decision in due:
            await _close(session, decision)
        return len(due)


async def _close(session: AsyncSession, decision: Decision) -> None:
    units = [
        Unit(r.household_id, r.area, r.owner_key)
        for r in await session.execute(
            select(DECISION_UNITS.c.household_id, DECISION_UNITS.c.area, DECISION_UNITS.c.owner_key).where(
                DECISION_UNITS.c.decision_id == decision.id
            )
        )
    ]
    rows = (
        await session.execute(
            select(BALLOTS.c.voter_key, BALLOTS.c.option, BALLOTS.c.receipt).where(BALLOTS.c.decision_id == decision.id)
        )
    ).all()
    choices = {r.voter_key: r.option for r in rows}
    receipts: dict[str, list[str]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r.receipt):
        receipts[r.option].append(r.receipt)
    event = counted(decision, units, choices)
    decision.status = "closed"
    decision.closed_at = event.closed_at
    decision.result = result_of(event, receipts)
    await session.flush()
    await publisher.publish(session, event, key=str(decision.id))


def counted(decision: Decision, units: list[Unit], choices: dict[str, str]) -> DecisionClosed:
    """The closed decision's counts and outcome (names and receipts never travel in the event)."""
    kind = Kind(decision.kind)
    common = {"decision_id": str(decision.id), "community": decision.community, "kind": kind.value, "closed_at": now_utc()}
    if kind.by_owners:
        owners = tally_owners(kind, units, choices)
        return DecisionClosed(
            **common,
            outcome=owners.outcome.value,
            roll_voters=owners.roll.owners,
            roll_area=owners.roll.area,
            participating_voters=owners.participating.owners,
            participating_area=owners.participating.area,
            options=[OptionCount(option=o, ballots=c.owners, area=c.area) for o, c in owners.by_option.items()],
        )
    poll = tally_poll(decision.options, len(units), choices)
    return DecisionClosed(
        **common,
        outcome=poll.outcome.value,
        winner=poll.winner,
        roll_voters=poll.households,
        participating_voters=poll.participating,
        options=[OptionCount(option=o, ballots=n) for o, n in poll.by_option.items()],
    )


def result_of(event: DecisionClosed, receipts: dict[str, list[str]]) -> dict[str, Any]:
    """The result kept on the decision: the event's counts, and every receipt under its option."""
    result = event.model_dump(mode="json", exclude={"decision_id", "community", "kind", "closed_at"})
    for option in result["options"]:
        option["receipts"] = receipts.get(option["option"], [])
    return result
