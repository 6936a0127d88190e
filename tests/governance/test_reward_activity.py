"""Whether a reward is active is written twice: `domain.reward_is_active` (Python) and
`rewards.reward_active_at` (SQL, so a page of the catalogue is filtered before it is cut). The same
cases, every boundary included, go to both and must get the same answers."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from services.governance import domain
from services.governance.models import Reward
from services.governance.rewards import reward_active_at
from tests.governance.conftest import Community

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
STARTS = (None, AT - SECOND, AT, AT + SECOND)
ENDS = (None, AT - SECOND, AT, AT + SECOND)


async def test_sql_and_python_agree_on_every_case(community: Community) -> None:
    cases = {}
    async with community.svc.state.sessionmaker() as session, session.begin():
        for n, (enabled, starts, ends) in enumerate(itertools.product((True, False), STARTS, ENDS)):
            reward = Reward(
                id=uuid.uuid4(),
                community=community.id,
                code=f"case-{n}",
                name="环保袋",
                kind="item",
                points=10,
                stock=1,
                active_from=starts,
                active_until=ends,
                enabled=enabled,
            )
            session.add(reward)
            cases[reward.code] = domain.reward_is_active(enabled, starts, ends, AT)
    async with community.svc.state.sessionmaker() as session, session.begin():
        query = select(Reward.code).where(col(Reward.community) == community.id, reward_active_at(AT))
        in_sql = set((await session.exec(query)).all())
    assert len(cases) == 32
    assert in_sql == {code for code, active in cases.items() if active}
    assert 0 < len(in_sql) < len(cases)
