"""Hypothesis against the real database: random sequences of grant, redeem, capture, release, expire,
reverse and deduct keep every account and the budget adding up.

Each example runs in a worker thread with its own event loop and engine (Hypothesis drives sync
functions), on one migrated database shared by the examples, one community per example.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.governance import accounts, awards, earning, problems, rewards, statements
from services.governance.domain import Trigger
from services.governance.models import Account, Budget, Entry, Lot, Redemption
from services.governance.redemptions import capture_redemption, redeem, release_redemption
from services.governance.schemas import AwardCreate, RedemptionCreate, RewardCreate, RuleCreate
from services.governance.settings import Settings
from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker
from tests.support.stack import TestStack

T = TypeVar("T")
RESIDENT = "res-h"

Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("award"), st.integers(1, 50)),
        st.tuples(st.just("earn"), st.integers(1, 240)),
        st.tuples(st.just("redeem"), st.integers(1, 3)),
        st.tuples(st.just("capture"), st.integers(0, 5)),
        st.tuples(st.just("release"), st.integers(0, 5)),
        st.tuples(st.just("expire"), st.just(0)),
        st.tuples(st.just("reverse"), st.integers(0, 5)),
        st.tuples(st.just("deduct"), st.integers(1, 30)),
    ),
    min_size=1,
    max_size=14,
)


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def database_url(stack: TestStack) -> Any:
    url = run_in_thread(stack.fresh_database("governance"))
    yield url
    run_in_thread(stack.drop_database(url))


async def run_sequence(url: str, sequence: list[Op]) -> None:
    community = f"h-{uuid.uuid4().hex[:10]}"
    cfg = Settings(database_url=url, award_approval_threshold=1000)
    worker = Principal(subject="worker-1", roles=frozenset({"community_worker"}), community=community)
    resident = Principal(subject=RESIDENT, roles=frozenset({"resident"}), community=community)
    engine = make_engine(url, pool_size=2)
    maker = make_sessionmaker(engine)
    transfers: list[str] = []
    redemptions: list[uuid.UUID] = []
    try:
        async with maker() as s:
            await awards.fund_budget(s, worker, 100_000)
            await earning.create_rule(
                s,
                worker,
                RuleCreate(
                    code="tb",
                    name="时间银行",
                    points=6,
                    per_hour=True,
                    trigger=Trigger.timebank_service_confirmed,
                    lot_validity_days=1,
                ),
            )
            reward = await rewards.create_reward(
                s,
                worker,
                RewardCreate(
                    code="bag",
                    name="环保袋",
                    kind="item",  # type: ignore[arg-type]
                    points=7,
                    stock=10_000,
                ),
            )
        for op, n in sequence:
            async with maker() as s:
                try:
                    if op == "award":
                        await awards.create_award(s, cfg, worker, AwardCreate(resident_id=RESIDENT, points=n, reason="表彰"))
                    elif op == "deduct":
                        await awards.create_award(s, cfg, worker, AwardCreate(resident_id=RESIDENT, points=-n, reason="扣分"))
                    elif op == "earn":
                        transfers.append(str(uuid.uuid4()))
                        await earning.grant_for_event(
                            s,
                            cfg,
                            trigger=Trigger.timebank_service_confirmed,
                            community=community,
                            resident_id=RESIDENT,
                            source_event_id=str(uuid.uuid4()),
                            source_ref=transfers[-1],
                            minutes=n,
                            at=datetime.now(UTC),
                        )
                    elif op == "redeem":
                        r = await redeem(s, cfg, resident, RedemptionCreate(reward_id=reward.id, quantity=n))
                        redemptions.append(r.id)
                        # Spending never makes a balance negative (only clawbacks and deductions do).
                        assert (await statements.points_of(s, community, RESIDENT)).balance >= 0
                    elif op in ("capture", "release") and redemptions:
                        target = redemptions[n % len(redemptions)]
                        if op == "capture":
                            await capture_redemption(s, community, target)
                        else:
                            await release_redemption(s, community, target, "test")
                    elif op == "expire":
                        await accounts.expire_due_lots(s, now=datetime.now(UTC) + timedelta(days=2))
                    elif op == "reverse" and transfers:
                        await earning.reverse_source(
                            s, community=community, source_ref=transfers[n % len(transfers)], reason="更正"
                        )
                except (problems.InsufficientPoints, problems.RedemptionNotOpen):
                    pass
            await check(maker, community)
    finally:
        await engine.dispose()


async def check(maker: Any, community: str) -> None:
    async with maker() as s, s.begin():
        acct = (
            await s.execute(select(Account).where(Account.community == community, Account.resident_id == RESIDENT))
        ).scalar_one_or_none()
        live = (
            await s.execute(
                select(func.coalesce(func.sum(Lot.remaining), 0)).where(Lot.community == community, Lot.resident_id == RESIDENT)
            )
        ).scalar_one()
        negative_lots = (
            await s.execute(select(func.count()).select_from(Lot).where(Lot.community == community, Lot.remaining < 0))
        ).scalar_one()
        by_kind = dict(
            (
                await s.execute(
                    select(Entry.kind, func.sum(Entry.delta)).where(Entry.community == community).group_by(Entry.kind)
                )
            ).all()
        )
        reserved = (
            await s.execute(
                select(func.coalesce(func.sum(Redemption.points), 0)).where(
                    Redemption.community == community, Redemption.status == "reserved"
                )
            )
        ).scalar_one()
        budget = (await s.execute(select(Budget).where(Budget.community == community))).scalar_one()
    balance = acct.balance if acct else 0
    debt = acct.debt if acct else 0
    assert balance == live - debt, (balance, live, debt)
    assert balance == sum(by_kind.values())
    assert negative_lots == 0
    assert (acct.reserved if acct else 0) == reserved
    assert budget.remaining >= 0
    assert budget.remaining + budget.granted - budget.clawed_back == budget.funded
    # The budget's figures agree with the statement: what it granted is what residents were credited.
    assert budget.granted == (by_kind.get("grant") or 0) + (by_kind.get("award") or 0)
    assert budget.clawed_back == -(by_kind.get("reversal") or 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sequence=ops)
def test_random_sequences_keep_balance_equal_to_live_lots_and_the_budget_balanced(database_url: str, sequence: list[Op]) -> None:
    run_in_thread(run_sequence(database_url, sequence))
