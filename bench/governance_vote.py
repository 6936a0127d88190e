"""Ballots per second in a burst, and the cost of the tally, for a 10,000-unit owners' decision.

10,000 units (areas 60-150 m², some buyers with two units, 200 unsold units of the developer), one
owner each, an owners' decision opened on that roll. Baselines, same run, same database server:
- for ballots: raw asyncpg single-row INSERTs of the same ballots into a table with the same
  one-ballot unique key, the same number in flight;
- for the tally: one bare grouped sum (option, count, area) over the same ballots joined to the roll;
  each figure is the best of three decisions with the same roll and ballots.

Two figures:
- `governance_vote` (target >= 0.5 x raw): `ballots.cast` called directly, 40 in flight, each with
  a session as a route gets it, with every check it makes (decision open, option, voter on the
  frozen roll) and every write (ballot with receipt, `ballot.cast.v1` outbox row), all in one
  `gov_cast_ballot` call; the calls that find the cast lanes busy go in groups, one statement each
  (services/governance/ballot_groups.py), as concurrent requests' ballots would. Beside the
  ratio, which a loaded machine bends, it reports the CPU each side costs per ballot: the database's
  (the measured connections' backends, from /proc/<pid>/schedstat) and this process's;
- `governance_vote_tally` (target <= 3 x the grouped sum), timed once the relay has sent the burst's
  events: closing the decision (`closing.close_due`:
  the due decision locked, the grouped count over the frozen roll, the integer rules, the result,
  the event, the commit).

    .venv/bin/python -m bench.governance_vote
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from bench.harness import bench_stack, record, summary_ms
from services.governance import ballots, closing, decisions
from services.governance.app import create_app
from services.governance.decision_schemas import BallotCreate, DecisionCreate
from services.governance.settings import Settings
from services.governance.tally import Kind
from services.kit.auth import Principal
from services.kit.db import make_engine, make_sessionmaker, plain_url
from tests.support.harness import run_service

# GOVERNANCE_BENCH_UNITS shrinks the run on a loaded machine (the figure is for 10,000).
UNITS = int(os.environ.get("GOVERNANCE_BENCH_UNITS", "10000"))
IN_FLIGHT = 40
COMMUNITY = "bench-community"
OPTIONS = ("yes", "no", "abstain")


async def seed_roll(conn: asyncpg.Connection) -> None:
    rng = random.Random(7)
    units = []
    for i in range(UNITS):
        sold = i >= 200
        buyer = f"buyer-{i // 2}" if sold and i % 10 == 0 else None
        units.append((COMMUNITY, f"h{i}", rng.randrange(6000, 15000), sold, buyer))
    await conn.copy_records_to_table(
        "gov_roll_units", records=units, columns=["community", "household_id", "area", "sold", "buyer_key"]
    )
    residents = [(COMMUNITY, f"o{i}", f"h{i}", True) for i in range(UNITS)]
    await conn.copy_records_to_table(
        "gov_residents", records=residents, columns=["community", "resident_id", "household_id", "owner"]
    )


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time the processes have used: /proc/<pid>/schedstat's nanoseconds on CPU, or, where the
    kernel keeps no schedstat, user + system ticks from /proc/<pid>/stat."""
    total = 0.0
    for pid in pids:
        schedstat = Path(f"/proc/{pid}/schedstat")
        if schedstat.exists():
            total += int(schedstat.read_text().split()[0]) / 1e9
        else:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """CPU per operation of the database backends serving the measured connections, and of this
    process (which also runs the service's jobs and relay, as a replica does), over a timed burst."""

    def __init__(self, backend_pids: list[int]) -> None:
        self.backend_pids = backend_pids
        self.db_s = cpu_seconds(backend_pids)
        self.own_s = time.process_time()

    def per_op_us(self, ops: int) -> dict[str, float]:
        db = (cpu_seconds(self.backend_pids) - self.db_s) / ops * 1e6
        own = (time.process_time() - self.own_s) / ops * 1e6
        return {"db_cpu_us": round(db, 1), "python_cpu_us": round(own, 1)}


