"""The time bank's database functions: the migrated database holds each `sql/<function>.sql` file,
and the rules written in both Python and SQL give the same answer for the same cases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.timebank import domain
from services.timebank.problems import InsufficientBalance
from tests.support.sqlfiles import mismatched_functions
from tests.support.stack import TestStack


@pytest.fixture
async def db(stack: TestStack) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    url = await stack.fresh_database("timebank")
    conn = await asyncpg.connect(url)
    try:
        yield url, conn
    finally:
        await conn.close()
        await stack.drop_database(url)


async def test_the_migrated_database_holds_every_function_as_its_file_says(db: tuple[str, asyncpg.Connection]) -> None:
    url, conn = db
    assert await mismatched_functions(url, "timebank") == {}
    # No time-bank function writes the outbox's columns itself: the kit's writer does.
    bodies = await conn.fetch("SELECT proname, prosrc FROM pg_proc WHERE proname LIKE 'tb\\_%'")
    assert {b["proname"] for b in bodies} >= {"tb_confirm_service", "tb_lock_transfer_id"}
    assert [b["proname"] for b in bodies if "kit_outbox" in b["prosrc"]] == []


# (available, cap) -> minutes above the cap
CAP_CASES = [(0, 100, 0), (100, 100, 0), (101, 100, 1), (250, 100, 150), (90_001, 90_000, 1), (5, 0, 5)]


@pytest.mark.parametrize(("available", "cap", "excess"), CAP_CASES)
async def test_the_storage_cap_overflow_is_the_same_in_python_and_sql(
    db: tuple[str, asyncpg.Connection], available: int, cap: int, excess: int
) -> None:
    _, conn = db
    assert domain.cap_overflow(available, cap) == excess
    assert await conn.fetchval("SELECT tb_cap_overflow($1, $2)", available, cap) == excess


# (debits must not exceed credits, available, amount) -> allowed
DEBIT_CASES = [
    (True, 100, 100, True),
    (True, 100, 101, False),
    (True, 0, 1, False),
    (True, -5, 1, False),
    (False, 0, 500, True),  # the community account may go negative
    (False, -500, 1, True),
]


@pytest.mark.parametrize(("limited", "available", "amount", "allowed"), DEBIT_CASES)
async def test_the_balance_check_is_the_same_in_python_and_sql(
    db: tuple[str, asyncpg.Connection], limited: bool, available: int, amount: int, allowed: bool
) -> None:
    _, conn = db
    try:
        domain.Balances(credits_posted=available, limited=limited).check_debit(amount)
        python_allows = True
    except InsufficientBalance:
        python_allows = False
    assert python_allows is allowed
    assert await conn.fetchval("SELECT tb_debit_allowed($1, $2, $3)", limited, available, amount) is allowed


@pytest.mark.parametrize(("pending", "asked", "posted"), [(60, None, 60), (60, 45, 45), (60, 60, 60), (60, 61, None)])
async def test_a_confirmation_may_lower_never_raise_the_minutes(
    db: tuple[str, asyncpg.Connection], pending: int, asked: int | None, posted: int | None
) -> None:
    _, conn = db
    assert await conn.fetchval("SELECT tb_confirmed_minutes($1, $2)", pending, asked) == posted


@pytest.mark.parametrize(
    ("actor", "worker", "steward", "allowed"),
    [
        ("elder", False, False, True),
        ("son", False, False, True),  # a verified relative of the elder
        ("neighbour", False, True, True),  # a steward
        ("worker", True, False, True),
        ("stranger", False, False, False),
        ("vol", False, False, False),
        ("vol", True, True, False),  # the volunteer never confirms their own service, whatever else they are
    ],
)
async def test_who_may_resolve(
    db: tuple[str, asyncpg.Connection], actor: str, worker: bool, steward: bool, allowed: bool
) -> None:
    _, conn = db
    await conn.execute(
        "INSERT INTO tb_relatives (community, member_id, relative_id, relation, verified_by)"
        " VALUES ('c', 'son', 'elder', '子女', 'w'), ('other', 'stranger', 'elder', '子女', 'w')"
    )
    may = await conn.fetchval("SELECT tb_may_resolve('c', $1, 'elder', 'vol', $2, $3)", actor, worker, steward)
    assert may is allowed


async def test_an_id_is_new_then_replayed_conflicting_or_a_stored_refusal(db: tuple[str, asyncpg.Connection]) -> None:
    _, conn = db
    posted, refused, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO tb_accounts (id, community, kind, debits_must_not_exceed_credits) VALUES"
        " ('00000000-0000-0000-0000-00000000000a', 'c', 'community', false),"
        " ('00000000-0000-0000-0000-00000000000b', 'c', 'pool', true)"
    )
    await conn.execute(
        "INSERT INTO tb_transfers (id, community, kind, phase, debit_account_id, credit_account_id, amount_minutes,"
        " fingerprint, created_by) VALUES ($1, 'c', 'funding', 'posted', '00000000-0000-0000-0000-00000000000a',"
        " '00000000-0000-0000-0000-00000000000b', 5, 'fp', 'w')",
        posted,
    )
    await conn.execute(
        "INSERT INTO tb_failed_transfers (id, community, fingerprint, problem_slug, detail_zh, detail_en)"
        " VALUES ($1, 'c', 'fp', 'timebank/insufficient-balance', '不足', 'short')",
        refused,
    )

    async def use(transfer_id: uuid.UUID, community: str, fp: str) -> tuple[str, str | None]:
        async with conn.transaction():
            row = await conn.fetchrow("SELECT outcome, detail FROM tb_lock_transfer_id($1, $2, $3)", transfer_id, community, fp)
        assert row is not None
        return row["outcome"], row["detail"]

    assert await use(new, "c", "fp") == ("new", None)
    assert await use(posted, "c", "fp") == ("replayed", None)
    assert await use(posted, "c", "other body") == ("conflict", None)
    assert await use(posted, "other community", "fp") == ("conflict", None)
    outcome, detail = await use(refused, "c", "fp")
    assert outcome == "stored" and detail is not None
    assert '"slug": "timebank/insufficient-balance"' in detail and '"detail_en": "short"' in detail
    assert await use(refused, "c", "other body") == ("conflict", None)
