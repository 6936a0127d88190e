# SQLModel types table attributes as their Python values (str, int), so every SQL expression built
# from them looks ill-typed to mypy; these codes are off here, and only here, for that reason.
# mypy: disable-error-code="arg-type,call-overload,attr-defined,operator,no-any-return,union-attr,list-item,misc"
"""Use cases. Each public function is one transaction (`transaction(session)`).

Lock order, the same everywhere so concurrent use cases cannot deadlock: grant / cap counter →
budget row → redemption row → account row → reward row. The account row (locked FOR UPDATE) is
what serialises every change to one resident's lots, so a balance is never spent twice.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_core import to_jsonable_python
from sqlalchemy import and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.domain import LotView, RewardKind, SkipReason, Trigger
from services.governance.events import (
    PointsGranted,
    PointsPaymentSettled,
    RedemptionCaptured,
    RedemptionReleased,
    RedemptionReserved,
    publisher,
)
from services.governance.models import (
    Account,
    Allocation,
    Award,
    Budget,
    CheckinCode,
    Entry,
    Grant,
    Lot,
    PointsPayment,
    Redemption,
    Resident,
    Reward,
    Rule,
)
from services.governance.schemas import (
    AwardCreate,
    CheckinCodeCreate,
    RedemptionCreate,
    RewardCreate,
    RewardUpdate,
    RuleCreate,
    RuleUpdate,
)
from services.governance.settings import Settings
from services.kit.auth import Principal
from services.kit.db import DriverStatement, driver_statement, fetch_alone, table_of, transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, make_page
from services.kit.telemetry import current_traceparent

EARNING_KINDS = ("grant", "award", "deduction", "reversal")


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- building blocks (run inside a caller's transaction) -----------------------------------------


@dataclass
class HeldAccount:
    """A locked account's figures, kept in step by the helpers below (not an ORM object, so no
    stray flush can overwrite what the SQL updates did)."""

    community: str
    resident_id: str
    balance: int
    debt: int
    reserved: int


# Hot-path statements as plain SQL: the ORM-enabled forms cost more in Python than the database work.
_LOCK_ACCOUNT_SQL = text("""
INSERT INTO gov_accounts (community, resident_id) VALUES (:community, :resident)
ON CONFLICT (community, resident_id) DO UPDATE SET debt = gov_accounts.debt
RETURNING balance, debt, reserved
""")
_TAKE_BUDGET_SQL = text("""
UPDATE gov_budgets SET remaining = remaining - :points, granted = granted + :points
WHERE community = :community AND remaining >= :points RETURNING community
""")


async def _lock_account(session: AsyncSession, community: str, resident_id: str) -> HeldAccount:
    """The resident's account row, created on first use, locked until the transaction ends."""
    row = (await session.execute(_LOCK_ACCOUNT_SQL, {"community": community, "resident": resident_id})).one()
    return HeldAccount(community, resident_id, int(row.balance), int(row.debt), int(row.reserved))


async def _lots(session: AsyncSession, community: str, resident_id: str) -> list[LotView]:
    rows = (
        await session.execute(
            select(Lot.id, Lot.remaining, Lot.expires_at).where(
                Lot.community == community, Lot.resident_id == resident_id, Lot.remaining > 0
            )
        )
    ).all()
    return [LotView(id=r.id, remaining=r.remaining, expires_at=r.expires_at) for r in rows]


async def _take_from_lots(session: AsyncSession, plan: Sequence[tuple[int, int]]) -> None:
    for lot_id, points in plan:
        await session.execute(update(Lot).where(Lot.id == lot_id).values(remaining=Lot.remaining - points))


# One round trip per statement line: the balance moves and the line is written in one statement.
_ENTRY_SQL = text("""
WITH a AS (
    UPDATE gov_accounts SET balance = balance + :delta, debt = debt + :debt_change,
                            reserved = reserved + :reserved_change
    WHERE community = :community AND resident_id = :resident RETURNING balance
)
INSERT INTO gov_entries (community, resident_id, kind, delta, balance_after, ref_type, ref_id, reason)
SELECT CAST(:community AS text), CAST(:resident AS text), CAST(:kind AS text), CAST(:delta AS integer), a.balance,
       CAST(:ref_type AS text), CAST(:ref_id AS text), CAST(:reason AS text)
FROM a RETURNING balance_after
""")

# A credit: the lot, the grant's pointer to it, the balance (and debt) and the statement line at once.
_CREDIT_SQL = text("""
WITH lot AS (
    INSERT INTO gov_lots (community, resident_id, points, remaining, expires_at)
    VALUES (:community, :resident, :delta, :kept, :expires_at) RETURNING id
), g AS (
    UPDATE gov_grants SET lot_id = (SELECT id FROM lot) WHERE id = CAST(:grant_id AS uuid)
), a AS (
    UPDATE gov_accounts SET balance = balance + :delta, debt = debt - :paid
    WHERE community = :community AND resident_id = :resident RETURNING balance
)
INSERT INTO gov_entries (community, resident_id, kind, delta, balance_after, ref_type, ref_id, reason)
SELECT CAST(:community AS text), CAST(:resident AS text), CAST(:kind AS text), CAST(:delta AS integer), a.balance,
       CAST(:ref_type AS text), CAST(:ref_id AS text), CAST(:reason AS text)
FROM a, lot RETURNING balance_after, (SELECT id FROM lot)
""")