async def pool_backend_pids(pool: asyncpg.Pool) -> list[int]:
    """Every connection of the pool (all opened: min_size = max_size), by its server process."""
    held = [await pool.acquire() for _ in range(IN_FLIGHT)]
    pids = [conn.get_server_pid() for conn in held]
    for conn in held:
        await pool.release(conn)
    return pids


async def engine_backend_pids(engine: AsyncEngine) -> list[int]:
    """Open the engine's pool to its size before the burst, and name the server process of each."""
    held = [await engine.raw_connection() for _ in range(IN_FLIGHT)]
    pids = []
    for pooled in held:
        driver = pooled.driver_connection
        assert driver is not None
        pids.append(driver.get_server_pid())
    for pooled in held:
        await greenlet_spawn(pooled.close)
    return pids


async def raw_ballots(conn_url: str, picks: list[tuple[int, str]]) -> tuple[float, dict[str, float]]:
    pool = await asyncpg.create_pool(conn_url, min_size=IN_FLIGHT, max_size=IN_FLIGHT)
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE raw_ballots (id bigserial PRIMARY KEY, decision_id int, voter_key text, option text, receipt text,"
            " UNIQUE (decision_id, voter_key))"
        )
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def insert(i: int, option: str) -> None:
        async with gate, pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO raw_ballots (decision_id, voter_key, option, receipt) VALUES (1, $1, $2, md5($1))",
                f"unit:h{i}",
                option,
            )

    meter = CpuMeter(await pool_backend_pids(pool))
    start = time.perf_counter()
    await asyncio.gather(*(insert(i, o) for i, o in picks))
    rate = len(picks) / (time.perf_counter() - start)
    cpu = meter.per_op_us(len(picks))
    await pool.close()
    return rate, cpu


async def relayed(conn: asyncpg.Connection, timeout_s: float = 120.0) -> None:
    """Wait until the relay has sent every outbox row (the burst's `ballot.cast.v1` events)."""
    deadline = time.monotonic() + timeout_s
    while await conn.fetchval("SELECT count(*) FROM kit_outbox WHERE sent_at IS NULL AND set_aside_at IS NULL"):
        if time.monotonic() > deadline:
            raise TimeoutError("the relay did not send the burst's events")
        await asyncio.sleep(0.1)


async def grouped_sum(conn: asyncpg.Connection, decision_id: str) -> float:
    start = time.perf_counter()
    await conn.fetch(
        "SELECT b.option, count(*), sum(u.area) FROM gov_ballots b JOIN gov_decision_units u"
        " ON u.decision_id = b.decision_id AND u.household_id = b.household_id WHERE b.decision_id = $1 GROUP BY b.option",
        decision_id,
    )
    return time.perf_counter() - start


