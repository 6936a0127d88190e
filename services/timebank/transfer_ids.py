"""Client-chosen transfer ids: each applies at most once, and a transaction that deadlocked runs again.

A use case that moves minutes under a client id runs through `once`: `tb_lock_transfer_id`
(`sql/tb_lock_transfer_id.sql`) serializes the requests carrying the id and says what an earlier
use of it means (replay the transfer, refuse another body, raise a recorded refusal again); a new
id runs the use case's work, and a refusal is recorded after the rollback so the id stays refused.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import orjson
from sqlalchemy import Row, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import transaction
from services.kit.problems import Problem
from services.timebank.models import FAILED, TRANSFERS
from services.timebank.problems import PROBLEMS_BY_SLUG, TransferIdConflict, TransferNotFound

RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure

T = TypeVar("T")
Work = Callable[[], Awaitable[Row[Any]]]

_LOCK_TRANSFER_ID = text("SELECT outcome, detail FROM tb_lock_transfer_id(:id, :community, :fingerprint)")


def _retryable(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES or "deadlock" in str(exc.orig).lower()


async def retrying(work: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run a whole transaction again after a deadlock (the database already rolled it back)."""
    for attempt in range(attempts):
        try:
            return await work()
        except DBAPIError as exc:
            if not _retryable(exc) or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


class Refused(Exception):
    """A use case's problem, carried out of its transaction so that the id's refusal is recorded."""

    def __init__(self, problem: Problem):
        self.problem = problem


def json_detail(detail: object) -> dict[str, Any]:
    """A jsonb value as the driver hands it over (text, or already decoded)."""
    if isinstance(detail, str | bytes):
        loaded: dict[str, Any] = orjson.loads(detail)
        return loaded
    if not isinstance(detail, dict):
        raise TypeError(f"not a JSON object: {detail!r}")
    return detail


def reuse_problem(transfer_id: uuid.UUID, outcome: str, detail: object) -> Problem:
    """The problem an earlier use of the id means: a conflict, or the refusal recorded then."""
    if outcome == "conflict":
        return TransferIdConflict(transfer_id=str(transfer_id))
    if outcome != "stored":
        raise ValueError(f"not a refusal: {outcome}")
    stored = json_detail(detail)
    cls = PROBLEMS_BY_SLUG.get(stored["slug"], Problem)
    zh, en = stored.get("detail_zh"), stored.get("detail_en")
    return cls((zh, en) if zh and en else None, transfer_id=str(transfer_id), replayed=True)


async def lock_transfer_id(session: AsyncSession, transfer_id: uuid.UUID, community: str, fp: str) -> tuple[str, object]:
    """Serialize the requests carrying `transfer_id` until this transaction ends; (outcome, detail)
    of `tb_lock_transfer_id`: new, replayed, conflict or stored."""
    row = (await session.execute(_LOCK_TRANSFER_ID, {"id": transfer_id, "community": community, "fingerprint": fp})).one()
    return row.outcome, row.detail


async def get_transfer_row(session: AsyncSession, community: str, transfer_id: uuid.UUID) -> Row[Any]:
    row = (
        await session.execute(select(TRANSFERS).where(TRANSFERS.c.id == transfer_id, TRANSFERS.c.community == community))
    ).first()
    if row is None:
        raise TransferNotFound()
    return row


async def once(session: AsyncSession, *, community: str, transfer_id: uuid.UUID, fp: str, work: Work) -> Row[Any]:
    """Apply `work` once for `transfer_id`: replay, refuse a different body, remember refusals."""
    try:
        return await retrying(partial(_first_use, session, community, transfer_id, fp, work))
    except Refused as refused:
        return await record_refusal(session, community=community, transfer_id=transfer_id, fp=fp, problem=refused.problem)


async def _first_use(session: AsyncSession, community: str, transfer_id: uuid.UUID, fp: str, work: Work) -> Row[Any]:
    async with transaction(session):
        outcome, detail = await lock_transfer_id(session, transfer_id, community, fp)
        if outcome == "replayed":
            return await get_transfer_row(session, community, transfer_id)
        if outcome != "new":
            raise reuse_problem(transfer_id, outcome, detail)
        try:
            return await work()
        except Problem as problem:
            problem.extensions.setdefault("transfer_id", str(transfer_id))
            raise Refused(problem) from None


async def record_refusal(session: AsyncSession, *, community: str, transfer_id: uuid.UUID, fp: str, problem: Problem) -> Row[Any]:
    """Remember that `transfer_id` was refused (so it stays refused), then raise the problem.

    Returns instead the transfer if the same request succeeded meanwhile (a retry raced us).
    """
    if type(problem) not in PROBLEMS_BY_SLUG.values():
        raise problem
    row = await retrying(partial(_record, session, community, transfer_id, fp, problem))
    if row is not None:
        return row
    raise problem


async def _record(session: AsyncSession, community: str, transfer_id: uuid.UUID, fp: str, problem: Problem) -> Row[Any] | None:
    async with transaction(session):
        outcome, _ = await lock_transfer_id(session, transfer_id, community, fp)
        if outcome == "new":
            zh = problem.detail_text("zh-CN") if problem.detail else None
            en = problem.detail_text("en") if problem.detail else None
            await session.execute(
                insert(FAILED).values(
                    id=transfer_id, community=community, fingerprint=fp, problem_slug=problem.slug, detail_zh=zh, detail_en=en
                )
            )
            return None
        if outcome == "replayed":
            # The same request succeeded meanwhile (a retry raced us): the id has that outcome.
            return await get_transfer_row(session, community, transfer_id)
        return None