async def _entry(
    session: AsyncSession,
    acct: HeldAccount,
    kind: str,
    delta: int,
    *,
    ref_type: str | None = None,
    ref_id: str | None = None,
    reason: str | None = None,
    debt_change: int = 0,
    reserved_change: int = 0,
) -> int:
    """Move the balance by `delta` (and debt, reserved) and record it in the statement; returns the new balance."""
    balance = (
        await session.execute(
            _ENTRY_SQL,
            {
                "delta": delta,
                "debt_change": debt_change,
                "reserved_change": reserved_change,
                "community": acct.community,
                "resident": acct.resident_id,
                "kind": kind,
                "ref_type": ref_type,
                "ref_id": ref_id,
                "reason": reason,
            },
        )
    ).scalar_one()
    acct.balance = int(balance)
    acct.debt += debt_change
    acct.reserved += reserved_change
    return acct.balance


async def _add_points(
    session: AsyncSession,
    acct: HeldAccount,
    points: int,
    expires_at: datetime | None,
    kind: str,
    *,
    ref_type: str,
    ref_id: str,
    reason: str | None,
    grant_id: uuid.UUID | None = None,
) -> int:
    """Credit points as a new lot; a debt left by a clawback is paid first. Returns the lot id."""
    paid, kept = domain.settle_debt(acct.debt, points)
    row = (
        await session.execute(
            _CREDIT_SQL,
            {
                "community": acct.community,
                "resident": acct.resident_id,
                "delta": points,
                "kept": kept,
                "paid": paid,
                "expires_at": expires_at,
                "grant_id": grant_id,
                "kind": kind,
                "ref_type": ref_type,
                "ref_id": ref_id,
                "reason": reason,
            },
        )
    ).one()
    acct.balance = int(row[0])
    acct.debt -= paid
    return int(row[1])


async def _take_points_back(
    session: AsyncSession,
    acct: HeldAccount,
    points: int,
    kind: str,
    *,
    own_lot: int | None,
    ref_type: str,
    ref_id: str,
    reason: str | None,
) -> None:
    """Clawback or deduction: from lots (own lot first), the rest as debt; the balance may go negative."""
    plan, debt = domain.plan_clawback(await _lots(session, acct.community, acct.resident_id), points, own_lot)
    await _take_from_lots(session, plan)
    await _entry(session, acct, kind, -points, ref_type=ref_type, ref_id=ref_id, reason=reason, debt_change=debt)


async def _take_budget(session: AsyncSession, community: str, points: int) -> bool:
    """Draw from the community budget; False when it does not cover `points` (it never goes negative)."""
    row = (await session.execute(_TAKE_BUDGET_SQL, {"community": community, "points": points})).first()
    return row is not None


async def _return_to_budget(session: AsyncSession, community: str, points: int) -> None:
    await session.execute(
        update(Budget)
        .where(Budget.community == community)
        .values(remaining=Budget.remaining + points, clawed_back=Budget.clawed_back + points)
    )


async def _expire_account_lots(session: AsyncSession, acct: HeldAccount, now: datetime, lots: list[LotView] | None = None) -> int:
    """Expire this (locked) account's due lots, one statement line each. Returns points expired."""
    if lots is None:
        lots = await _lots(session, acct.community, acct.resident_id)
    due = domain.due_lots(lots, now)
    total = 0
    for lot in due:
        await session.execute(update(Lot).where(Lot.id == lot.id).values(remaining=0))
        await _entry(
            session,
            acct,
            "expiry",
            -lot.remaining,
            ref_type="lot",
            ref_id=str(lot.id),
            reason=f"积分过期 / points expired ({lot.expires_at.isoformat() if lot.expires_at else ''})",
        )
        total += lot.remaining
    return total


async def _spend(session: AsyncSession, acct: HeldAccount, amount: int, now: datetime) -> list[tuple[int, int]]:
    """Take `amount` from the soonest-expiring live lots of a locked account (no statement line)."""
    lots = await _lots(session, acct.community, acct.resident_id)
    await _expire_account_lots(session, acct, now, lots)
    try:
        plan = domain.plan_spend(lots, amount, now, acct.debt)  # skips the lots just expired
    except domain.InsufficientPoints as exc:
        raise problems.InsufficientPoints(
            (f"需要 {exc.needed} 积分，可用 {exc.available}", f"Needs {exc.needed} points, {exc.available} available"),
            needed=exc.needed,
            available=exc.available,
        ) from None
    await _take_from_lots(session, plan)
    return plan


def _expiry(now: datetime, days: int | None) -> datetime | None:
    return now + timedelta(days=days) if days is not None else None


def _terms(rule: Rule) -> domain.RuleTerms:
    return domain.RuleTerms(
        points=rule.points, per_hour=rule.per_hour, enabled=rule.enabled, valid_from=rule.valid_from, valid_until=rule.valid_until
    )


# --- earning by rule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantOutcome:
    grant_id: uuid.UUID | None
    points: int
    skipped: SkipReason | None
    duplicate: bool = False