async def main() -> None:
    rng = random.Random(4)
    picks = [(i, rng.choice(OPTIONS)) for i in range(200, UNITS)]  # every owner but the developer
    async with bench_stack() as stack:
        async with run_service(stack, "governance", create_app, Settings, log_level="WARNING", db_pool_size=IN_FLIGHT) as svc:
            url = plain_url(svc.database_url)
            conn = await asyncpg.connect(url)
            await seed_roll(conn)
            raw_rate, raw_cpu = await raw_ballots(url, picks)

            engine = make_engine(svc.database_url, pool_size=IN_FLIGHT)
            maker = make_sessionmaker(engine)
            worker = Principal("bench-worker", frozenset({"community_worker"}), COMMUNITY)
            now = datetime.now(UTC)
            draft = DecisionCreate(
                kind=Kind.owners_ordinary,
                question="bench",
                opens_at=now - timedelta(minutes=1),
                closes_at=now + timedelta(hours=1),
            )
            async with maker() as session:
                decision = await decisions.draft(session, worker, draft)
            assert decision.id is not None
            async with maker() as session:
                await decisions.open_decision(session, worker, decision.id)
            gate = asyncio.Semaphore(IN_FLIGHT)
            latencies: list[float] = []
            # What a request brings to the use case, built before the burst as the raw loop's rows are:
            # the caller (the token's principal) and the validated body.
            bodies = {option: BallotCreate(option=option) for option in OPTIONS}
            casts = [(Principal(f"o{i}", frozenset({"resident"}), COMMUNITY), bodies[o]) for i, o in picks]

            async def cast(voter: Principal, body: BallotCreate) -> None:
                async with gate:
                    # A session as the route gets it (`kit.db.get_session`): made per request and not
                    # closed, since with autobegin off it holds no connection outside a transaction.
                    session = maker()
                    t0 = time.perf_counter()
                    await ballots.cast(session, voter, decision.id, body)  # type: ignore[arg-type]
                    latencies.append(time.perf_counter() - t0)

            meter = CpuMeter(await engine_backend_pids(engine))
            start = time.perf_counter()
            await asyncio.gather(*(cast(voter, body) for voter, body in casts))
            vote_rate = len(picks) / (time.perf_counter() - start)
            vote_cpu = meter.per_op_us(len(picks))
            # The close is timed once the burst's events are relayed, as the closing job (at the
            # decision's closing time, not amid its ballots) finds the service: timed while the relay
            # still sent 9,800 events, it measured the machine's contention more than the close.
            await relayed(conn)

            # The close is timed as the grouped sum is, best of three, on three decisions with the same
            # roll and ballots (the other two get copies of the burst's ballots), so both figures are
            # taken with warm caches, as a closing job that runs every 15 s has them.
            copies = []
            for _ in range(2):
                async with maker() as session:
                    other = await decisions.draft(session, worker, draft)
                assert other.id is not None
                async with maker() as session:
                    await decisions.open_decision(session, worker, other.id)
                await conn.execute(
                    "INSERT INTO gov_ballots (decision_id, community, voter_key, household_id, option, channel, cast_by,"
                    " receipt) SELECT $1, community, voter_key, household_id, option, channel, cast_by, md5(random()::text)"
                    " FROM gov_ballots WHERE decision_id = $2",
                    other.id,
                    decision.id,
                )
                copies.append(other.id)
            bare: list[float] = []
            closes: list[float] = []
            for decision_id in (decision.id, *copies):
                bare.append(await grouped_sum(conn, str(decision_id)))
                await conn.execute(
                    "UPDATE gov_decisions SET closes_at = now() - interval '1 second', opens_at = now() - interval '2 seconds'"
                    " WHERE id = $1",
                    decision_id,
                )
                async with maker() as session:
                    t0 = time.perf_counter()
                    closed = await closing.close_due(session)
                    closes.append(time.perf_counter() - t0)
                assert closed == 1
            bare_s, tally_s = min(bare), min(closes)
            await conn.close()
            await engine.dispose()
        shape = {"units": UNITS, "ballots": len(picks), "in_flight": IN_FLIGHT}
        cpu = {
            "db_cpu_us_per_ballot": vote_cpu["db_cpu_us"],
            "db_cpu_us_per_raw_insert": raw_cpu["db_cpu_us"],
            "db_cpu_ratio": round(vote_cpu["db_cpu_us"] / raw_cpu["db_cpu_us"], 3),
            "python_cpu_us_per_ballot": vote_cpu["python_cpu_us"],
            "python_cpu_us_per_raw_insert": raw_cpu["python_cpu_us"],
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        record(
            "governance_vote",
            vote_rate,
            "ballots/s",
            "raw asyncpg insert",
            raw_rate,
            higher_is_better=True,
            target=">= 0.5 x raw",
            extra={**shape, **summary_ms(latencies), **cpu},
        )
        record(
            "governance_vote_tally",
            tally_s * 1000,
            "ms",
            "bare grouped sum",
            bare_s * 1000,
            higher_is_better=False,
            target="<= 3 x the grouped sum",
            extra=shape,
        )


if __name__ == "__main__":
    asyncio.run(main())
