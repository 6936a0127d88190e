"""The ledger engine: lock accounts, apply legs in memory with the domain rules, write them back.

Every use case that moves minutes goes through `post_legs` (the confirmation takes the same steps
inside the database, `sql/tb_confirm_service.sql`, with the cap and balance rules as tested twins
of `domain`'s): it locks every account the legs touch
(`SELECT ... FOR UPDATE`, in id order so two transfers in opposite directions cannot deadlock),
applies the legs one after another to the locked totals with the pure rules of `domain`, adds an
overflow leg to the pool whenever a member's available balance would pass the storage cap, and
only then writes: one UPDATE of the accounts' totals and one INSERT of the transfers. A refused leg
therefore raises before anything is written, and the database's CHECK constraints stand behind
the in-memory checks should the code ever be wrong.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ARRAY, BindParameter, Row, Uuid, any_, bindparam, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.timebank import domain
from services.timebank.models import ACCOUNTS, TRANSFERS
from services.timebank.problems import AccountNotFound, SameAccount

_NS = uuid.UUID("0b7f1f5e-5b0c-4bb4-9a53-2f4d4f1d2a11")


@functools.lru_cache(maxsize=1024)  # a community's pool id never changes; every confirmation and batch asks for it
def pool_account_id(community: str) -> uuid.UUID:
    """The community pool's (公益池) account id, derived so no lookup is needed."""
    return uuid.uuid5(_NS, f"{community}:pool")


def community_account_id(community: str) -> uuid.UUID:
    return uuid.uuid5(_NS, f"{community}:community")


def member_account_id(community: str, member_id: str) -> uuid.UUID:
    return uuid.uuid5(_NS, f"{community}:member:{member_id}")


def derived_id(parent: uuid.UUID, what: str) -> uuid.UUID:
    """Ids of transfers the ledger makes itself (an overflow, the void of a timed-out pending transfer),
    stable for a given cause."""
    return uuid.uuid5(parent, what)


