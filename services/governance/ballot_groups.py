"""Ballots cast at the same moment in one process are written together: one statement, one commit.

A burst of ballots (a whole estate voting in the evening) costs the database a transaction and a
commit (a WAL flush) per ballot, and this process a pool checkout and a round trip per ballot. Here
at most `LANES` cast statements are in flight per database; a ballot that finds a lane free is sent
alone at once (`gov_cast_ballot`), as before, so a ballot on a quiet evening waits for nothing. A
ballot that finds every lane busy waits for the next lane to come free, and that lane then sends
every waiting ballot (up to `GROUP_MAX`) as one statement: `gov_cast_ballot` for each, in order, in
one transaction, so one commit for the group. Each ballot still gets its own outcome and its own
event; the function's rules are the same for each, and a later ballot of a group sees the earlier
ones (a retry in the same group is `same`, a different second ballot `already-cast`).

A group shares one fate: if its statement fails (a deadlock with another replica's group on two
voters' retries, a lost connection), each of its ballots is sent again alone, so a ballot is never
refused for another's sake; a ballot inside a caller's transaction always goes alone, in it.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import fetch_all_alone, fetch_alone

# Cast statements in flight per database from this process. A few lanes keep both of the
# database's cores busy while the rest of a burst gathers into groups.
LANES = 4
# The most ballots one group statement carries. A group is one backend's work, ballot after ballot:
# groups of ten let the four lanes share a burst (both of the database's cores busy) instead of one
# lane carrying everything that waited; in the bench's burst (40 in flight) groups of ten gave 1.3-1.4 x
# the ballots/s of groups of up to 200, with less CPU per ballot in this process.
GROUP_MAX = 10

_COLUMNS = "outcome, id, voter_key, household_id, option, channel, cast_by, on_behalf_of, proxy_basis, receipt, cast_at"
_PARAMETERS = (
    ("community", "text"),
    ("decision_id", "uuid"),
    ("voter", "text"),
    ("on_behalf_of", "text"),
    ("household", "text"),
    ("option", "text"),
    ("channel", "text"),
    ("cast_by", "text"),
    ("ballot_id", "uuid"),
    ("receipt", "text"),
    ("now", "timestamptz"),
    ("cast_at_json", "text"),
    ("event_id", "text"),
    ("event_topic", "text"),
    ("event_type", "text"),
    ("event_source", "text"),
    ("traceparent", "text"),
    ("tracestate", "text"),
)
# One ballot: every check and write in one round trip (sql/gov_cast_ballot.sql explains it).
CAST_SQL = f"SELECT {_COLUMNS} FROM gov_cast_ballot({', '.join(f'${n}' for n in range(1, len(_PARAMETERS) + 1))})"
# A group: the same function for each ballot, in the order they came, in one statement. The arrays
# are one per parameter; the statement's text does not change with the group's size.
CAST_GROUP_SQL = (
    f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))}"
    " FROM unnest("
    + ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_PARAMETERS, 1))
    + f") WITH ORDINALITY AS b({', '.join(name for name, _ in _PARAMETERS)}, n)"
    " CROSS JOIN LATERAL gov_cast_ballot(" + ", ".join(f"b.{name}" for name, _ in _PARAMETERS) + ") AS r ORDER BY b.n"
)


@dataclass
class _Waiting:
    session: AsyncSession
    args: tuple[Any, ...]
    # The ballot's row, or None when its group failed and it is to be sent alone.
    row: asyncio.Future[Any | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BallotWriter:
    """The lanes and the waiting ballots of one database (one engine) in this process."""

    def __init__(self) -> None:
        self.busy = 0
        self.waiting: list[_Waiting] = []
        self.groups_sent = 0
        self.groups_failed = 0
        self._groups: set[asyncio.Task[None]] = set()

    async def cast(self, session: AsyncSession, args: tuple[Any, ...]) -> Any:
        """The ballot's row from `gov_cast_ballot`, sent alone or in a group."""
        if session.in_transaction() or self.busy < LANES:
            return await self._alone(session, args)
        waiting = _Waiting(session, args)
        self.waiting.append(waiting)
        row = await waiting.row
        return row if row is not None else await self._alone(session, args)

    async def _alone(self, session: AsyncSession, args: tuple[Any, ...]) -> Any:
        if session.in_transaction():
            return await fetch_alone(session, CAST_SQL, *args)
        self.busy += 1
        try:
            return await fetch_alone(session, CAST_SQL, *args)
        finally:
            self.busy -= 1
            self._send_waiting()

    def _send_waiting(self) -> None:
        """Hand the waiting ballots to a free lane as one group."""
        while self.waiting and self.busy < LANES:
            group = [w for w in self.waiting[:GROUP_MAX] if not w.row.cancelled()]
            del self.waiting[:GROUP_MAX]
            if not group:
                continue
            self.busy += 1
            task = asyncio.get_running_loop().create_task(self._send_group(group))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    async def _send_group(self, group: list[_Waiting]) -> None:
        rows: list[Any] = [None] * len(group)  # failed or cancelled: each is sent again alone
        try:
            columns = zip(*(w.args for w in group), strict=True)
            answered = await fetch_all_alone(group[0].session, CAST_GROUP_SQL, *(list(c) for c in columns))
            if len(answered) == len(group):  # one row per ballot, as gov_cast_ballot answers each
                rows = answered
                self.groups_sent += 1
            else:
                self.groups_failed += 1
        except Exception:  # each ballot is sent again alone and meets the error itself
            self.groups_failed += 1
        finally:
            self.busy -= 1
            for waiting, row in zip(group, rows, strict=True):
                if not waiting.row.done():
                    waiting.row.set_result(row)
            self._send_waiting()


_writers: weakref.WeakKeyDictionary[AsyncEngine, BallotWriter] = weakref.WeakKeyDictionary()


def writer_for(session: AsyncSession) -> BallotWriter:
    """The writer of the session's database (its engine), made on first use."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise RuntimeError("casting a ballot needs a session bound to an AsyncEngine")
    writer = _writers.get(engine)
    if writer is None:
        writer = _writers[engine] = BallotWriter()
    return writer
