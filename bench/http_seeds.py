"""The data `bench/http_paths.py` measures its routes on, loaded into each service's database before
its servers take load: by SQL (or the service's own use cases where the rows need its ledger), not
through the routes being measured."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from sqlalchemy import text

from bench import parking_search
from services.kit.db import plain_url

PASSBOOK_TRANSFERS = 60


async def seed_timebank(url: str, service_url: str, token: str, community: str, resident: str) -> None:
    """The resident joins as elder and volunteer; the pool pays them PASSBOOK_TRANSFERS services."""
    from services.kit.auth import Principal
    from services.kit.db import make_engine, make_sessionmaker
    from services.timebank import batches, ledger, transfers
    from services.timebank.schemas import BatchIn, FundingIn

    async with httpx.AsyncClient(base_url=service_url, headers={"Authorization": f"Bearer {token}"}) as c:
        (await c.post("/members", json={"volunteer": True, "elder": True})).raise_for_status()
    engine = make_engine(url, pool_size=2)
    worker = Principal(subject="bench-worker", roles=frozenset({"community_worker"}), community=community)
    async with make_sessionmaker(engine)() as s:
        async with s.begin():
            await (await s.connection()).execute(text("UPDATE tb_members SET birth_date = '1950-01-01'"))
        await transfers.fund_pool(s, worker, FundingIn(id=uuid.uuid4(), minutes=100_000, reason="bench"))
        account = str(ledger.member_account_id(community, resident))
        pool = str(ledger.pool_account_id(community))
        legs = [
            {
                "id": str(uuid.uuid4()),
                "kind": "service",
                "debit_account_id": pool,
                "credit_account_id": account,
                "minutes": 30,
                "service_type": "other",
                "elder_id": resident,
            }
            for _ in range(PASSBOOK_TRANSFERS)
        ]
        await batches.post_batch(s, worker, BatchIn.model_validate({"transfers": legs}))
    await engine.dispose()


async def load_tickets(url: str, community: str, stewards: list[str], tickets: int) -> None:
    """`tickets` tickets straight into the table, open and finished ones, spread over `stewards`
    (bench/property_queue.py's and bench/http_paths.py's steward queues)."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute(
            """
            INSERT INTO tickets (id, community, resident_id, household_id, building_id, category, quantity,
                description, priority, status, assignee_id, payment_status, created_at, response_due_at,
                resolution_due_at, due_at, paused_minutes, hurry_count)
            SELECT gen_random_uuid()::text, $1, 'r', 'h', 'b', 'repair', 1, 'x', 'normal',
                (ARRAY['assigned','accepted','in_progress','completed','closed'])[1 + (g / $3) % 5],
                ($2::text[])[1 + g % $3], 'none', now() - (g || ' minutes')::interval,
                now() + ((g * 7919) % 100000 || ' minutes')::interval,
                now() + ((g * 7919) % 100000 + 600 || ' minutes')::interval,
                now() + ((g * 7919) % 100000 || ' minutes')::interval, 0, 0
            FROM generate_series(1, $4) AS g""",
            community,
            stewards,
            len(stewards),
            tickets,
        )
        await conn.execute("ANALYZE tickets")
    finally:
        await conn.close()


async def seed_submitters(url: str, community: str, residents: int) -> list[str]:
    """A building whose steward is on duty round the clock (and a backup), its households and
    `residents` registered residents, one per household: the ids the filing tokens name."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO staff (id, community, name, username, roles) VALUES ($1, $2, $3, $4, ARRAY['steward'])",
                [(f"bench-steward-{n}", community, f"管家{n}", f"steward.{n}") for n in (1, 2)],
            )
            await conn.execute(
                "INSERT INTO buildings (id, community, code, name, steward_id, backup_steward_id) "
                "VALUES ('bench-building', $1, 'B1', '1幢', 'bench-steward-1', 'bench-steward-2')",
                community,
            )
            await conn.executemany(
                "INSERT INTO roster_shifts (staff_id, weekday, start_minute, end_minute) VALUES ($1, $2, 0, 1440)",
                [(f"bench-steward-{n}", d) for n in (1, 2) for d in range(7)],
            )
            ids = [f"bench-resident-{n}" for n in range(residents)]
            await conn.executemany(
                "INSERT INTO households (id, community, building_id, unit) VALUES ($1, $2, 'bench-building', $3)",
                [(f"bench-household-{n}", community, f"{n + 101}") for n in range(residents)],
            )
            await conn.executemany(
                "INSERT INTO residents (id, community, household_id, name, phone, roles, owner) "
                "VALUES ($1, $2, $3, $4, $5, ARRAY['resident'], true)",
                [(i, community, f"bench-household-{n}", f"住户{n}", f"170{n:08d}") for n, i in enumerate(ids)],
            )
        await conn.execute("ANALYZE")
        return ids
    finally:
        await conn.close()


async def seed_points(url: str, community: str, resident: str) -> None:
    """The resident's points account and a few lots, one expiring within 30 days."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute("INSERT INTO gov_accounts (community, resident_id, balance) VALUES ($1, $2, 300)", community, resident)
        await conn.execute(
            "INSERT INTO gov_lots (community, resident_id, points, remaining, expires_at) "
            "SELECT $1, $2, 100, 100, now() + (g * 20 || ' days')::interval FROM generate_series(1, 3) AS g",
            community,
            resident,
        )
    finally:
        await conn.close()


def free_spot_window() -> tuple[datetime, datetime]:
    """The first day of the loaded windows (they start tomorrow's first hour and last 30 days)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return base, base + timedelta(days=30)


async def load_spots(url: str) -> datetime:
    """bench/parking_search.py's community (5,000 verified spots, each with a 30-day open window
    and 20 hour-long bookings): returns the windows' start."""
    base, _ = free_spot_window()
    await parking_search.load(url, base)
    return base