def fingerprint(action: str, actor: str, body: Any) -> str:
    payload = body.model_dump(mode="json") if hasattr(body, "model_dump") else body
    raw = orjson.dumps({"action": action, "actor": actor, "body": payload}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


@dataclass
class LockedAccount:
    id: uuid.UUID
    community: str
    kind: str
    owner_id: str | None
    balances: domain.Balances
    touched: bool = False


@dataclass
class Leg:
    """One transfer to write. A `voided` leg releases the pending transfer `pending_id` names
    (`pending_amount` minutes); confirmations post in the database (`sql/tb_confirm_service.sql`)."""

    id: uuid.UUID
    kind: str
    phase: str
    debit: uuid.UUID
    credit: uuid.UUID
    amount: int
    fingerprint: str = ""
    pending_id: uuid.UUID | None = None
    pending_amount: int = 0
    reverses_id: uuid.UUID | None = None
    care_request_id: uuid.UUID | None = None
    service_type: str | None = None
    reason: str | None = None
    timeout_at: datetime | None = None
    debit_balance_after: int | None = field(default=None, init=False)
    credit_balance_after: int | None = field(default=None, init=False)


def uuid_array(ids: Sequence[uuid.UUID], name: str = "ids") -> BindParameter[Sequence[uuid.UUID]]:
    """One array parameter instead of an IN list (cheaper to build and to plan for many ids)."""
    return bindparam(name, ids, type_=ARRAY(Uuid()))


async def lock_accounts(session: AsyncSession, community: str, ids: set[uuid.UUID]) -> dict[uuid.UUID, LockedAccount]:
    rows = (
        await session.execute(
            select(ACCOUNTS)
            .where(ACCOUNTS.c.id == any_(uuid_array(sorted(ids))), ACCOUNTS.c.community == community)
            .order_by(ACCOUNTS.c.id)
            .with_for_update()
        )
    ).all()
    found = {
        r.id: LockedAccount(
            r.id,
            r.community,
            r.kind,
            r.owner_id,
            domain.Balances(
                debits_pending=r.debits_pending,
                debits_posted=r.debits_posted,
                credits_pending=r.credits_pending,
                credits_posted=r.credits_posted,
                limited=r.debits_must_not_exceed_credits,
            ),
        )
        for r in rows
    }
    missing = ids - found.keys()
    if missing:
        raise AccountNotFound.of([str(m) for m in missing])
    return found


def apply_legs(accounts: dict[uuid.UUID, LockedAccount], legs: list[Leg], *, cap: int, pool: uuid.UUID) -> list[Leg]:
    """Apply the legs in order to the locked totals; return them with any overflow legs added.

    Raises a Problem (nothing written yet) when a leg breaks a rule.
    """
    out: list[Leg] = []
    for leg in legs:
        if leg.debit == leg.credit:
            raise SameAccount()
        debit, credit = accounts[leg.debit], accounts[leg.credit]
        debit.touched = credit.touched = True
        if leg.phase == "pending":
            domain.reserve(debit.balances, credit.balances, leg.amount)
        elif leg.phase == "voided":
            domain.void_pending(debit.balances, credit.balances, leg.pending_amount)
        else:
            domain.transfer(debit.balances, credit.balances, leg.amount)
        if leg.phase == "posted":
            leg.debit_balance_after = debit.balances.posted
            leg.credit_balance_after = credit.balances.posted
        out.append(leg)
        # A posted credit, or a released pending debit, raises a member's available balance.
        grown = credit if leg.phase == "posted" else debit if leg.phase == "voided" else None
        if grown is not None and grown.kind == "member" and grown.id != pool:
            excess = domain.cap_overflow(grown.balances.available, cap)
            if excess:
                overflow = Leg(
                    id=derived_id(leg.id, "overflow"),
                    kind="overflow",
                    phase="posted",
                    debit=grown.id,
                    credit=pool,
                    amount=excess,
                    fingerprint="overflow",
                    reason=f"storage cap {cap}",
                )
                domain.transfer(grown.balances, accounts[pool].balances, excess)
                accounts[pool].touched = True
                overflow.debit_balance_after = grown.balances.posted
                overflow.credit_balance_after = accounts[pool].balances.posted
                out.append(overflow)
    return out


# The writes are one statement each whatever the number of legs: the values travel as one array
# per column (asyncpg encodes them in C) and are unnested in the database, instead of a row of
# bound parameters per account or transfer that SQLAlchemy would build and PostgreSQL plan.
_WRITE_TOTALS = text("""
    UPDATE tb_accounts a
       SET debits_pending = v.debits_pending, debits_posted = v.debits_posted,
           credits_pending = v.credits_pending, credits_posted = v.credits_posted
      FROM unnest(CAST(:ids AS uuid[]), CAST(:debits_pending AS bigint[]), CAST(:debits_posted AS bigint[]),
                  CAST(:credits_pending AS bigint[]), CAST(:credits_posted AS bigint[]))
           AS v(id, debits_pending, debits_posted, credits_pending, credits_posted)
     WHERE a.id = v.id""")
_LEG_COLUMNS = (
    "id",
    "kind",
    "phase",
    "debit_account_id",
    "credit_account_id",
    "amount_minutes",
    "pending_id",
    "reverses_id",
    "care_request_id",
    "service_type",
    "reason",
    "fingerprint",
    "debit_balance_after",
    "credit_balance_after",
    "timeout_at",
)
_LEG_TYPES = (
    "uuid",
    "text",
    "text",
    "uuid",
    "uuid",
    "integer",
    "uuid",
    "uuid",
    "uuid",
    "text",
    "text",
    "text",
    "bigint",
    "bigint",
    "timestamptz",
)
# Inserted in the legs' order (WITH ORDINALITY ... ORDER BY), so `seq` follows it: an overflow leg
# comes right after the leg that caused it, in the passbook too.
_INSERT_TRANSFERS = text(f"""
    INSERT INTO tb_transfers ({", ".join(_LEG_COLUMNS)}, community, created_by, created_at)
    SELECT {", ".join("v." + c for c in _LEG_COLUMNS)}, :community, :actor, :now
      FROM unnest({", ".join(f"CAST(:{c} AS {t}[])" for c, t in zip(_LEG_COLUMNS, _LEG_TYPES, strict=True))})
           WITH ORDINALITY AS v({", ".join(_LEG_COLUMNS)}, n)
     ORDER BY v.n
    RETURNING {", ".join(c.name for c in TRANSFERS.c)}""").columns(*TRANSFERS.c)


async def write(
    session: AsyncSession, community: str, actor: str, accounts: dict[uuid.UUID, LockedAccount], legs: list[Leg], now: datetime
) -> list[Row[Any]]:
    """Write the totals and the transfers; returns the transfer rows in the order of `legs`."""
    touched = [a for a in accounts.values() if a.touched]
    if touched:
        await session.execute(
            _WRITE_TOTALS,
            {
                "ids": [a.id for a in touched],
                "debits_pending": [a.balances.debits_pending for a in touched],
                "debits_posted": [a.balances.debits_posted for a in touched],
                "credits_pending": [a.balances.credits_pending for a in touched],
                "credits_posted": [a.balances.credits_posted for a in touched],
            },
        )
    if not legs:
        return []
    rows = (
        await session.execute(
            _INSERT_TRANSFERS,
            {
                "id": [leg.id for leg in legs],
                "kind": [leg.kind for leg in legs],
                "phase": [leg.phase for leg in legs],
                "debit_account_id": [leg.debit for leg in legs],
                "credit_account_id": [leg.credit for leg in legs],
                "amount_minutes": [leg.amount for leg in legs],
                "pending_id": [leg.pending_id for leg in legs],
                "reverses_id": [leg.reverses_id for leg in legs],
                "care_request_id": [leg.care_request_id for leg in legs],
                "service_type": [leg.service_type for leg in legs],
                "reason": [leg.reason for leg in legs],
                "fingerprint": [leg.fingerprint for leg in legs],
                "debit_balance_after": [leg.debit_balance_after for leg in legs],
                "credit_balance_after": [leg.credit_balance_after for leg in legs],
                "timeout_at": [leg.timeout_at for leg in legs],
                "community": community,
                "actor": actor,
                "now": now,
            },
        )
    ).all()
    by_id = {r.id: r for r in rows}
    return [by_id[leg.id] for leg in legs]


def may_overflow(accounts: dict[uuid.UUID, LockedAccount], legs: list[Leg], cap: int) -> bool:
    """Whether some member's available balance could pass the cap (a safe over-estimate)."""
    growth: dict[uuid.UUID, int] = {}
    for leg in legs:
        if leg.phase == "posted":
            growth[leg.credit] = growth.get(leg.credit, 0) + leg.amount
        elif leg.phase == "voided":
            growth[leg.debit] = growth.get(leg.debit, 0) + leg.pending_amount
    return any(accounts[a].kind == "member" and accounts[a].balances.available + g > cap for a, g in growth.items())


async def post_legs(
    session: AsyncSession,
    community: str,
    actor: str,
    legs: list[Leg],
    *,
    cap: int,
    now: datetime,
    accounts: dict[uuid.UUID, LockedAccount] | None = None,
) -> list[Row[Any]]:
    """Lock, check and write `legs` in the caller's transaction (all or none); returns their rows."""
    pool = pool_account_id(community)
    if accounts is None:
        accounts = await lock_accounts(session, community, {leg.debit for leg in legs} | {leg.credit for leg in legs})
    if pool not in accounts and may_overflow(accounts, legs, cap):
        # Locked after the others (out of id order) only when a cap overflow is possible, so the
        # common case does not queue every transfer on the pool's row; a rare deadlock is retried.
        accounts.update(await lock_accounts(session, community, {pool}))
    written = apply_legs(accounts, legs, cap=cap, pool=pool)
    return await write(session, community, actor, accounts, written, now)
