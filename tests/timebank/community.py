"""Test data for the time bank, made through its HTTP API, and the ledger's invariants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.timebank import ledger
from services.timebank.audit import audit_ledger
from tests.support.harness import RunningService
from tests.support.stack import TestStack

COMMUNITY = "test-community"
WORKER = "worker-1"


@dataclass
class Community:
    stack: TestStack
    svc: RunningService
    name: str = COMMUNITY
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.svc.client

    def h(self, who: str) -> dict[str, str]:
        roles = ("community_worker",) if who == WORKER else self.roles.get(who, ("resident",))
        return self.stack.auth(who, *roles, community=self.name)

    async def enrol(
        self, who: str, *, volunteer: bool = False, elder: bool = False, birth: date | None = None, priority: bool = False
    ) -> dict[str, Any]:
        r = await self.client.post("/members", json={"volunteer": volunteer, "elder": elder}, headers=self.h(who))
        assert r.status_code in (200, 201), r.text
        if birth is not None:
            r = await self.client.post(
                f"/members/{who}/verification",
                json={"birth_date": birth.isoformat(), "priority_elder": priority},
                headers=self.h(WORKER),
            )
            assert r.status_code == 200, r.text
        return dict(r.json())

    async def relatives(self, a: str, b: str) -> None:
        r = await self.client.post(f"/members/{a}/relatives", json={"relative_id": b, "relation": "子女"}, headers=self.h(WORKER))
        assert r.status_code == 201, r.text

    async def fund_pool(self, minutes: int) -> None:
        r = await self.client.post(
            "/transfers/funding",
            json={"id": str(uuid.uuid4()), "minutes": minutes, "reason": "test funding"},
            headers=self.h(WORKER),
        )
        assert r.status_code == 201, r.text

    async def grant(self, volunteer: str, minutes: int, elder: str) -> None:
        """Put minutes on a member's account: pool funding, then a recorded service from the pool."""
        await self.fund_pool(minutes)
        r = await self.client.post(
            "/transfers/batch",
            json={
                "transfers": [
                    {
                        "id": str(uuid.uuid4()),
                        "kind": "service",
                        "debit_account_id": str(self.pool_id),
                        "credit_account_id": str(self.account(volunteer)),
                        "minutes": minutes,
                        "service_type": "companionship",
                        "elder_id": elder,
                    }
                ]
            },
            headers=self.h(WORKER),
        )
        assert r.status_code == 201, r.text

    @property
    def pool_id(self) -> uuid.UUID:
        return ledger.pool_account_id(self.name)

    def account(self, member: str) -> uuid.UUID:
        return ledger.member_account_id(self.name, member)

    async def balance(self, member: str) -> dict[str, int]:
        r = await self.client.get(f"/members/{member}", headers=self.h(WORKER))
        assert r.status_code == 200, r.text
        return dict(r.json()["balance"])

    async def care_request(self, elder: str, *, by: str | None = None, minutes: int = 60) -> str:
        r = await self.client.post(
            "/care-requests",
            json={
                "elder_id": elder,
                "service_type": "meal",
                "starts_at": datetime.now(UTC).isoformat(),
                "place": "1幢101",
                "minutes_estimated": minutes,
            },
            headers=self.h(by or elder),
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def accept(self, rid: str, volunteer: str, *, at: datetime | None = None) -> None:
        """The volunteer accepts; `at` moves the acceptance back, as if the request had been
        accepted then, so a test can check in and out in the past (a check-in is never before it)."""
        r = await self.client.post(f"/care-requests/{rid}/accept", headers=self.h(volunteer))
        assert r.status_code == 200, r.text
        if at is not None:
            async with self.svc.state.sessionmaker() as session, session.begin():
                update = "UPDATE tb_care_requests SET accepted_at = :at WHERE id = :id"
                await session.execute(text(update), {"at": at, "id": uuid.UUID(rid)})

    async def serve(self, elder: str, volunteer: str, minutes: int) -> tuple[str, str]:
        """Post, accept, check in and out: returns (care request id, pending transfer id)."""
        rid = await self.care_request(elder)
        start = datetime.now(UTC) - timedelta(minutes=minutes + 5)
        await self.accept(rid, volunteer, at=start)
        r = await self.client.post(f"/care-requests/{rid}/check-in", json={"at": start.isoformat()}, headers=self.h(volunteer))
        assert r.status_code == 200, r.text
        pending = str(uuid.uuid4())
        r = await self.client.post(
            f"/care-requests/{rid}/check-out",
            json={"transfer_id": pending, "at": (start + timedelta(minutes=minutes, seconds=30)).isoformat()},
            headers=self.h(volunteer),
        )
        assert r.status_code == 201, r.text
        return rid, pending

    async def sql(self, query: str, **params: Any) -> list[Any]:
        async with self.svc.state.sessionmaker() as session, session.begin():
            return list((await session.execute(text(query), params)).all())


async def assert_ledger_invariants(sessionmaker: async_sessionmaker[AsyncSession], cap: int | None = None) -> None:
    """Double entry, totals that match the transfers and pending transfers resolved once (the
    service's own reconciliation, whose every check tests/timebank/test_audit.py shows failing on
    a broken ledger), and the balance limits, checked against the rows themselves."""
    async with sessionmaker() as session:
        result = await audit_ledger(session)
    assert result.reconciles, result.findings
    async with sessionmaker() as session, session.begin():
        run = session.execute
        negative = (
            await run(
                text(
                    "SELECT id FROM tb_accounts WHERE debits_must_not_exceed_credits "
                    "AND debits_posted + debits_pending > credits_posted"
                )
            )
        ).all()
        assert not negative
        if cap is not None:
            over = (
                await run(
                    text(
                        "SELECT id FROM tb_accounts WHERE kind = 'member' "
                        "AND credits_posted - debits_posted - debits_pending > :cap"
                    ),
                    {"cap": cap},
                )
            ).all()
            assert not over
