"""Hours past the community's validity period expire to the pool, against the real database.

Credits are dated in the past by updating their `created_at` (history a test sets up), then the
use case or the scheduled job runs at the real time.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from services.timebank import domain, hours_expiry
from services.timebank.events import HoursExpired
from services.timebank.jobs import hours_expiry_job
from tests.timebank.community import WORKER, Community, assert_ledger_invariants
from tests.timebank.test_api import problem_type

OLD = date(1950, 3, 1)


async def expiry_settings(c: Community, *, on: bool = True, months: int = 12) -> None:
    r = await c.client.put("/settings", json={"hours_expire": on, "hours_valid_months": months}, headers=c.h(WORKER))
    assert r.status_code == 200, r.text
    assert (r.json()["hours_expire"], r.json()["hours_valid_months"]) == (on, months)


async def date_credits_back(c: Community, member: str, days: int) -> None:
    """Date every credit the member has had so far `days` in the past."""
    dated = await c.sql(
        "UPDATE tb_transfers SET created_at = :at WHERE credit_account_id = :account RETURNING id",
        at=datetime.now(UTC) - timedelta(days=days),
        account=c.account(member),
    )
    assert dated


async def expire(c: Community) -> int:
    async with c.svc.state.sessionmaker() as session:
        return await hours_expiry.expire_hours(session)


async def pool_posted(c: Community) -> int:
    r = await c.client.get("/pool", headers=c.h(WORKER))
    assert r.status_code == 200, r.text
    return int(r.json()["pool"]["balance"]["posted_minutes"])


async def expired_events(c: Community) -> list[Any]:
    return await c.sql("SELECT key, data FROM kit_outbox WHERE type = 'timebank.hours.expired.v1' ORDER BY id")


async def test_old_unspent_hours_expire_to_the_pool_once(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    await c.enrol("elder", elder=True, birth=OLD)
    await c.grant("elder", 100, "elder")
    await date_credits_back(c, "elder", days=400)
    r = await c.client.post(
        "/transfers/spend", json={"id": str(uuid.uuid4()), "minutes": 30, "service_type": "meal"}, headers=c.h("elder")
    )
    assert r.status_code == 201, r.text
    await c.grant("elder", 40, "elder")
    pool_before = await pool_posted(c)

    # The spending took 30 of the old 100; the 70 left are older than 12 months, the recent 40 stay.
    assert await expire(c) == 1
    assert await c.balance("elder") == {
        "posted_minutes": 40,
        "available_minutes": 40,
        "pending_in_minutes": 0,
        "pending_out_minutes": 0,
    }
    assert await pool_posted(c) == pool_before + 70
    r = await c.client.get("/members/me/passbook", params={"limit": 1}, headers=c.h("elder"))
    [entry] = r.json()["items"]
    assert (entry["kind"], entry["minutes"], entry["balance_after"], entry["counterparty_account_id"], entry["reason"]) == (
        "expiry",
        -70,
        40,
        str(c.pool_id),
        "hours older than 12 months expired",
    )
    [expiry] = await c.sql("SELECT id, created_by, credit_balance_after FROM tb_transfers WHERE kind = 'expiry'")
    assert (str(expiry.id), expiry.created_by, expiry.credit_balance_after) == (
        entry["transfer_id"],
        "system:hours-expiry",
        pool_before + 70,
    )

    # The event, in the same transaction, as consumers will read it.
    [(key, data)] = await expired_events(c)
    event = HoursExpired.model_validate(data)
    assert key == event.transfer_id == entry["transfer_id"]
    assert (event.community, event.member_id, event.minutes, event.valid_months) == (c.name, "elder", 70, 12)
    assert abs(event.expired_at - datetime.now(UTC)) < timedelta(minutes=1)

    # Nothing is left to expire: a second run writes nothing.
    assert await expire(c) == 0
    assert len(await c.sql("SELECT id FROM tb_transfers WHERE kind = 'expiry'")) == 1
    assert len(await expired_events(c)) == 1
    assert (await c.balance("elder"))["posted_minutes"] == 40

    # Like an overflow, an expiry is the ledger's own rule at work: it cannot be reversed.
    r = await c.client.post(
        f"/transfers/{entry['transfer_id']}/reversal", json={"id": str(uuid.uuid4()), "reason": "撤销"}, headers=c.h(WORKER)
    )
    assert r.status_code == 409 and problem_type(r) == "timebank/not-reversible"
    assert (await c.balance("elder"))["posted_minutes"] == 40
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_only_communities_with_expiry_on_expire_after_their_own_period(community: Community) -> None:
    c = community
    other = Community(c.stack, c.svc, name="other-community")
    for place in (c, other):
        await place.enrol("vol", volunteer=True)
        await place.enrol("elder", elder=True)
        await place.grant("vol", 90, "elder")
        await date_credits_back(place, "vol", days=380)  # past 12 calendar months, short of 13
    await expiry_settings(other, months=12)
    job = hours_expiry_job(every_s=3600, batch=100)

    await job.run(c.svc.state)
    assert (await c.balance("vol"))["posted_minutes"] == 90  # expiry off (the default)
    assert (await other.balance("vol"))["posted_minutes"] == 0

    await expiry_settings(c, months=13)
    await job.run(c.svc.state)
    assert (await c.balance("vol"))["posted_minutes"] == 90  # still within this community's period
    await expiry_settings(c, months=12)
    await job.run(c.svc.state)
    assert (await c.balance("vol"))["posted_minutes"] == 0
    assert [(d["community"], d["minutes"], d["valid_months"]) for _, d in await expired_events(c)] == [
        (other.name, 90, 12),
        (c.name, 90, 12),
    ]
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_one_job_run_clears_a_backlog_larger_than_its_batch(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    await c.enrol("elder", elder=True)
    members = [f"vol-{n}" for n in range(5)]
    for member in members:
        await c.enrol(member, volunteer=True)
        await c.grant(member, 30, "elder")
        await date_credits_back(c, member, days=400)

    await hours_expiry_job(every_s=3600, batch=2).run(c.svc.state)  # three batches: 2, 2, 1
    assert [(await c.balance(m))["posted_minutes"] for m in members] == [0] * 5
    assert len(await expired_events(c)) == 5
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_pending_debits_are_respected(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("elder", 100, "elder")
    await date_credits_back(c, "elder", days=400)
    _, confirmed = await c.serve("elder", "vol", 30)
    _, disputed = await c.serve("elder", "vol", 20)

    # 50 of the old 100 are promised to the volunteer: only the other 50 expire, and the
    # promised minutes stay payable.
    assert await expire(c) == 1
    assert await c.balance("elder") == {
        "posted_minutes": 50,
        "available_minutes": 0,
        "pending_in_minutes": 0,
        "pending_out_minutes": 50,
    }
    r = await c.client.post(f"/transfers/{confirmed}/confirm", json={"id": str(uuid.uuid4())}, headers=c.h("elder"))
    assert r.status_code == 201, r.text
    assert await expire(c) == 0
    # A dispute releases old hours: they expire at the next run, and the balance stays at zero.
    r = await c.client.post(
        f"/transfers/{disputed}/dispute", json={"id": str(uuid.uuid4()), "reason": "没来"}, headers=c.h("elder")
    )
    assert r.status_code == 201, r.text
    assert (await c.balance("elder"))["available_minutes"] == 20
    assert await expire(c) == 1
    assert await c.balance("elder") == {
        "posted_minutes": 0,
        "available_minutes": 0,
        "pending_in_minutes": 0,
        "pending_out_minutes": 0,
    }
    # The volunteer's 30 were credited now: they stay.
    assert (await c.balance("vol"))["posted_minutes"] == 30
    assert [d["minutes"] for _, d in await expired_events(c)] == [50, 20]
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_a_reversed_credit_does_not_keep_old_hours_valid(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("vol", 100, "elder")
    await date_credits_back(c, "vol", days=400)
    await c.grant("elder", 60, "elder")
    _, pending = await c.serve("elder", "vol", 60)
    posting = str(uuid.uuid4())
    r = await c.client.post(f"/transfers/{pending}/confirm", json={"id": posting}, headers=c.h("elder"))
    assert r.status_code == 201, r.text
    r = await c.client.post(
        f"/transfers/{posting}/reversal", json={"id": str(uuid.uuid4()), "reason": "登记错误"}, headers=c.h(WORKER)
    )
    assert r.status_code == 201, r.text
    # The recent 60 were taken back: all 100 the volunteer holds are old.
    assert await expire(c) == 1
    assert (await c.balance("vol"))["posted_minutes"] == 0
    assert (await c.balance("elder"))["posted_minutes"] == 60  # the reversal's credit is recent
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_replicas_running_at_once_expire_once(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    members = [f"vol-{i}" for i in range(5)]
    await c.enrol("elder", elder=True)
    for m in members:
        await c.enrol(m, volunteer=True)
        await c.grant(m, 50, "elder")
        await date_credits_back(c, m, days=400)

    counts = await asyncio.gather(*(expire(c) for _ in range(4)))
    assert sum(counts) == len(members)
    assert await c.sql("SELECT count(*), sum(amount_minutes) FROM tb_transfers WHERE kind = 'expiry'") == [
        (len(members), 50 * len(members))
    ]
    assert len(await expired_events(c)) == len(members)
    await assert_ledger_invariants(c.svc.state.sessionmaker)


async def test_validity_period_setting_is_bounded(community: Community) -> None:
    c = community
    r = await c.client.get("/settings", headers=c.h("someone"))
    assert (r.json()["hours_expire"], r.json()["hours_valid_months"]) == (False, 36)
    for months in (0, 601):
        r = await c.client.put("/settings", json={"hours_expire": True, "hours_valid_months": months}, headers=c.h(WORKER))
        assert r.status_code == 422 and problem_type(r) == "validation-error"
    with pytest.raises(IntegrityError, match="ck_tb_community_settings_hours_valid_months"):
        await c.sql("UPDATE tb_community_settings SET hours_valid_months = 0 WHERE community = :c RETURNING community", c=c.name)


async def date_last_credit(c: Community, member: str, at: datetime) -> None:
    """Date the member's newest credit at `at` (the others keep their dates)."""
    dated = await c.sql(
        "UPDATE tb_transfers SET created_at = :at WHERE id = (SELECT id FROM tb_transfers "
        "WHERE credit_account_id = :account ORDER BY seq DESC LIMIT 1) RETURNING id",
        at=at,
        account=c.account(member),
    )
    assert dated


