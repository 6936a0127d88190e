"""Hours held longer than the community's validity period (时间到期作废) move to the pool: the
scheduled job that moves them, and the outlook a member reads ahead of it."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from functools import partial

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.timebank import domain, ledger
from services.timebank.community import community_settings
from services.timebank.domain import now_utc
from services.timebank.events import HoursExpired, HoursExpiring, publisher
from services.timebank.ledger import Leg
from services.timebank.members import may_see_member, member_view
from services.timebank.models import SETTINGS, WARNINGS
from services.timebank.problems import NotAMember
from services.timebank.schemas import ExpiringHours, HoursExpiryOutlook
from services.timebank.transfer_ids import retrying

HOURS_EXPIRY_ACTOR = "system:hours-expiry"
_EXPIRY_PAGE = 200

# A member's hours still valid: the posted credits since the start of the validity period, less
# those a reversal took back (it undid that credit, not the member's oldest hours).
_VALID_CREDITS_OF = """
      FROM tb_transfers t
     WHERE t.credit_account_id = {account} AND t.phase = 'posted' AND t.created_at >= {since}
       AND NOT EXISTS (SELECT 1 FROM tb_transfers r WHERE r.reverses_id = t.id)"""
_CREDITS_SINCE = "SELECT coalesce(sum(t.amount_minutes), 0) AS minutes" + _VALID_CREDITS_OF
# Summed per account, for any number of accounts: (account id, minutes).
_VALID_CREDITS_OF_ACCOUNTS = text(f"""
    SELECT a.id, ({_CREDITS_SINCE.format(account="a.id", since=":since")}) AS minutes
      FROM unnest(CAST(:accounts AS uuid[])) AS a(id)""")
# The same credits one by one, oldest first, up to those that stay valid past a horizon.
_VALID_CREDITS_UNTIL = text(
    "SELECT t.created_at, t.amount_minutes"
    + _VALID_CREDITS_OF.format(account=":account", since=":since")
    + " AND t.created_at < :horizon_from ORDER BY t.created_at, t.seq"
)
# A community's member accounts holding more than their valid credits, in id order after a key
# (through ix_tb_accounts_community_kind_id, so a page stops at its end). Accounts with nothing
# available are passed over before their credits are summed (through ix_tb_transfers_credit_seq).
_EXPIRY_CANDIDATES = text(f"""
    SELECT a.id
      FROM tb_accounts a
     CROSS JOIN LATERAL ({_CREDITS_SINCE.format(account="a.id", since=":valid_from")}) valid
     WHERE a.community = :community AND a.kind = 'member' AND a.id > :after_id
       AND a.credits_posted - a.debits_posted - a.debits_pending > 0
       AND a.credits_posted - a.debits_posted - a.debits_pending > valid.minutes
     ORDER BY a.id
     LIMIT :limit""")


async def _communities_whose_hours_expire(session: AsyncSession) -> list[tuple[str, int]]:
    """Each community with `hours_expire` on, and how many months its hours stay valid."""
    async with transaction(session):
        rows = (
            await session.execute(
                select(SETTINGS.c.community, SETTINGS.c.hours_valid_months)
                .where(SETTINGS.c.hours_expire)
                .order_by(SETTINGS.c.community)
            )
        ).all()
    return [(community, months) for community, months in rows]


async def expire_hours(session: AsyncSession, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Move members' hours older than the validity period to the pool, in the communities with
    `hours_expire` on (the scheduled job calls this). Looks at `limit` accounts at most; returns
    how many `expiry` transfers it wrote.

    The candidates are read set-based, a page at a time; each page's accounts of one community are
    then expired in one transaction that locks them and works the amounts out again, so a re-run
    or a second replica finds nothing left.
    """
    now = now or now_utc()
    periods = await _communities_whose_hours_expire(session)
    seen = expired = 0
    for community, months in periods:
        params = {"community": community, "valid_from": domain.hours_valid_from(now, months), "after_id": uuid.UUID(int=0)}
        while seen < limit:
            async with transaction(session):
                page = list(
                    (await session.execute(_EXPIRY_CANDIDATES, {**params, "limit": min(_EXPIRY_PAGE, limit - seen)})).scalars()
                )
            if page:
                expired += await retrying(partial(_expire_accounts, session, community, page, now))
            seen += len(page)
            if len(page) < _EXPIRY_PAGE:
                break  # this community has no more
            params["after_id"] = page[-1]
    return expired


