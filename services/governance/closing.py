"""Closing a decision at its closing time, once across replicas: the count, the result, the event.

Each replica's job takes due decisions FOR UPDATE SKIP LOCKED, so two jobs never close the same
decision, and the status check in the same statement makes a decision closed once and only once.
Each ballot holds the decision's advisory lock shared (sql/gov_cast_ballot.sql); the close takes it
exclusively before it counts, so it waits for the ballots in flight and counts them, and a ballot
that waited for the close then sees the decision closed: counted or refused, never lost.
The count is one grouped SQL query over the frozen roll and the ballots (`_COUNT_SQL`); the rules
applied to its sums are tally.py's, and tests/governance/test_tally_sql.py holds the query and the
Python tally to one reference model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance.accounts import now_utc
from services.governance.decision_models import DECISIONS, Decision
from services.governance.events import DecisionClosed, OptionCount, publisher
from services.governance.tally import Count, Kind, owners_tally_of, poll_tally_of
from services.kit.db import fetch_all_alone, fetch_alone, transaction

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


# The tally's sums in one grouped query over the frozen roll's owners (one row per owner key, with
# the area of all its units, 法释〔2009〕7号 第九条, summed when the decision opened) joined with the
# ballots by voter key: the first row (option NULL) is the roll, owners and area; the others each
# option's owners and area. Integers throughout; a ballot whose key is not on the roll matches
# nothing. A poll's units each carry their household as key, so the same query counts households.
_COUNT_SQL = """
SELECT NULL::text AS option, count(*) AS voters, coalesce(sum(area), 0)::bigint AS area
  FROM gov_decision_owners WHERE decision_id = $1
UNION ALL
SELECT b.option, count(*), sum(o.area)::bigint
  FROM gov_ballots AS b JOIN gov_decision_owners AS o ON o.decision_id = b.decision_id AND o.owner_key = b.voter_key
 WHERE b.decision_id = $1
 GROUP BY b.option
"""


# The count's statement starts after the lock is granted, so its snapshot holds every ballot that
# held the lock before.
_LOCK_SQL = "SELECT pg_advisory_xact_lock(gov_decision_lock_key($1))"


async def _close(session: AsyncSession, decision: Decision) -> None:
    assert decision.id is not None
    await fetch_alone(session, _LOCK_SQL, decision.id)
    rows = await fetch_all_alone(session, _COUNT_SQL, decision.id)
    event = counted(decision, rows)
    decision.status = "closed"
    decision.closed_at = event.closed_at
    decision.result = result_of(event)
    await session.flush()
    await publisher.publish(session, event, key=str(decision.id))


def counted(decision: Decision, rows: Sequence[Any]) -> DecisionClosed:
    """The closed decision's counts and outcome from `_COUNT_SQL`'s rows (names and receipts never
    travel in the event)."""
    kind = Kind(decision.kind)
    common = {"decision_id": str(decision.id), "community": decision.community, "kind": kind.value, "closed_at": now_utc()}
    [roll] = [r for r in rows if r.option is None]
    options = {r.option: r for r in rows if r.option is not None}
    if kind.by_owners:
        owners = owners_tally_of(
            kind,
            Count(area=roll.area, owners=roll.voters),
            {o: Count(area=r.area, owners=r.voters) for o, r in options.items()},
        )
        return DecisionClosed(
            **common,
            outcome=owners.outcome.value,
            roll_voters=owners.roll.owners,
            roll_area=owners.roll.area,
            participating_voters=owners.participating.owners,
            participating_area=owners.participating.area,
            options=[OptionCount(option=o, ballots=c.owners, area=c.area) for o, c in owners.by_option.items()],
        )
    poll = poll_tally_of(decision.options, roll.voters, {o: r.voters for o, r in options.items()})
    return DecisionClosed(
        **common,
        outcome=poll.outcome.value,
        winner=poll.winner,
        roll_voters=poll.households,
        participating_voters=poll.participating,
        options=[OptionCount(option=o, ballots=n) for o, n in poll.by_option.items()],
    )


def result_of(event: DecisionClosed) -> dict[str, Any]:
    """The result kept on the decision: the event's counts. The receipts stay in the ballots and are
    listed under their options when the decision is read (`decisions.receipts_by_option`)."""
    return event.model_dump(mode="json", exclude={"decision_id", "community", "kind", "closed_at"})
