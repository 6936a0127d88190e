"""Free-spot search p99 for a community with 5,000 spots and 100,000 bookings, beside the raw SQL query.

Data is bulk-loaded with COPY (not the API). The figure is GET /free-spots through the service's full
ASGI stack (auth, validation, the use case); the baseline is the same SQL run directly on asyncpg.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.harness import bench_stack, record, summary_ms
from services.kit.db import plain_url
from services.parking import bookings
from services.parking.app import create_app
from services.parking.settings import Settings
from tests.support.harness import run_service

COMMUNITY = "bench-community"
SPOTS, BOOKINGS, QUERIES = 5_000, 100_000, 400


async def load(url: str, base: datetime) -> None:
    conn = await asyncpg.connect(plain_url(url))
    rng = random.Random(7)
    spots = [uuid.uuid4() for _ in range(SPOTS)]
    now = datetime.now(UTC)
    await conn.copy_records_to_table(
        "spots",
        columns=["id", "community", "kind", "owner_id", "code", "location", "size", "has_charger", "status", "created_at"],
        records=[
            (
                s,
                COMMUNITY,
                "private",
                str(uuid.uuid4()),
                f"S{i:05d}",
                "B1",
                rng.choice(["compact", "standard", "large"]),
                rng.random() < 0.2,
                "verified",
                now,
            )
            for i, s in enumerate(spots)
        ],
    )
    windows, occurrences, bookings = [], [], []
    for s in spots:
        w = uuid.uuid4()
        windows.append((w, COMMUNITY, s, "one_off", base, base + timedelta(days=30), 300, 0, "open", now))
        o = uuid.uuid4()
        occurrences.append((o, w, COMMUNITY, s, base, base + timedelta(days=30), 300, 0, "open"))
        # 20 non-overlapping bookings per spot, hour-long, at random hours of the 30 days.
        for h in sorted(rng.sample(range(30 * 24), BOOKINGS // SPOTS)):
            st = base + timedelta(hours=h)
            bookings.append(
                (
                    uuid.uuid4(),
                    COMMUNITY,
                    s,
                    o,
                    "booking",
                    str(uuid.uuid4()),
                    "浙K12345",
                    st,
                    st + timedelta(hours=1),
                    st + timedelta(hours=1),
                    "confirmed",
                    600,
                    1200,
                    now,
                    now,
                    False,
                    1200,
                    0,
                    0,
                    0,
                    0,
                    0,
                )
            )
    await conn.copy_records_to_table(
        "windows",
        columns=[
            "id",
            "community",
            "spot_id",
            "kind",
            "starts_at",
            "ends_at",
            "price_fen_per_30min",
            "buffer_minutes",
            "status",
            "created_at",
        ],
        records=windows,
    )
    await conn.copy_records_to_table(
        "window_occurrences",
        columns=[
            "id",
            "window_id",
            "community",
            "spot_id",
            "starts_at",
            "ends_at",
            "price_fen_per_30min",
            "buffer_minutes",
            "status",
        ],
        records=occurrences,
    )
    await conn.copy_records_to_table(
        "bookings",
        columns=[
            "id",
            "community",
            "spot_id",
            "occurrence_id",
            "kind",
            "booker_id",
            "plate",
            "starts_at",
            "ends_at",
            "block_ends_at",
            "status",
            "price_fen_per_30min",
            "fee_fen",
            "created_at",
            "updated_at",
            "visitor",
            "paid_fen",
            "refunded_fen",
            "overstay_fen",
            "owner_share_fen",
            "property_share_fen",
            "platform_share_fen",
        ],
        records=bookings,
    )
    await conn.execute("ANALYZE")
    await conn.close()


async def main() -> None:
    async with bench_stack() as stack:
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        url = await stack.fresh_database("parking")
        await load(url, base)
        rng = random.Random(11)
        ranges = [
            (base + timedelta(hours=rng.randrange(0, 29 * 24)), timedelta(hours=rng.choice([1, 2, 3]))) for _ in range(QUERIES)
        ]
        async with run_service(stack, "parking", create_app, Settings, database_url=url) as svc:
            headers = stack.auth(str(uuid.uuid4()), "resident", community=COMMUNITY)
            api: list[float] = []
            for i, (start, length) in enumerate(ranges):
                params = {"starts_at": start.isoformat(), "ends_at": (start + length).isoformat(), "limit": "20"}
                t = time.perf_counter()
                r = await svc.client.get("/free-spots", params=params, headers=headers)
                if i >= 20:  # warm-up excluded
                    api.append(time.perf_counter() - t)
                assert r.status_code == 200 and len(r.json()["items"]) == 20, r.text
        conn = await asyncpg.connect(plain_url(url))
        sql = (
            bookings.SEARCH_SQL.format(filters="")
            .replace(":community", "$1")
            .replace(":start", "$2")
            .replace(":end", "$3")
            .replace(":limit", "$4")
        )
        raw: list[float] = []
        for i, (start, length) in enumerate(ranges):
            t = time.perf_counter()
            rows = await conn.fetch(sql, COMMUNITY, start, start + length, 21)
            if i >= 20:
                raw.append(time.perf_counter() - t)
            assert len(rows) == 21
        await conn.close()
        api_s, raw_s = summary_ms(api), summary_ms(raw)
        record(
            "parking_search_p99",
            api_s["p99_ms"],
            "ms",
            "raw SQL p99",
            raw_s["p99_ms"],
            higher_is_better=False,
            target="p99 <= 30 ms",
            extra={"api": api_s, "raw_sql": raw_s, "spots": SPOTS, "bookings": BOOKINGS},
        )
        await stack.drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