# One round trip per grant: the grant row, cap counter, budget, account lock, lot and statement line
# (migration 0002 explains the function).
_GRANT_SQL = text("""
SELECT grant_id, outcome FROM gov_grant(
    :community, :resident, CAST(:rule_id AS uuid), :source_event_id, :source_ref, CAST(:points AS integer),
    :skip, CAST(:cap AS integer), CAST(:period_start AS date), CAST(:expires_at AS timestamptz), :reason,
    :trigger, :granted_at, :event_id, :event_topic, :event_type, :event_source, :traceparent, :tracestate)
""")


async def _grant_by_rule(
    session: AsyncSession,
    settings: Settings,
    rule: Rule,
    *,
    resident_id: str,
    source_event_id: str,
    source_ref: str | None,
    minutes: int | None,
    at: datetime,
    strict: bool,
) -> GrantOutcome:
    """Grant a rule's points for one source once. `strict` (HTTP) raises; events record a skip."""
    terms = _terms(rule)
    skip = domain.rule_skip_reason(terms, at)
    points = domain.points_for(terms, minutes)
    if skip is None and points <= 0:
        skip = SkipReason.zero_points
    if skip is not None and strict:
        raise problems.RuleInactive()
    capped = rule.cap_count is not None and rule.cap_period is not None
    start = (
        domain.period_start(domain.CapPeriod(rule.cap_period), at, ZoneInfo(settings.community_timezone))
        if capped and rule.cap_period is not None
        else None
    )
    traceparent, tracestate = current_traceparent()
    row = (
        await session.execute(
            _GRANT_SQL,
            {
                "community": rule.community,
                "resident": resident_id,
                "rule_id": rule.id,
                "source_event_id": source_event_id,
                "source_ref": source_ref,
                "points": points,
                "skip": skip.value if skip else None,
                "cap": rule.cap_count if capped else None,
                "period_start": start,
                "expires_at": _expiry(at, rule.lot_validity_days),
                "reason": rule.name,
                "trigger": rule.trigger,
                "granted_at": to_jsonable_python(now_utc()),
                "event_id": str(uuid.uuid4()),
                "event_topic": publisher.topic,
                "event_type": PointsGranted.event_type,
                "event_source": publisher.source,
                "traceparent": traceparent,
                "tracestate": tracestate,
            },
        )
    ).one()
    if row.outcome == "duplicate":
        return GrantOutcome(None, 0, None, duplicate=True)
    if row.outcome == "granted":
        outbox_written(session)  # gov_grant wrote governance.points.granted.v1
        return GrantOutcome(row.grant_id, points, None)
    reason = SkipReason(row.outcome)
    if strict and reason is SkipReason.capped:
        raise problems.CapReached(cap=rule.cap_count, period=rule.cap_period)
    if strict and reason is SkipReason.budget_exhausted:
        raise problems.BudgetExhausted()
    return GrantOutcome(row.grant_id, 0, reason)


_RULES_CACHE = "governance_rules_in_transaction"


async def _rules_for(session: AsyncSession, community: str, trigger: Trigger) -> Sequence[Rule]:
    """The community's rules for `trigger`, read once per transaction: the earning consumer applies a
    whole fetched batch in one transaction, and its events would otherwise read the same rules
    hundreds of times. The batch commits as one, so it sees the rules as they were when it began."""
    tx = session.get_transaction()
    cached = session.info.get(_RULES_CACHE)
    if cached is None or cached[0] is not tx:
        cached = (tx, {})
        session.info[_RULES_CACHE] = cached
    rules: dict[tuple[str, str], Sequence[Rule]] = cached[1]
    key = (community, trigger.value)
    if key not in rules:
        rules[key] = (
            (
                await session.execute(
                    select(Rule).where(Rule.community == community, Rule.trigger == trigger.value).order_by(Rule.created_at)
                )
            )
            .scalars()
            .all()
        )
    return rules[key]


async def grant_for_event(
    session: AsyncSession,
    settings: Settings,
    *,
    trigger: Trigger,
    community: str,
    resident_id: str,
    source_event_id: str,
    source_ref: str | None,
    minutes: int | None,
    at: datetime,
) -> list[GrantOutcome]:
    """Apply every rule of the community keyed on `trigger` to one event from another service."""
    async with transaction(session):
        rules = await _rules_for(session, community, trigger)
        return [
            await _grant_by_rule(
                session,
                settings,
                rule,
                resident_id=resident_id,
                source_event_id=source_event_id,
                source_ref=source_ref,
                minutes=minutes,
                at=at,
                strict=False,
            )
            for rule in rules
        ]


async def _checkin_rule(session: AsyncSession, community: str, rule_id: uuid.UUID) -> Rule:
    rule = (await session.execute(select(Rule).where(Rule.id == rule_id, Rule.community == community))).scalar_one_or_none()
    if rule is None:
        raise problems.RuleNotFound()
    if not Trigger(rule.trigger).is_checkin:
        raise problems.NotACheckinRule()
    return rule


