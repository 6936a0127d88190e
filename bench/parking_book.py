"""Bookings per second with conflicts, beside raw SQL inserts into the same constrained table.

100 spots with one window each; 2,000 booking attempts at 50 at a time, each for one of 4 slots of a
random spot, so most attempts conflict. The figure is attempts/s through POST /bookings (window lock,
containment check, exclusion constraint); the baseline is plain INSERTs of the same attempts into
`bookings` on asyncpg (the exclusion constraint alone decides), at the same concurrency.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.harness import bench_stack, record
from services.kit.db import plain_url
from services.parking.app import create_app
from services.parking.settings import Settings
from tests.support.harness import run_service

SPOTS, ATTEMPTS, CONCURRENCY = 100, 2_000, 50
H = timedelta(hours=1)


async def main() -> None:
    async with bench_stack() as stack:
        community = "bench-community"
        async with run_service(stack, "parking", create_app, Settings, db_pool_size=CONCURRENCY) as svc:
            steward = stack.auth(str(uuid.uuid4()), "steward", community=community)
            base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
            spots = []
            for i in range(SPOTS):
                r = await svc.client.post(
                    "/spots", json={"kind": "public", "code": f"P{i:03d}", "location": "x"}, headers=steward
                )
                spots.append(r.json()["id"])
                await svc.client.post(
                    f"/spots/{spots[-1]}/windows",
                    headers=steward,
                    json={
                        "kind": "one_off",
                        "starts_at": base.isoformat(),
                        "ends_at": (base + 4 * H).isoformat(),
                        "price_fen_per_30min": 300,
                    },
                )
            rng = random.Random(3)
            attempts = [(rng.choice(spots), base + rng.randrange(4) * H) for _ in range(ATTEMPTS)]
            sem = asyncio.Semaphore(CONCURRENCY)
            headers = stack.auth(str(uuid.uuid4()), "resident", community=community)

            async def book(spot: str, start: datetime) -> int:
                async with sem:
                    r = await svc.client.post(
                        "/bookings",
                        headers=headers,
                        json={
                            "spot_id": spot,
                            "starts_at": start.isoformat(),
                            "ends_at": (start + H).isoformat(),
                            "plate": "浙K12345",
                        },
                    )
                    return r.status_code

            t = time.perf_counter()
            codes = await asyncio.gather(*(book(s, st) for s, st in attempts))
            api_rate = ATTEMPTS / (time.perf_counter() - t)
            api_ok = codes.count(201)
            assert api_ok == len(set(attempts)) and codes.count(409) == ATTEMPTS - api_ok, set(codes)

            # Baseline: the same attempts as raw INSERTs into the same table, on fresh slots a day later.
            pool = await asyncpg.create_pool(plain_url(svc.database_url), min_size=CONCURRENCY, max_size=CONCURRENCY)
            now = datetime.now(UTC)

            async def insert(spot: str, start: datetime) -> bool:
                start += timedelta(days=1)
                try:
                    await pool.execute(
                        "INSERT INTO bookings (id, community, spot_id, kind, plate, visitor, starts_at, ends_at,"
                        " block_ends_at, status, price_fen_per_30min, fee_fen, paid_fen, refunded_fen, overstay_fen,"
                        " owner_share_fen, property_share_fen, platform_share_fen, created_at, updated_at)"
                        " VALUES ($1, $2, $3, 'booking', '浙K12345', false, $4, $5, $5, 'held', 300, 600,"
                        " 0, 0, 0, 0, 0, 0, $6, $6)",
                        uuid.uuid4(),
                        community,
                        uuid.UUID(spot),
                        start,
                        start + H,
                        now,
                    )
                    return True
                except asyncpg.ExclusionViolationError:
                    return False

            t = time.perf_counter()
            ok = await asyncio.gather(*(insert(s, st) for s, st in attempts))
            raw_rate = ATTEMPTS / (time.perf_counter() - t)
            await pool.close()
            assert sum(ok) == len(set(attempts))
        record(
            "parking_book_rate",
            api_rate,
            "attempts/s",
            "raw SQL insert",
            raw_rate,
            higher_is_better=True,
            extra={"attempts": ATTEMPTS, "succeeded": api_ok, "conflicts": ATTEMPTS - api_ok, "concurrency": CONCURRENCY},
        )


if __name__ == "__main__":
    asyncio.run(main())
