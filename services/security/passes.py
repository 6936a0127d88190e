"""Visitor passes (访客通行证): a resident invites a visitor; doors check the signed pass offline, or
online here, where the entry count and revocations are the authority.

A resident sees and revokes only their own passes (anyone else's is 404, as is another community's);
staff see today's expected visitors per building, with no visitor details.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import func, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, after_key_condition, make_page
from services.security import domain, pass_keys, problems
from services.security.devices import calling_device
from services.security.events import PassCarAllowed, PassIssued, PassRevoked, publisher
from services.security.models import ISSUE_SEQ, PASSES, RESIDENTS, REVOCATION_SEQ, VisitorPass
from services.security.pass_tokens import PassClaims, PassRefused, check_claims, sign_pass, verify_signature
from services.security.schemas import ExpectedVisitor, IssuedPass, PassCheck, PassCreate, PassDecision


async def issue_pass(session: AsyncSession, who: Principal, body: PassCreate, max_hours: int) -> IssuedPass:
    now = datetime.now(UTC)
    problem = domain.window_problem(body.valid_from, body.valid_until, now, max_hours)
    if problem:
        raise problems.InvalidPassWindow(problem)
    async with transaction(session):
        resident = (
            await session.execute(
                select(RESIDENTS).where(RESIDENTS.c.community == who.community, RESIDENTS.c.resident_id == who.subject)
            )
        ).first()
        if resident is None:
            raise problems.NotAResident()
        # One community's issuing is serialised while a code is picked, so two live passes never
        # share a keypad code.
        await pass_keys.lock_issuing(session, who.community)
        code = await _free_code(session, who.community, now)
        # Drawn under the same lock, held to commit: issue numbers commit in order (device_sync.py).
        issued_seq = await session.scalar(select(ISSUE_SEQ.next_value()))
        key_id, key = await pass_keys.signing_key(session, who.community)
        pass_id = f"vp-{uuid.uuid4().hex[:16]}"
        claims = PassClaims(
            pass_id=pass_id,
            community=who.community,
            building_id=resident.building_id,
            key_id=key_id,
            valid_from=int(body.valid_from.timestamp()),
            valid_until=int(body.valid_until.timestamp()),
            max_entries=body.max_entries or 0,
        )
        visitor_pass = VisitorPass(
            id=pass_id,
            community=who.community,
            resident_id=who.subject,
            household_id=resident.household_id,
            building_id=resident.building_id,
            code=code,
            plate=body.plate,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            max_entries=body.max_entries,
            token=sign_pass(claims, key),
            created_at=now,
            issued_seq=issued_seq,
        )
        session.add(visitor_pass)
        await session.flush()
        event = PassIssued(
            pass_id=pass_id,
            community=who.community,
            building_id=resident.building_id,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            max_entries=body.max_entries,
            has_plate=body.plate is not None,
        )
        await publisher.publish(session, event, key=pass_id)
        if body.plate is not None:
            car = PassCarAllowed(
                pass_id=pass_id,
                community=who.community,
                plate=body.plate,
                valid_from=body.valid_from,
                valid_until=body.valid_until,
                max_entries=body.max_entries,
            )
            await publisher.publish(session, car, key=pass_id)
    return IssuedPass.model_validate(visitor_pass, from_attributes=True)


async def _free_code(session: AsyncSession, community: str, now: datetime) -> str:
    while True:
        code = domain.new_code()
        taken = await session.scalar(
            select(PASSES.c.id).where(PASSES.c.community == community, PASSES.c.code == code, PASSES.c.valid_until > now).limit(1)
        )
        if taken is None:
            return code


def _my_pass_cursor(visitor_pass: VisitorPass) -> list[str]:
    assert visitor_pass.created_at is not None
    return [visitor_pass.created_at.isoformat(), visitor_pass.id]


async def my_passes(session: AsyncSession, who: Principal, page: PageParams) -> tuple[list[VisitorPass], str | None]:
    """My passes, newest first; the id breaks a tie between passes issued in one instant."""
    query = select(VisitorPass).where(PASSES.c.community == who.community, PASSES.c.resident_id == who.subject)
    after = page.after_key(datetime, str)
    if after:
        query = query.where(after_key_condition([PASSES.c.created_at, PASSES.c.id], after, descending=True))
    query = query.order_by(PASSES.c.created_at.desc(), PASSES.c.id.desc()).limit(page.limit + 1)
    async with transaction(session):
        rows = list(await session.scalars(query))
    return make_page(rows, page.limit, _my_pass_cursor)


async def my_pass(session: AsyncSession, who: Principal, pass_id: str) -> IssuedPass:
    async with transaction(session):
        found = await _own(session, who, pass_id)
        return IssuedPass.model_validate(found, from_attributes=True)


async def _own(session: AsyncSession, who: Principal, pass_id: str) -> VisitorPass:
    found = await session.scalar(
        select(VisitorPass).where(
            PASSES.c.id == pass_id, PASSES.c.community == who.community, PASSES.c.resident_id == who.subject
        )
    )
    if found is None:
        raise problems.PassNotFound()
    return found


async def revoke_pass(session: AsyncSession, who: Principal, pass_id: str) -> VisitorPass:
    """Revoke one's own pass; revoking again changes nothing (and publishes nothing)."""
    async with transaction(session):
        # The community's revocation lock, held to commit, comes first: numbers are drawn and commit
        # in order, so a device that read past one never misses it (device_sync.py); and a second
        # revoke of the same pass reads the first's result instead of numbering it again.
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("security.revoke:" + who.community, 0))))
        found = await _own(session, who, pass_id)
        if found.revoked_at is None:
            seq = await session.scalar(select(REVOCATION_SEQ.next_value()))
            found.revoked_at = datetime.now(UTC)
            found.revoked_seq = seq
            await session.flush()
            event = PassRevoked(
                pass_id=found.id,
                community=found.community,
                building_id=found.building_id,
                revoked_seq=int(seq or 0),
                valid_until=found.valid_until,
            )
            await publisher.publish(session, event, key=found.id)
        return found