async def checkin_by_staff(
    session: AsyncSession, settings: Settings, staff: Principal, rule_id: uuid.UUID, resident_id: str
) -> Grant:
    async with transaction(session):
        rule = await _checkin_rule(session, staff.community, rule_id)
        outcome = await _grant_by_rule(
            session,
            settings,
            rule,
            resident_id=resident_id,
            source_event_id=f"checkin:{uuid.uuid4()}",
            source_ref=None,
            minutes=None,
            at=now_utc(),
            strict=True,
        )
        return await _grant(session, outcome)


async def checkin_by_code(session: AsyncSession, settings: Settings, resident: Principal, code: str) -> Grant:
    async with transaction(session):
        now = now_utc()
        today = now.astimezone(ZoneInfo(settings.community_timezone)).date()
        found = (
            await session.execute(
                select(CheckinCode).where(CheckinCode.code == code, CheckinCode.community == resident.community)
            )
        ).scalar_one_or_none()
        if found is None or found.valid_on != today:
            raise problems.CheckinCodeInvalid()
        rule = await _checkin_rule(session, resident.community, found.rule_id)
        # One grant per resident per code, whatever the rule's cap says.
        outcome = await _grant_by_rule(
            session,
            settings,
            rule,
            resident_id=resident.subject,
            source_event_id=f"qr:{code}:{resident.subject}",
            source_ref=None,
            minutes=None,
            at=now,
            strict=True,
        )
        if outcome.duplicate:
            raise problems.CapReached(("今天已用此签到码签到", "Already checked in with this code"))
        return await _grant(session, outcome)


async def _grant(session: AsyncSession, outcome: GrantOutcome) -> Grant:
    assert outcome.grant_id is not None
    return (await session.execute(select(Grant).where(Grant.id == outcome.grant_id))).scalar_one()


async def create_checkin_code(
    session: AsyncSession, settings: Settings, staff: Principal, data: CheckinCodeCreate
) -> CheckinCode:
    async with transaction(session):
        await _checkin_rule(session, staff.community, data.rule_id)
        valid_on = data.valid_on or now_utc().astimezone(ZoneInfo(settings.community_timezone)).date()
        code = CheckinCode(
            code=secrets.token_urlsafe(12),
            community=staff.community,
            rule_id=data.rule_id,
            valid_on=valid_on,
            created_by=staff.subject,
        )
        session.add(code)
        await session.flush()
        return code


# --- reversal ------------------------------------------------------------------------------------


async def reverse_source(session: AsyncSession, *, community: str, source_ref: str, reason: str) -> int:
    """Claw back every grant made for `source_ref`, even if spent. Returns the points clawed back."""
    async with transaction(session):
        grants = (
            (
                await session.execute(
                    select(Grant)
                    .where(
                        Grant.community == community,
                        Grant.source_ref == source_ref,
                        Grant.status == "granted",
                        Grant.reversed_at.is_(None),
                    )
                    .order_by(Grant.id)
                    .with_for_update()
                )
            )
            .scalars()
            .all()
        )
        total = 0
        for grant in grants:
            await _return_to_budget(session, community, grant.points)
            acct = await _lock_account(session, community, grant.resident_id)
            await _take_points_back(
                session,
                acct,
                grant.points,
                "reversal",
                own_lot=grant.lot_id,
                ref_type="grant",
                ref_id=str(grant.id),
                reason=reason,
            )
            grant.reversed_at = now_utc()
            total += grant.points
        return total


# --- rules ---------------------------------------------------------------------------------------


async def create_rule(session: AsyncSession, worker: Principal, data: RuleCreate) -> Rule:
    async with transaction(session):
        rule = Rule(community=worker.community, **data.model_dump())
        rule.trigger = data.trigger.value
        rule.cap_period = data.cap_period.value if data.cap_period else None
        session.add(rule)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise problems.CodeTaken() from None
        return rule


async def list_rules(session: AsyncSession, community: str) -> Sequence[Rule]:
    async with transaction(session):
        return (await session.execute(select(Rule).where(Rule.community == community).order_by(Rule.code))).scalars().all()


async def update_rule(session: AsyncSession, worker: Principal, rule_id: uuid.UUID, data: RuleUpdate) -> Rule:
    async with transaction(session):
        rule = (
            await session.execute(select(Rule).where(Rule.id == rule_id, Rule.community == worker.community).with_for_update())
        ).scalar_one_or_none()
        if rule is None:
            raise problems.RuleNotFound()
        for key, value in data.model_dump(exclude_unset=True).items():
            setattr(rule, key, value)
        await session.flush()
        return rule


# --- budget and awards ---------------------------------------------------------------------------


async def fund_budget(session: AsyncSession, worker: Principal, points: int) -> Budget:
    async with transaction(session):
        stmt = insert(Budget).values(community=worker.community, funded=points, remaining=points)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Budget.community], set_={"funded": Budget.funded + points, "remaining": Budget.remaining + points}
        )
        return (await session.execute(stmt.returning(Budget))).scalars().one()


async def get_budget(session: AsyncSession, community: str) -> Budget:
    async with transaction(session):
        found = (await session.execute(select(Budget).where(Budget.community == community))).scalar_one_or_none()
        return found or Budget(community=community, funded=0, granted=0, clawed_back=0, remaining=0)