async def outlook(c: Community, member: str, *, path_name: str | None = None, **params: Any) -> Any:
    r = await c.client.get(f"/members/{path_name or member}/hours-expiry", params=params, headers=c.h(member))
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_member_sees_which_hours_will_expire_and_when(community: Community) -> None:
    c = community
    await c.enrol("elder", elder=True, birth=OLD)
    await c.enrol("vol", volunteer=True)
    await c.grant("vol", 100, "elder")
    assert (await outlook(c, "vol"))["expiring"] == []  # expiry off: nothing ever expires
    await expiry_settings(c, months=12)
    now = datetime.now(UTC)
    await c.grant("vol", 100, "elder")
    await date_last_credit(c, "vol", now - timedelta(days=400))  # past the period already
    await c.grant("vol", 50, "elder")
    ages_out = now - timedelta(days=350)  # a year after it: in about 15 days
    await date_last_credit(c, "vol", ages_out)
    await c.grant("vol", 30, "elder")

    seen = await outlook(c, "vol")
    expected_day = domain.hours_expire_on(ages_out, 12)
    assert seen["available_minutes"] == 280 and seen["valid_months"] == 12 and seen["hours_expire"]
    # 280 held, 180 of them credited within the year: 100 are due now. When the 50 age out, the
    # 130 still valid cover 130 of the 180 held then: 50 more go. 130 stay.
    assert seen["expiring"] == [
        {"on": domain.local_today(now).isoformat(), "minutes": 100},
        {"on": expected_day.isoformat(), "minutes": 50},
    ]
    assert (await outlook(c, "vol", path_name="me", days=10))["expiring"] == seen["expiring"][:1]

    # The job does what the outlook said for today, and the outlook moves on.
    assert await expire(c) == 1
    assert (await outlook(c, "vol"))["expiring"] == [{"on": expected_day.isoformat(), "minutes": 50}]
    assert (await c.balance("vol"))["available_minutes"] == 180


async def test_the_outlook_is_the_members_own_or_their_relatives_or_staffs(community: Community) -> None:
    c = community
    await expiry_settings(c, months=12)
    await c.enrol("vol", volunteer=True)
    await c.enrol("other", volunteer=True)
    r = await c.client.get("/members/vol/hours-expiry", headers=c.h("other"))
    assert r.status_code == 404 and problem_type(r) == "timebank/not-a-member"
    assert (await c.client.get("/members/vol/hours-expiry", headers=c.h(WORKER))).status_code == 200
    for days in (0, 367, "soon"):
        r = await c.client.get("/members/me/hours-expiry", params={"days": days}, headers=c.h("vol"))
        assert r.status_code == 422, (days, r.text)
