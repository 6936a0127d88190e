"""The gateway's operator commands, run where the gateway's database can be reached (a Job, a shell).

    GATEWAY_ADMIN_PASSWORD=... python -m gateway.operator create-admin <username>

`create-admin` makes a platform administrator (role `platform_admin`), who logs in by password with
the reserved community `platform` and then creates and configures communities through the API.
Without the variable the password is asked for. Run again, it resets that administrator's password
(the way back in when it is lost); its open sessions end at their refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.identity import Passwords
from gateway.models import RefreshToken, StaffMember
from gateway.settings import Settings
from services.kit.auth import PLATFORM_COMMUNITY
from services.kit.db import make_engine, make_sessionmaker

MIN_PASSWORD_LENGTH = 12


async def create_admin(sessionmaker: async_sessionmaker[AsyncSession], username: str, password_hash: str) -> str:
    """Create the platform administrator `username`, or set its password; returns its subject id."""
    async with sessionmaker() as session, session.begin():
        found = (
            await session.execute(
                select(StaffMember).where(col(StaffMember.community) == PLATFORM_COMMUNITY, col(StaffMember.username) == username)
            )
        ).scalar_one_or_none()
        if found is not None:
            found.password_hash = password_hash
            found.roles = ["platform_admin"]
            # A reset password ends the sessions the old one opened.
            await session.execute(
                update(RefreshToken)
                .where(col(RefreshToken.subject) == found.id, col(RefreshToken.revoked_at).is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            return found.id
        admin_id = str(uuid.uuid4())
        session.add(
            StaffMember(
                id=admin_id,
                community=PLATFORM_COMMUNITY,
                username=username,
                roles=["platform_admin"],
                password_hash=password_hash,
            )
        )
        return admin_id


async def create_admin_command(settings: Settings, username: str, password: str) -> str:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        password_hash = await Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(password)
        return await create_admin(make_sessionmaker(engine), username, password_hash)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.operator")
    sub = parser.add_subparsers(dest="command", required=True)
    admin_p = sub.add_parser("create-admin", help="create a platform administrator, or reset its password")
    admin_p.add_argument("username")
    args = parser.parse_args(argv)
    password = os.environ.get("GATEWAY_ADMIN_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"a platform administrator's password needs at least {MIN_PASSWORD_LENGTH} characters")
    admin_id = asyncio.run(create_admin_command(Settings(), args.username, password))
    print(f"platform administrator {args.username} ({admin_id}): log in with community {PLATFORM_COMMUNITY!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