async def expected_visitors(
    session: AsyncSession, who: Principal, day: date, building_id: str | None, tz: str, page: PageParams
) -> tuple[list[ExpectedVisitor], str | None]:
    """The day's unrevoked passes by building, then start, then id (the index ix_passes_building_day)."""
    start, end = domain.local_day_bounds(day, tz)
    query = select(VisitorPass).where(
        PASSES.c.community == who.community,
        PASSES.c.revoked_at.is_(None),
        PASSES.c.valid_from < end,
        PASSES.c.valid_until > start,
    )
    if building_id:
        query = query.where(PASSES.c.building_id == building_id)
    after = page.after_key(str, datetime, str)
    if after:
        query = query.where(after_key_condition([PASSES.c.building_id, PASSES.c.valid_from, PASSES.c.id], after))
    query = query.order_by(PASSES.c.building_id, PASSES.c.valid_from, PASSES.c.id).limit(page.limit + 1)
    async with transaction(session):
        rows = list(await session.scalars(query))
    visitors = [
        ExpectedVisitor(
            pass_id=p.id,
            building_id=p.building_id,
            valid_from=p.valid_from,
            valid_until=p.valid_until,
            max_entries=p.max_entries,
            entries_used=p.entries_used,
            has_plate=p.plate is not None,
        )
        for p in rows
    ]
    return make_page(visitors, page.limit, lambda v: [v.building_id, v.valid_from.isoformat(), v.pass_id])


# The online check's one write: count the entry if the pass is still good now. The conditions are
# the rule; the UPDATE's row lock makes concurrent scans of a single-entry pass admit one.
_COUNT_ENTRY = text("""
    UPDATE passes SET entries_used = entries_used + 1
     WHERE id = :id AND community = :community AND revoked_at IS NULL
       AND valid_from <= :now AND valid_until > :now
       AND (max_entries IS NULL OR entries_used < max_entries)
    RETURNING entries_used, max_entries""")


async def check_pass(session: AsyncSession, who: Principal, body: PassCheck) -> PassDecision:
    """A connected door asks: the signature and window as offline, then revocation and the entry count here."""
    now = datetime.now(UTC)
    async with transaction(session):
        device = await calling_device(session, who)
        token = body.token
        if token is None and body.code is not None:
            token = await session.scalar(
                select(PASSES.c.token).where(
                    PASSES.c.community == device.community,
                    PASSES.c.code == body.code,
                    PASSES.c.valid_from <= now,
                    PASSES.c.valid_until > now,
                )
            )
            if token is None:
                return PassDecision(admit=False, reason="unknown-code")
        if token is None:
            return PassDecision(admit=False, reason="malformed")
        try:
            claims = verify_signature(token, await pass_keys.public_keys(session, device.community))
            check_claims(claims, device.community, now)
        except PassRefused as refused:
            return PassDecision(admit=False, reason=refused.reason)
        row = (await session.execute(_COUNT_ENTRY, {"id": claims.pass_id, "community": device.community, "now": now})).first()
        if row is None:
            revoked = await session.scalar(select(PASSES.c.revoked_at).where(PASSES.c.id == claims.pass_id))
            return PassDecision(admit=False, reason="revoked" if revoked else "used-up", pass_id=claims.pass_id)
        left = None if row.max_entries is None else row.max_entries - row.entries_used
        return PassDecision(admit=True, reason="ok", pass_id=claims.pass_id, entries_left=left)