async def _apply_award(session: AsyncSession, settings: Settings, award: Award) -> None:
    now = now_utc()
    if award.points > 0:
        if not await _take_budget(session, award.community, award.points):
            raise problems.BudgetExhausted()
        acct = await _lock_account(session, award.community, award.resident_id)
        await _add_points(
            session,
            acct,
            award.points,
            _expiry(now, settings.award_lot_validity_days),
            "award",
            ref_type="award",
            ref_id=str(award.id),
            reason=award.reason,
        )
        await publisher.publish(
            session,
            PointsGranted(
                grant_id=str(award.id),
                community=award.community,
                resident_id=award.resident_id,
                points=award.points,
                source="award",
                trigger="award",
                granted_at=now,
            ),
            key=str(award.id),
        )
    else:
        # A deduction (负向扣分) burns points; the budget is not refilled by penalties.
        acct = await _lock_account(session, award.community, award.resident_id)
        await _take_points_back(
            session, acct, -award.points, "deduction", own_lot=None, ref_type="award", ref_id=str(award.id), reason=award.reason
        )
    award.status = "applied"


async def create_award(session: AsyncSession, settings: Settings, worker: Principal, data: AwardCreate) -> Award:
    async with transaction(session):
        award = Award(
            community=worker.community,
            resident_id=data.resident_id,
            points=data.points,
            reason=data.reason,
            status="pending",
            created_by=worker.subject,
        )
        session.add(award)
        await session.flush()
        if not domain.award_needs_approval(data.points, settings.award_approval_threshold):
            await _apply_award(session, settings, award)
            await session.flush()
        return award


async def decide_award(
    session: AsyncSession, settings: Settings, worker: Principal, award_id: uuid.UUID, *, approve: bool
) -> Award:
    async with transaction(session):
        award = (
            await session.execute(
                select(Award).where(Award.id == award_id, Award.community == worker.community).with_for_update()
            )
        ).scalar_one_or_none()
        if award is None:
            raise problems.AwardNotFound()
        if award.status != "pending":
            raise problems.AwardNotPending()
        if award.created_by == worker.subject:
            raise problems.SelfApproval()
        award.decided_by = worker.subject
        award.decided_at = now_utc()
        if approve:
            await _apply_award(session, settings, award)
        else:
            award.status = "rejected"
        await session.flush()
        return award


async def list_awards(
    session: AsyncSession, community: str, status: str | None, page: PageParams
) -> tuple[list[Award], str | None]:
    async with transaction(session):
        q = select(Award).where(Award.community == community)
        if status:
            q = q.where(Award.status == status)
        after = page.after()
        if after:
            q = q.where(
                or_(
                    Award.created_at < datetime.fromisoformat(after[0]),
                    and_(Award.created_at == datetime.fromisoformat(after[0]), Award.id < uuid.UUID(after[1])),
                )
            )
        rows = list(
            (await session.execute(q.order_by(Award.created_at.desc(), Award.id.desc()).limit(page.limit + 1))).scalars().all()
        )
        return make_page(rows, page.limit, lambda a: [a.created_at.isoformat(), str(a.id)])


# --- balances, statements, households ------------------------------------------------------------


@dataclass(frozen=True)
class PointsView:
    resident_id: str
    balance: int
    reserved: int
    debt: int
    expiring_within_30_days: int


def _points_statement() -> DriverStatement:
    """The resident's account with the points expiring by `soon`, as one statement (no row: no account yet)."""
    lots = table_of(Lot).c
    expiring = (
        select(func.coalesce(func.sum(lots.remaining), 0))
        .where(
            lots.community == bindparam("community"),
            lots.resident_id == bindparam("resident_id"),
            lots.remaining > 0,
            lots.expires_at.is_not(None),
            lots.expires_at <= bindparam("soon"),
        )
        .scalar_subquery()
    )
    accounts = table_of(Account).c
    return driver_statement(
        select(accounts.balance, accounts.reserved, accounts.debt, expiring.label("expiring")).where(
            accounts.community == bindparam("community"), accounts.resident_id == bindparam("resident_id")
        )
    )


_POINTS = _points_statement()


async def points_of(session: AsyncSession, community: str, resident_id: str) -> PointsView:
    soon = now_utc() + timedelta(days=30)
    args = _POINTS.args(community=community, resident_id=resident_id, soon=soon)
    acct = await fetch_alone(session, _POINTS.sql, *args)  # one statement: no transaction to open
    if acct is None:
        return PointsView(resident_id, 0, 0, 0, 0)
    return PointsView(resident_id, acct.balance, acct.reserved, acct.debt, int(acct.expiring))


async def statement(session: AsyncSession, community: str, resident_id: str, page: PageParams) -> tuple[list[Entry], str | None]:
    async with transaction(session):
        q = select(Entry).where(Entry.community == community, Entry.resident_id == resident_id)
        after = page.after()
        if after:
            q = q.where(Entry.id < int(after[0]))
        rows = list((await session.execute(q.order_by(Entry.id.desc()).limit(page.limit + 1))).scalars().all())
        return make_page(rows, page.limit, lambda e: [e.id])


async def lots_of(session: AsyncSession, community: str, resident_id: str) -> Sequence[Lot]:
    async with transaction(session):
        return (
            (
                await session.execute(
                    select(Lot)
                    .where(
                        Lot.community == community,
                        Lot.resident_id == resident_id,
                        Lot.remaining > 0,
                    )
                    .order_by(Lot.expires_at.asc().nulls_last(), Lot.id)
                )
            )
            .scalars()
            .all()
        )