async def hours_expiry_outlook(
    session: AsyncSession, principal: Principal, member_id: str, *, days: int, now: datetime | None = None
) -> HoursExpiryOutlook:
    """What a member would lose to expiry in the next `days` days if nothing else changes (for the
    member, a verified relative or staff): the same rule the job applies, looked at ahead."""
    community = principal.community
    now = now or now_utc()
    until = now + timedelta(days=days)
    async with transaction(session):
        if not await may_see_member(session, principal, member_id):
            raise NotAMember(member_id=member_id)
        member = await member_view(session, community, member_id)  # the member and its account's totals
        settings = await community_settings(session, community)
        available = domain.Balances(
            debits_pending=member.debits_pending, debits_posted=member.debits_posted, credits_posted=member.credits_posted
        ).available
        outlook: list[tuple[date, int]] = []
        if settings.hours_expire and available > 0:
            months = settings.hours_valid_months
            since = domain.hours_valid_from(now, months)
            [(_, valid)] = (
                (await session.execute(_VALID_CREDITS_OF_ACCOUNTS, {"accounts": [member.account_id], "since": since}))
                .tuples()
                .all()
            )
            ageing = (
                await session.execute(
                    _VALID_CREDITS_UNTIL,
                    {"account": member.account_id, "since": since, "horizon_from": domain.hours_valid_from(until, months)},
                )
            ).all()
            outlook = domain.expiry_outlook(
                available, int(valid), [(r.created_at, r.amount_minutes) for r in ageing], months, now=now, until=until
            )
    return HoursExpiryOutlook(
        member_id=member_id,
        hours_expire=settings.hours_expire,
        valid_months=settings.hours_valid_months,
        available_minutes=available,
        expiring=[ExpiringHours(on=day, minutes=minutes) for day, minutes in outlook],
    )


async def _expire_accounts(session: AsyncSession, community: str, account_ids: list[uuid.UUID], now: datetime) -> int:
    """Move some members' expired hours to the pool, worked out under their accounts' locks (taken
    in id order with the pool's, as every use case takes them): one transaction, one `expiry`
    transfer and one event per member with hours to expire. Returns how many."""
    async with transaction(session):
        settings = await community_settings(session, community)
        if not settings.hours_expire:
            return 0  # switched off since the candidates were read
        months = settings.hours_valid_months
        pool = ledger.pool_account_id(community)
        accounts = await ledger.lock_accounts(session, community, {*account_ids, pool})
        valid = dict(
            (
                await session.execute(
                    _VALID_CREDITS_OF_ACCOUNTS, {"accounts": account_ids, "since": domain.hours_valid_from(now, months)}
                )
            )
            .tuples()
            .all()
        )
        legs, events = [], []
        for account_id in account_ids:
            member = accounts[account_id]
            minutes = domain.expiring_minutes(member.balances.available, int(valid[account_id]))
            if minutes == 0:
                continue
            leg = Leg(
                id=uuid.uuid4(),
                kind="expiry",
                phase="posted",
                debit=account_id,
                credit=pool,
                amount=minutes,
                fingerprint="hours-expiry",
                reason=f"hours older than {months} months expired",
            )
            legs.append(leg)
            events.append(
                HoursExpired(
                    transfer_id=str(leg.id),
                    community=community,
                    member_id=member.owner_id or "",
                    minutes=minutes,
                    valid_months=months,
                    expired_at=now,
                ).model_dump(mode="json")
            )
        if not legs:
            return 0
        await ledger.post_legs(
            session, community, HOURS_EXPIRY_ACTOR, legs, cap=settings.storage_cap_minutes, now=now, accounts=accounts
        )
        await publisher.publish_many(session, HoursExpired.event_type, events, [e["transfer_id"] for e in events])
        return len(legs)


