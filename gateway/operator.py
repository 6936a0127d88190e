"""The gateway's operator commands, run where the gateway's database can be reached (a Job, a shell).

    GATEWAY_ADMIN_PASSWORD=... python -m gateway.operator create-admin <username>
    python -m gateway.operator put-community <id> --name <name> --region-code <6 digits>

`create-admin` makes a platform administrator (role `platform_admin`), who logs in by password with
the reserved community `platform` and then creates and configures communities through the API.
Without the variable the password is asked for. Run again, it resets that administrator's password
(the way back in when it is lost); its open sessions end at their refresh. `put-community` is the
API's `PUT /platform/communities/{id}` for a shell with database access (it keeps the settings and
active flag at their defaults): the API is the way; this is for scripts that run before any admin exists.
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

from gateway.communities import put_community
from gateway.identity import Passwords
from gateway.models import RefreshToken, StaffMember
from gateway.schemas import CommunityPut
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
            return str(found.id)
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


async def put_community_at(database_url: str, community_id: str, name: str, region_code: str) -> bool:
    """Create or rename a community straight in the gateway's database (the API's use case); True if created."""
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            _, created = await put_community(session, community_id, CommunityPut(name=name, region_code=region_code))
            return created
    finally:
        await engine.dispose()


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
    community_p = sub.add_parser("put-community", help="create or rename a community (the API's PUT, without a token)")
    community_p.add_argument("community")
    community_p.add_argument("--name", required=True)
    community_p.add_argument("--region-code", required=True, help="6-digit administrative division code")
    args = parser.parse_args(argv)
    if args.command == "put-community":
        created = asyncio.run(put_community_at(Settings().database_url, args.community, args.name, args.region_code))
        print(f"community {args.community} {'created' if created else 'updated'}; every gateway serves it within seconds")
        return
    password = os.environ.get("GATEWAY_ADMIN_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"a platform administrator's password needs at least {MIN_PASSWORD_LENGTH} characters")
    admin_id = asyncio.run(create_admin_command(Settings(), args.username, password))
    print(f"platform administrator {args.username} ({admin_id}): log in with community {PLATFORM_COMMUNITY!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
