"""Members are warned 30 days ahead of their hours expiring: once per member and day of expiry,
however many replicas run the job and however often; hours already past, or expiring later, are not
warned of."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.timebank import domain, hours_expiry
from services.timebank.events import HoursExpiring
from tests.timebank.community import Community
from tests.timebank.test_hours_expiry import expiry_settings

OLD = date(1950, 3, 1)


async def date_credits(c: Community, member: str, at: datetime) -> None:
    dated = await c.sql(
        "UPDATE tb_transfers SET created_at = :at WHERE credit_account_id = :account RETURNING id",
        at=at,
        account=c.account(member),
    )
    assert dated


async def warnings(c: Community) -> list[Any]:
    rows = await c.sql("SELECT key, data FROM kit_outbox WHERE type = :t ORDER BY id", t=HoursExpiring.event_type)
    return [(key, HoursExpiring.model_validate(data)) for key, data in rows]


async def warn_as_replicas(c: Community, now: datetime, n: int = 4) -> None:
    async def one() -> int:
        async with c.svc.state.sessionmaker() as session:
            return await hours_expiry.warn_expiring_hours(session, now=now, page_size=2)

    await asyncio.gather(*(one() for _ in range(n)))


async def test_each_lot_about_to_expire_is_warned_of_once(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    now = datetime.now(UTC)
    soon = domain.hours_valid_from(now, 12) + timedelta(days=10)  # ages out in about 10 days
    later = domain.hours_valid_from(now, 12) + timedelta(days=45)  # in about 45 days: not yet
    for member, minutes, credited in (("a", 90, soon), ("b", 60, later), ("c", 30, soon), ("d", 20, now)):
        await c.enrol(member, elder=True, birth=OLD)
        await c.grant(member, minutes, member)
        await date_credits(c, member, credited)
    # "c" spent 10 of its 30 (the oldest hours go first): 20 are left to expire.
    r = await c.client.post(
        "/transfers/spend", json={"id": str(uuid.uuid4()), "minutes": 10, "service_type": "meal"}, headers=c.h("c")
    )
    assert r.status_code == 201, r.text

    await warn_as_replicas(c, now)
    await warn_as_replicas(c, now + timedelta(hours=1))  # the next run: nothing new
    got = await warnings(c)
    expires_on = domain.hours_expire_on(soon, 12)
    assert [(key, w.member_id, w.minutes, w.expires_on, w.valid_months) for key, w in got] == [
        ("a", "a", 90, expires_on, 12),
        ("c", "c", 20, expires_on, 12),
    ]
    assert all(w.community == c.name for _, w in got)

    # A month on, b's lot comes within the horizon and is warned of; a's and c's stay told.
    await warn_as_replicas(c, now + timedelta(days=20))
    assert [(w.member_id, w.minutes, w.expires_on) for _, w in (await warnings(c))[2:]] == [
        ("b", 60, domain.hours_expire_on(later, 12))
    ]


async def test_nothing_is_warned_where_hours_do_not_expire(community: Community) -> None:
    c = community
    await expiry_settings(c, on=False, months=12)
    now = datetime.now(UTC)
    await c.enrol("a", elder=True, birth=OLD)
    await c.grant("a", 90, "a")
    await date_credits(c, "a", domain.hours_valid_from(now, 12) + timedelta(days=10))
    await warn_as_replicas(c, now)
    assert await warnings(c) == []
