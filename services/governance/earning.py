"""Earning by rule: the rules themselves, grants for other services' events, check-ins, and the
clawback when the event a grant came from is reversed. Each public function is one transaction."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_core import to_jsonable_python
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.governance import domain, problems
from services.governance.accounts import expiry_after, hold_account, now_utc, return_to_budget, take_points_back
from services.governance.domain import SkipReason, Trigger
from services.governance.events import PointsGranted, publisher
from services.governance.models import CheckinCode, Grant, Rule
from services.governance.schemas import CheckinCodeCreate, RuleCreate, RuleUpdate
from services.governance.settings import Settings
from services.kit.auth import Principal
from services.kit.db import fetch_all_alone, transaction
from services.kit.outbox import outbox_written
from services.kit.pagination import PageParams, make_page
from services.kit.telemetry import current_traceparent


@dataclass(frozen=True)
class GrantOutcome:
    grant_id: uuid.UUID | None
    points: int
    skipped: SkipReason | None
    duplicate: bool = False


def rule_terms(rule: Rule) -> domain.RuleTerms:
    return domain.RuleTerms(
        points=rule.points, per_hour=rule.per_hour, enabled=rule.enabled, valid_from=rule.valid_from, valid_until=rule.valid_until
    )


# One round trip per grant: the grant row, cap counter, budget, account lock, lot, statement line and
# event (sql/gov_grant.sql explains the function).
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
    terms = rule_terms(rule)
    skip = domain.rule_skip_reason(terms, at)
    points = domain.points_for(terms, minutes)
    if skip is None and points <= 0:
        skip = SkipReason.zero_points
    if skip is not None and strict:
        raise problems.RuleInactive()
    start = (
        domain.period_start(domain.CapPeriod(rule.cap_period), at, ZoneInfo(settings.community_timezone))
        if rule.cap_count is not None and rule.cap_period is not None
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
                "cap": rule.cap_count if start is not None else None,
                "period_start": start,
                "expires_at": expiry_after(at, rule.lot_validity_days),
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
    again and again. The batch commits as one, so it sees the rules as they were when it began."""
    tx = session.get_transaction()
    cached: tuple[Any, dict[tuple[str, str], Sequence[Rule]]] | None = session.info.get(_RULES_CACHE)
    if cached is None or cached[0] is not tx:
        cached = (tx, {})
        session.info[_RULES_CACHE] = cached
    rules = cached[1]
    key = (community, trigger.value)
    if key not in rules:
        query = select(Rule).where(col(Rule.community) == community, col(Rule.trigger) == trigger.value)
        rules[key] = (await session.exec(query.order_by(col(Rule.created_at)))).all()
    return rules[key]


# In the driver's form: it runs once per batch of the earning consumer, where the ORM's select cost
# more CPU than the statement.
_COMMUNITIES_WITH_RULES = "SELECT DISTINCT community FROM gov_rules WHERE trigger = $1 AND community = ANY($2::text[])"


async def communities_with_rules(session: AsyncSession, trigger: Trigger, communities: set[str]) -> set[str]:
    """Which of `communities` have any rule (enabled or not) keyed on `trigger`: one statement, so a
    batch of events can pass over those of communities that could grant nothing for them."""
    rows = await fetch_all_alone(session, _COMMUNITIES_WITH_RULES, trigger.value, list(communities))
    return {row.community for row in rows}


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
    query = select(Rule).where(col(Rule.id) == rule_id, col(Rule.community) == community)
    rule = (await session.exec(query)).one_or_none()
    if rule is None:
        raise problems.RuleNotFound()
    if not Trigger(rule.trigger).is_checkin:
        raise problems.NotACheckinRule()
    return rule


async def _granted(session: AsyncSession, outcome: GrantOutcome) -> Grant:
    assert outcome.grant_id is not None
    return (await session.exec(select(Grant).where(col(Grant.id) == outcome.grant_id))).one()


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
        return await _granted(session, outcome)


async def checkin_by_code(session: AsyncSession, settings: Settings, resident: Principal, code: str) -> Grant:
    async with transaction(session):
        now = now_utc()
        today = now.astimezone(ZoneInfo(settings.community_timezone)).date()
        query = select(CheckinCode).where(col(CheckinCode.code) == code, col(CheckinCode.community) == resident.community)
        found = (await session.exec(query)).one_or_none()
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
        return await _granted(session, outcome)


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


async def reverse_source(session: AsyncSession, *, community: str, source_ref: str, reason: str) -> int:
    """Claw back every grant made for `source_ref`, even if spent. Returns the points clawed back."""
    async with transaction(session):
        query = select(Grant).where(
            col(Grant.community) == community,
            col(Grant.source_ref) == source_ref,
            col(Grant.status) == "granted",
            col(Grant.reversed_at).is_(None),
        )
        grants = (await session.exec(query.order_by(col(Grant.id)).with_for_update())).all()
        total = 0
        for grant in grants:
            await return_to_budget(session, community, grant.points)
            acct = await hold_account(session, community, grant.resident_id)
            await take_points_back(
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


async def list_rules(session: AsyncSession, community: str, page: PageParams) -> tuple[list[Rule], str | None]:
    """The community's rules by code: unique in the community, and its unique index serves the keyset."""
    query = select(Rule).where(col(Rule.community) == community)
    after = page.after_key(str)
    if after:
        query = query.where(col(Rule.code) > after[0])
    async with transaction(session):
        rows = list((await session.exec(query.order_by(col(Rule.code)).limit(page.limit + 1))).all())
    return make_page(rows, page.limit, lambda rule: [rule.code])


async def update_rule(session: AsyncSession, worker: Principal, rule_id: uuid.UUID, data: RuleUpdate) -> Rule:
    async with transaction(session):
        query = select(Rule).where(col(Rule.id) == rule_id, col(Rule.community) == worker.community)
        rule = (await session.exec(query.with_for_update())).one_or_none()
        if rule is None:
            raise problems.RuleNotFound()
        for key, value in data.model_dump(exclude_unset=True).items():
            setattr(rule, key, value)
        await session.flush()
        return rule