# How far ahead members are warned of their hours expiring.
WARN_DAYS = 30

# A community's member accounts holding hours with a credit ageing out within the warning horizon
# (posted in [valid_from, horizon_from)), in id order after a key.
_WARNING_CANDIDATES = text("""
    SELECT a.id, a.owner_id, a.credits_posted - a.debits_posted - a.debits_pending AS available
      FROM tb_accounts a
     WHERE a.community = :community AND a.kind = 'member' AND a.id > :after_id
       AND a.credits_posted - a.debits_posted - a.debits_pending > 0
       AND EXISTS (SELECT 1 FROM tb_transfers t
                    WHERE t.credit_account_id = a.id AND t.phase = 'posted'
                      AND t.created_at >= :valid_from AND t.created_at < :horizon_from)
     ORDER BY a.id
     LIMIT :limit""")


async def warn_expiring_hours(session: AsyncSession, *, now: datetime | None = None, page_size: int = _EXPIRY_PAGE) -> int:
    """Warn members whose hours will expire within `WARN_DAYS` days (communities with `hours_expire`
    on): one `timebank.hours.expiring.v1` per member and day of expiry, by the outlook's rule.
    Reads every candidate account, `page_size` per transaction (accounts warned already are read
    again each run, so it cannot stop at a count); returns how many warnings it published.

    A page's warnings are inserted into `tb_expiry_warnings` with ON CONFLICT DO NOTHING and
    published, in one transaction, only for the rows inserted: a re-run, or a second replica
    running at the same time, publishes nothing twice. Hours already past the period are not
    warned of: the expiry job moves them and `timebank.hours.expired.v1` tells the member.
    """
    now = now or now_utc()
    until = now + timedelta(days=WARN_DAYS)
    today = domain.local_today(now)
    periods = await _communities_whose_hours_expire(session)
    warned = 0
    for community, months in periods:
        since = domain.hours_valid_from(now, months)
        params = {
            "community": community,
            "valid_from": since,
            "horizon_from": domain.hours_valid_from(until, months),
            "after_id": uuid.UUID(int=0),
        }
        while True:
            async with transaction(session):
                page = (await session.execute(_WARNING_CANDIDATES, {**params, "limit": page_size})).all()
                warnings: list[dict[str, object]] = []
                for account in page:
                    [(_, valid)] = (
                        (await session.execute(_VALID_CREDITS_OF_ACCOUNTS, {"accounts": [account.id], "since": since}))
                        .tuples()
                        .all()
                    )
                    ageing = (
                        await session.execute(
                            _VALID_CREDITS_UNTIL,
                            {"account": account.id, "since": since, "horizon_from": params["horizon_from"]},
                        )
                    ).all()
                    steps = domain.expiry_outlook(
                        int(account.available),
                        int(valid),
                        [(r.created_at, r.amount_minutes) for r in ageing],
                        months,
                        now=now,
                        until=until,
                    )
                    warnings += [
                        {"community": community, "member_id": account.owner_id, "expires_on": day, "minutes": minutes}
                        for day, minutes in steps
                        if day > today and account.owner_id
                    ]
                if warnings:
                    new = (
                        await session.execute(
                            insert(WARNINGS)
                            .values(warnings)
                            .on_conflict_do_nothing()
                            .returning(WARNINGS.c.member_id, WARNINGS.c.expires_on, WARNINGS.c.minutes)
                        )
                    ).all()
                    events = [
                        HoursExpiring(
                            community=community,
                            member_id=row.member_id,
                            minutes=row.minutes,
                            expires_on=row.expires_on,
                            valid_months=months,
                        ).model_dump(mode="json")
                        for row in sorted(new, key=lambda r: (r.member_id, r.expires_on))
                    ]
                    await publisher.publish_many(session, HoursExpiring.event_type, events, [str(e["member_id"]) for e in events])
                    warned += len(events)
            if len(page) < page_size:
                break
            params["after_id"] = page[-1].id
    return warned