async def register_resident(session: AsyncSession, community: str, resident_id: str, household_id: str | None) -> None:
    async with transaction(session):
        await session.execute(
            insert(Resident)
            .values(community=community, resident_id=resident_id, household_id=household_id)
            .on_conflict_do_update(index_elements=[Resident.community, Resident.resident_id], set_={"household_id": household_id})
        )


async def household_points(session: AsyncSession, caller: Principal, household_id: str) -> tuple[int, list[tuple[str, int]]]:
    async with transaction(session):
        members = (
            await session.execute(
                select(Resident.resident_id, func.coalesce(Account.balance, 0))
                .outerjoin(Account, and_(Account.community == Resident.community, Account.resident_id == Resident.resident_id))
                .where(Resident.community == caller.community, Resident.household_id == household_id)
                .order_by(Resident.resident_id)
            )
        ).all()
        # A resident sees only their own household; not being a member looks like it does not exist.
        if not members or (not caller.is_staff and caller.subject not in {m[0] for m in members}):
            raise problems.HouseholdNotFound()
        rows = [(str(m[0]), int(m[1])) for m in members]
        return sum(b for _, b in rows), rows


async def leaderboard_from_db(session: AsyncSession, community: str, month: str, tz: ZoneInfo) -> list[tuple[str, int]]:
    start, end = domain.month_bounds(month, tz)
    async with transaction(session):
        rows = (
            await session.execute(
                select(Entry.resident_id, func.sum(Entry.delta).label("points"))
                .where(
                    Entry.community == community, Entry.kind.in_(EARNING_KINDS), Entry.created_at >= start, Entry.created_at < end
                )
                .group_by(Entry.resident_id)
            )
        ).all()
        return [(str(r[0]), int(r[1])) for r in rows]


# --- rewards -------------------------------------------------------------------------------------


async def create_reward(session: AsyncSession, worker: Principal, data: RewardCreate) -> Reward:
    async with transaction(session):
        reward = Reward(community=worker.community, **data.model_dump())
        reward.kind = data.kind.value
        session.add(reward)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise problems.CodeTaken() from None
        return reward


async def list_rewards(session: AsyncSession, community: str, *, active_only: bool) -> Sequence[Reward]:
    async with transaction(session):
        rewards = (
            (await session.execute(select(Reward).where(Reward.community == community).order_by(Reward.code))).scalars().all()
        )
        if not active_only:
            return rewards
        now = now_utc()
        return [r for r in rewards if domain.reward_is_active(r.enabled, r.active_from, r.active_until, now)]


async def update_reward(session: AsyncSession, worker: Principal, reward_id: uuid.UUID, data: RewardUpdate) -> Reward:
    async with transaction(session):
        reward = (
            await session.execute(
                select(Reward).where(Reward.id == reward_id, Reward.community == worker.community).with_for_update()
            )
        ).scalar_one_or_none()
        if reward is None:
            raise problems.RewardNotFound()
        values = data.model_dump(exclude_unset=True)
        add_stock = values.pop("add_stock", None)
        for key, value in values.items():
            setattr(reward, key, value)
        if add_stock:
            if reward.stock is None:
                raise problems.OutOfStock(("服务类项目没有库存", "A service reward has no stock"))
            reward.stock += add_stock
        await session.flush()
        return reward


# --- redemption saga -----------------------------------------------------------------------------

_REWARD_FOR_REDEMPTION_SQL = (
    "SELECT id AS reward_id, name, kind, service_code, points, stock, per_resident_limit, active_from, active_until, "
    "enabled FROM gov_rewards WHERE id = $1 AND community = $2"
)

# The reservation (migration 0003): the account locked, the checks and, only when all pass, the
# writes (lots in spending order, the redemption and its allocations, the balance and its statement
# line, the stock, the event). Lots due to expire are not handled there: `due` > 0 sends the caller
# to expire them first (with their statement lines), as domain.plan_spend skips them. The spending
# order is domain.spending_order's: soonest expiry first, unexpiring last, ties by lot id.
_RESERVE_SQL = (
    "SELECT due, available, already, checks_passed, created_at FROM gov_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10, $11, $12, $13, $14, $15, $16, $17, $18)"
)


