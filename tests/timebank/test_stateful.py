"""A Hypothesis state machine over the use cases, against the real database.

Random sequences of enrol, log (check in and out), confirm, dispute, expire, spend, give, donate,
fund, reverse and expire hours; after every step the ledger invariants are checked on the rows, and each
refusal is checked to happen exactly when the balances read just before said it must.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker
from services.kit.problems import Problem
from services.timebank import batches, care, community, hours_expiry, ledger, members, reports, resolution, transfers
from services.timebank.models import CARE
from services.timebank.problems import AlreadyResolved, InsufficientBalance, NotAVerifiedRelative
from services.timebank.schemas import (
    AgeVerification,
    BatchIn,
    CareRequestIn,
    CheckIn,
    CheckOut,
    CommunitySettingsIn,
    ConfirmIn,
    DisputeIn,
    DonationIn,
    FundingIn,
    GiftIn,
    MemberEnrol,
    RelativeIn,
    ReversalIn,
    SpendIn,
)
from tests.support.stack import TestStack
from tests.timebank.community import assert_ledger_invariants

T = TypeVar("T")
CAP = 400
MEMBERS = ["e1", "e2", "v1", "v2"]
ELDERS = {"e1": date(1950, 1, 1), "e2": date(1945, 1, 1)}  # e2 is a priority elder, served by the pool
minutes_st = st.integers(1, 150)


class Env:
    loop: asyncio.AbstractEventLoop
    maker: async_sessionmaker[AsyncSession]


ENV = Env()


def run(coro: Coroutine[Any, Any, T]) -> T:
    return ENV.loop.run_until_complete(coro)


class TimebankMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.community = f"c-{uuid.uuid4().hex[:10]}"
        self.pendings: list[str] = []
        self.posted: list[str] = []
        self.enrolled: set[str] = set()

    def who(self, subject: str, *roles: str) -> Principal:
        return Principal(subject=subject, roles=frozenset(roles or ("resident",)), community=self.community)

    @property
    def worker(self) -> Principal:
        return self.who("worker", "community_worker")

    async def call(self, fn: Any, *args: Any) -> Any:
        async with ENV.maker() as session:
            return await fn(session, *args)

    async def accepted_at(self, request_id: uuid.UUID, at: datetime) -> None:
        """Move an acceptance back, as if it had been made then: a check-in is never before it."""
        async with ENV.maker() as session, session.begin():
            await session.execute(update(CARE).where(CARE.c.id == request_id).values(accepted_at=at))

    async def available(self, member: str) -> int:
        async with ENV.maker() as session, session.begin():
            row = (
                await session.execute(
                    select(ledger.ACCOUNTS).where(ledger.ACCOUNTS.c.id == ledger.member_account_id(self.community, member))
                )
            ).one()
            return int(row.credits_posted - row.debits_posted - row.debits_pending)

    @initialize()
    def setup(self) -> None:
        async def go() -> None:
            await self.call(
                community.update_settings,
                self.community,
                CommunitySettingsIn(storage_cap_minutes=CAP, hours_expire=True, hours_valid_months=12),
            )
            for m in MEMBERS:
                await self.call(members.enrol, self.who(m), MemberEnrol(volunteer=m.startswith("v"), elder=m.startswith("e")))
            for m, birth in ELDERS.items():
                await self.call(members.verify_age, self.worker, m, AgeVerification(birth_date=birth, priority_elder=m == "e2"))
            await self.call(members.verify_relative, self.worker, "v2", RelativeIn(relative_id="e1", relation="子女"))
            await self.call(transfers.fund_pool, self.worker, FundingIn(id=uuid.uuid4(), minutes=600, reason="seed"))
            await self.call(
                batches.post_batch,
                self.worker,
                BatchIn.model_validate(
                    {
                        "transfers": [
                            {
                                "id": str(uuid.uuid4()),
                                "kind": "service",
                                "debit_account_id": str(ledger.pool_account_id(self.community)),
                                "credit_account_id": str(ledger.member_account_id(self.community, "e1")),
                                "minutes": 300,
                                "service_type": "other",
                                "elder_id": "e1",
                            }
                        ]
                    }
                ),
            )

        run(go())

    @rule(elder=st.sampled_from(["e1", "e2"]), volunteer=st.sampled_from(["v1", "v2"]), minutes=minutes_st)
    def log(self, elder: str, volunteer: str, minutes: int) -> None:
        async def go() -> None:
            req = await self.call(
                care.post_care_request,
                self.who(elder),
                CareRequestIn(service_type="meal", starts_at=datetime.now(UTC), place="home", minutes_estimated=60),
            )
            await self.call(care.accept_care_request, self.who(volunteer), req.id)
            start = datetime.now(UTC) - timedelta(minutes=minutes + 1)
            await self.accepted_at(req.id, start)
            await self.call(care.check_in, self.who(volunteer), req.id, CheckIn(at=start))
            payer_available = (await self.pool_available()) if elder == "e2" else await self.available(elder)
            tid = uuid.uuid4()
            try:
                await self.call(
                    care.check_out,
                    self.who(volunteer),
                    req.id,
                    CheckOut(transfer_id=tid, at=start + timedelta(minutes=minutes)),
                )
            except InsufficientBalance:
                assert payer_available < minutes
                return
            assert payer_available >= minutes
            self.pendings.append(str(tid))

        run(go())

    async def pool_available(self) -> int:
        async with ENV.maker() as session, session.begin():
            row = await reports.read_account(session, ledger.pool_account_id(self.community))
            return int(row.credits_posted - row.debits_posted - row.debits_pending)

    @precondition(lambda self: bool(self.pendings))
    @rule(data=st.data(), fewer=st.booleans())
    def confirm(self, data: st.DataObject, fewer: bool) -> None:
        pending = data.draw(st.sampled_from(self.pendings))

        async def go() -> None:
            try:
                posted = await self.call(
                    resolution.confirm, self.worker, uuid.UUID(pending), ConfirmIn(id=uuid.uuid4(), minutes=1 if fewer else None)
                )
            except AlreadyResolved:
                return
            self.posted.append(str(posted.id))

        run(go())
        self.pendings.remove(pending)

    @precondition(lambda self: bool(self.pendings))
    @rule(data=st.data())
    def dispute(self, data: st.DataObject) -> None:
        pending = data.draw(st.sampled_from(self.pendings))
        run(self.call(resolution.dispute, self.worker, uuid.UUID(pending), DisputeIn(id=uuid.uuid4(), reason="not done")))
        self.pendings.remove(pending)

    @rule()
    def expire(self) -> None:
        async def go() -> int:
            async with ENV.maker() as session:
                return await resolution.expire_pending(session, limit=10_000, now=datetime.now(UTC) + timedelta(days=30))

        run(go())
        self.pendings.clear()  # other machines' communities may expire too: they are checked on their own

    @rule()
    def expire_hours(self) -> None:
        """Run at a time when every credit so far is older than the 12-month period: whatever the
        members hold that is not promised to a volunteer expires, and nothing more."""

        async def go() -> None:
            async with ENV.maker() as session:
                await hours_expiry.expire_hours(session, limit=10_000, now=datetime.now(UTC) + timedelta(days=400))
            for member in MEMBERS:
                assert await self.available(member) == 0

        run(go())

    @rule(member=st.sampled_from(MEMBERS), minutes=minutes_st)
    def spend(self, member: str, minutes: int) -> None:
        async def go() -> None:
            before = await self.available(member)
            try:
                posted = await self.call(
                    transfers.spend, self.who(member), SpendIn(id=uuid.uuid4(), minutes=minutes, service_type="meal")
                )
            except InsufficientBalance:
                assert before < minutes
                return
            except Problem as problem:
                assert member not in ELDERS, problem  # only the unverified volunteers are refused by age
                return
            assert member in ELDERS and before >= minutes
            self.posted.append(str(posted.id))

        run(go())

    @rule(giver=st.sampled_from(MEMBERS), receiver=st.sampled_from(MEMBERS), minutes=minutes_st)
    def give(self, giver: str, receiver: str, minutes: int) -> None:
        async def go() -> None:
            before = await self.available(giver)
            related = {giver, receiver} == {"v2", "e1"}
            try:
                posted = await self.call(
                    transfers.gift, self.who(giver), GiftIn(id=uuid.uuid4(), to_member_id=receiver, minutes=minutes)
                )
            except NotAVerifiedRelative:
                assert not related
                return
            except InsufficientBalance:
                assert related and before < minutes
                return
            assert related and before >= minutes
            self.posted.append(str(posted.id))

        run(go())

    @rule(member=st.sampled_from(MEMBERS), minutes=minutes_st)
    def donate(self, member: str, minutes: int) -> None:
        async def go() -> None:
            before = await self.available(member)
            try:
                posted = await self.call(transfers.donate, self.who(member), DonationIn(id=uuid.uuid4(), minutes=minutes))
            except InsufficientBalance:
                assert before < minutes
                return
            assert before >= minutes
            self.posted.append(str(posted.id))

        run(go())

    @precondition(lambda self: bool(self.posted))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        original = data.draw(st.sampled_from(self.posted))

        async def go() -> None:
            try:
                await self.call(
                    transfers.reverse, self.worker, uuid.UUID(original), ReversalIn(id=uuid.uuid4(), reason="correction")
                )
            except InsufficientBalance:
                return  # the credited side already spent the minutes: the reversal must wait
            self.posted.remove(original)

        run(go())

    @invariant()
    def ledger_holds(self) -> None:
        run(assert_ledger_invariants(ENV.maker, cap=CAP))


def test_random_use_case_sequences_keep_the_ledger_sound(stack: TestStack) -> None:
    ENV.loop = asyncio.new_event_loop()
    try:
        url = ENV.loop.run_until_complete(stack.fresh_database("timebank"))
        engine = make_engine(url, pool_size=5)
        ENV.maker = make_sessionmaker(engine)
        try:
            run_state_machine_as_test(
                TimebankMachine,
                settings=settings(
                    max_examples=int(os.environ.get("TB_STATEFUL_EXAMPLES", "12")),
                    stateful_step_count=20,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            ENV.loop.run_until_complete(engine.dispose())
            ENV.loop.run_until_complete(stack.drop_database(url))
    finally:
        ENV.loop.close()
