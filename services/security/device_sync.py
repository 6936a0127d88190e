"""What a door pulls to work offline: the revocations of passes still in their window, and the live
passes of its building (with their keypad codes).

Both are cursor pages on a number that grows in commit order within a community (`revoked_seq`,
`issued_seq`): each is drawn while the transaction holds the community's lock for that kind of
write, and the lock is held to commit, so a number a device has read past is never committed later.
A device pages through with `cursor`; the next sync starts with `after`, the last number it kept.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import Principal
from services.kit.db import transaction
from services.kit.pagination import PageParams, make_page
from services.security.devices import calling_device
from services.security.models import PASSES
from services.security.schemas import DevicePass, Revocation


def sync_start(page: PageParams, after: int) -> int:
    """The number to read after: `after` starts a sync, the cursor continues it. A client that keeps
    its query and adds the cursor sends both; the cursor's number is then the greater one."""
    key = page.after_key(int)
    return after if key is None else max(after, int(key[0]))


async def revocations(session: AsyncSession, who: Principal, page: PageParams, after: int) -> tuple[list[Revocation], str | None]:
    """Revocations after a number, of passes still in their window, in revocation order."""
    query = (
        select(PASSES.c.id, PASSES.c.revoked_seq, PASSES.c.valid_until)
        .where(
            PASSES.c.community == who.community,
            PASSES.c.revoked_seq > sync_start(page, after),
            PASSES.c.valid_until > datetime.now(UTC),
        )
        .order_by(PASSES.c.revoked_seq)
        .limit(page.limit + 1)
    )
    async with transaction(session):
        await calling_device(session, who)
        rows = (await session.execute(query)).all()
    found = [Revocation(pass_id=r.id, revoked_seq=r.revoked_seq, valid_until=r.valid_until) for r in rows]
    return make_page(found, page.limit, lambda revocation: [revocation.revoked_seq])


async def building_passes(
    session: AsyncSession, who: Principal, page: PageParams, after: int
) -> tuple[list[DevicePass], str | None]:
    """The live (unrevoked, unexpired) passes of the calling device's building, in issue order."""
    start = sync_start(page, after)
    async with transaction(session):
        device = await calling_device(session, who)
        query = (
            select(PASSES.c.id, PASSES.c.code, PASSES.c.token, PASSES.c.valid_until, PASSES.c.issued_seq)
            .where(
                PASSES.c.community == device.community,
                PASSES.c.building_id == device.building_id,
                PASSES.c.issued_seq > start,
                PASSES.c.revoked_at.is_(None),
                PASSES.c.valid_until > datetime.now(UTC),
            )
            .order_by(PASSES.c.issued_seq)
            .limit(page.limit + 1)
        )
        rows = (await session.execute(query)).all()
    found = [
        DevicePass(pass_id=r.id, code=r.code, token=r.token, valid_until=r.valid_until, issued_seq=r.issued_seq) for r in rows
    ]
    return make_page(found, page.limit, lambda device_pass: [device_pass.issued_seq])