async def redeem(session: AsyncSession, settings: Settings, resident: Principal, data: RedemptionCreate) -> Redemption:
    """Reserve points (and stock) for a reward; ask property to fulfil a service reward.

    Two statements, each its own transaction unless the caller has one open (`fetch_alone`): the
    reward read, then `gov_reserve`, which holds the account and stock locks only while it runs.
    """
    now = now_utc()
    community, resident_id = resident.community, resident.subject
    reward = await fetch_alone(session, _REWARD_FOR_REDEMPTION_SQL, data.reward_id, community)
    if reward is None:
        raise problems.RewardNotFound()
    if not domain.reward_is_active(reward.enabled, reward.active_from, reward.active_until, now):
        raise problems.RewardInactive()
    cost = reward.points * data.quantity
    timeout = settings.redemption_timeout_s if reward.kind == RewardKind.service else settings.item_pickup_timeout_s
    redemption = Redemption(
        id=uuid.uuid4(),
        community=community,
        resident_id=resident_id,
        reward_id=reward.reward_id,
        quantity=data.quantity,
        points=cost,
        status="reserved",
        deadline=now + timedelta(seconds=timeout),
    )
    event: dict[str, Any] = dict.fromkeys(
        ("event_id", "event_topic", "event_type", "event_source", "event_data", "traceparent", "tracestate")
    )
    if reward.kind == RewardKind.service:
        assert reward.service_code is not None
        event = publisher.outbox_params(
            RedemptionReserved(
                redemption_id=str(redemption.id),
                community=community,
                resident_id=resident_id,
                reward_id=str(reward.reward_id),
                service_code=reward.service_code,
                points=cost,
                quantity=data.quantity,
            )
        )
    args = (
        community,
        resident_id,
        reward.reward_id,
        redemption.id,
        now,
        cost,
        data.quantity,
        reward.per_resident_limit,
        reward.stock is not None,
        redemption.deadline,
        reward.name,
        event["event_id"],
        event["event_topic"],
        event["event_type"],
        event["event_source"],
        event["event_data"],
        event["traceparent"],
        event["tracestate"],
    )
    outcome = await fetch_alone(session, _RESERVE_SQL, *args)
    if outcome.due:
        # Rare: lots past their expiry that the sweep has not reached. Expire them (each with its
        # statement line) under the account lock, then reserve from what is left, in one transaction.
        async with transaction(session):
            acct = await _lock_account(session, community, resident_id)
            await _expire_account_lots(session, acct, now)
            outcome = await fetch_alone(session, _RESERVE_SQL, *args)
    if not domain.within_resident_limit(reward.per_resident_limit, int(outcome.already), data.quantity):
        raise problems.ResidentLimitExceeded(limit=reward.per_resident_limit, already=int(outcome.already))
    if outcome.available < cost:
        raise problems.InsufficientPoints(
            (f"需要 {cost} 积分，可用 {outcome.available}", f"Needs {cost} points, {outcome.available} available"),
            needed=cost,
            available=int(outcome.available),
        )
    if outcome.created_at is None:
        # Every check on the account passed, so what stopped the writes was the stock.
        raise problems.OutOfStock()
    redemption.created_at = outcome.created_at
    if event["event_id"] is not None:
        outbox_written(session)
    return redemption


async def _locked_redemption(
    session: AsyncSession, community: str, redemption_id: uuid.UUID, resident_id: str | None = None
) -> Redemption:
    q = select(Redemption).where(Redemption.id == redemption_id, Redemption.community == community)
    if resident_id is not None:
        q = q.where(Redemption.resident_id == resident_id)
    found = (await session.execute(q.with_for_update())).scalar_one_or_none()
    if found is None:
        raise problems.RedemptionNotFound()
    return found


async def _settle(
    session: AsyncSession, redemption: Redemption, action: str, *, ticket_id: str | None = None, reason: str | None = None
) -> None:
    try:
        status = domain.next_redemption_status(domain.RedemptionStatus(redemption.status), action)
    except domain.RedemptionNotOpen:
        raise problems.RedemptionNotOpen(redemption_status=redemption.status) from None
    acct = await _lock_account(session, redemption.community, redemption.resident_id)
    await session.execute(
        update(Account)
        .where(Account.community == acct.community, Account.resident_id == acct.resident_id)
        .values(reserved=Account.reserved - redemption.points)
    )
    redemption.status = status.value
    redemption.settled_at = now_utc()
    if status is domain.RedemptionStatus.captured:
        redemption.ticket_id = ticket_id
        await publisher.publish(
            session,
            RedemptionCaptured(
                redemption_id=str(redemption.id),
                community=redemption.community,
                resident_id=redemption.resident_id,
                points=redemption.points,
                ticket_id=ticket_id,
            ),
            key=str(redemption.id),
        )
        return
    # Released: the points go back to the lots they came from; an expired lot loses them at the next sweep.
    allocations = (
        await session.execute(select(Allocation.lot_id, Allocation.points).where(Allocation.redemption_id == redemption.id))
    ).all()
    for lot_id, points in allocations:
        await session.execute(update(Lot).where(Lot.id == lot_id).values(remaining=Lot.remaining + points))
    reward = (await session.execute(select(Reward).where(Reward.id == redemption.reward_id))).scalar_one()
    if reward.stock is not None:
        await session.execute(update(Reward).where(Reward.id == reward.id).values(stock=Reward.stock + redemption.quantity))
    redemption.release_reason = reason
    await _entry(session, acct, "refund", redemption.points, ref_type="redemption", ref_id=str(redemption.id), reason=reason)
    await publisher.publish(
        session,
        RedemptionReleased(
            redemption_id=str(redemption.id),
            community=redemption.community,
            resident_id=redemption.resident_id,
            points=redemption.points,
            reason=reason or "released",
        ),
        key=str(redemption.id),
    )


async def capture_redemption(
    session: AsyncSession, community: str, redemption_id: uuid.UUID, ticket_id: str | None = None
) -> Redemption:
    async with transaction(session):
        redemption = await _locked_redemption(session, community, redemption_id)
        await _settle(session, redemption, "capture", ticket_id=ticket_id)
        return redemption


async def release_redemption(
    session: AsyncSession, community: str, redemption_id: uuid.UUID, reason: str, *, resident_id: str | None = None
) -> Redemption:
    async with transaction(session):
        redemption = await _locked_redemption(session, community, redemption_id, resident_id)
        await _settle(session, redemption, "release", reason=reason)
        return redemption


async def settle_from_property(
    session: AsyncSession,
    community: str,
    redemption_id: str,
    *,
    fulfilled: bool,
    ticket_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Property's answer. A late answer for a redemption already settled (e.g. timed out) is ignored."""
    try:
        rid = uuid.UUID(redemption_id)
    except ValueError:
        return
    async with transaction(session):
        found = (
            await session.execute(
                select(Redemption).where(Redemption.id == rid, Redemption.community == community).with_for_update()
            )
        ).scalar_one_or_none()
        if found is None or found.status != "reserved":
            return
        if fulfilled:
            await _settle(session, found, "capture", ticket_id=ticket_id)
        else:
            await _settle(session, found, "release", reason=f"property: {reason or 'failed'}")


async def release_overdue(session: AsyncSession, *, limit: int = 100) -> int:
    """The saga's timeout: release reserved redemptions past their deadline."""
    async with transaction(session):
        due = (
            (
                await session.execute(
                    select(Redemption)
                    .where(Redemption.status == "reserved", Redemption.deadline <= now_utc())
                    .order_by(Redemption.deadline)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        for redemption in due:
            await _settle(session, redemption, "release", reason="timeout")
        return len(due)


async def get_redemption(session: AsyncSession, caller: Principal, redemption_id: uuid.UUID) -> Redemption:
    async with transaction(session):
        q = select(Redemption).where(Redemption.id == redemption_id, Redemption.community == caller.community)
        if not caller.is_staff:
            q = q.where(Redemption.resident_id == caller.subject)
        found = (await session.execute(q)).scalar_one_or_none()
        if found is None:
            raise problems.RedemptionNotFound()
        return found


async def list_redemptions(
    session: AsyncSession, community: str, page: PageParams, *, resident_id: str | None, status: str | None
) -> tuple[list[Redemption], str | None]:
    async with transaction(session):
        q = select(Redemption).where(Redemption.community == community)
        if resident_id is not None:
            q = q.where(Redemption.resident_id == resident_id)
        if status is not None:
            q = q.where(Redemption.status == status)
        after = page.after()
        if after:
            q = q.where(
                or_(
                    Redemption.created_at < datetime.fromisoformat(after[0]),
                    and_(Redemption.created_at == datetime.fromisoformat(after[0]), Redemption.id < uuid.UUID(after[1])),
                )
            )
        rows = list(
            (await session.execute(q.order_by(Redemption.created_at.desc(), Redemption.id.desc()).limit(page.limit + 1)))
            .scalars()
            .all()
        )
        return make_page(rows, page.limit, lambda r: [r.created_at.isoformat(), str(r.id)])


# --- points payment for property orders ----------------------------------------------------------


async def settle_points_payment(
    session: AsyncSession, *, payment_id: str, community: str, resident_id: str, points: int, order_id: str | None
) -> str:
    """Reserve and capture at once; answer property either way. Returns the status."""
    async with transaction(session):
        existing = (
            await session.execute(select(PointsPayment.status).where(PointsPayment.payment_id == payment_id))
        ).scalar_one_or_none()
        if existing is not None:
            return str(existing)
        status, reason = "captured", None
        if points <= 0:
            status, reason = "rejected", "invalid-points"
        else:
            acct = await _lock_account(session, community, resident_id)
            try:
                async with session.begin_nested():
                    await _spend(session, acct, points, now_utc())
                    await _entry(
                        session,
                        acct,
                        "spend",
                        -points,
                        ref_type="points_payment",
                        ref_id=payment_id,
                        reason=f"物业订单 / property order {order_id or ''}".strip(),
                    )
            except problems.InsufficientPoints:
                status, reason = "rejected", "insufficient-points"
        session.add(
            PointsPayment(
                payment_id=payment_id,
                community=community,
                resident_id=resident_id,
                order_id=order_id,
                points=points,
                status=status,
                reason=reason,
            )
        )
        await publisher.publish(
            session,
            PointsPaymentSettled(payment_id=payment_id, community=community, status=status, reason=reason),
            key=payment_id,
        )
        return status


# --- expiry --------------------------------------------------------------------------------------


async def expire_due_lots(session: AsyncSession, *, now: datetime | None = None, accounts: int = 200) -> int:
    """Expire due lots for up to `accounts` residents; returns the points expired."""
    at = now or now_utc()
    async with transaction(session):
        owners = (
            await session.execute(
                select(Lot.community, Lot.resident_id)
                .where(Lot.remaining > 0, Lot.expires_at.is_not(None), Lot.expires_at <= at)
                .group_by(Lot.community, Lot.resident_id)
                .order_by(Lot.community, Lot.resident_id)
                .limit(accounts)
            )
        ).all()
        total = 0
        for community, resident_id in owners:
            acct = await _lock_account(session, community, resident_id)
            total += await _expire_account_lots(session, acct, at)
        return total
