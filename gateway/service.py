"""Use cases of the gateway's identity side, each in one transaction.

Who may log in comes from property's registry (see consumers.py); this module turns a proven
identity (code, password, client secret, refresh token) into tokens, and revokes them.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.identity import CodeSender, OneTimeCodes, Passwords
from gateway.keys import KeyRing
from gateway.models import ApiClient, RefreshToken, Resident, StaffMember
from gateway.problems import InvalidGrant, NotRegistered
from gateway.revocations import DenyList, token_digest
from gateway.schemas import (
    ApiClientPublic,
    ApiClientPut,
    ClientCredentialsGrant,
    OtpGrant,
    PasswordGrant,
    RefreshGrant,
    TokenResponse,
)
from gateway.settings import Settings
from services.kit.auth import PLATFORM_COMMUNITY, ROLES, Principal
from services.kit.db import transaction
from services.kit.problems import ValidationFailed
from services.kit.settings import is_local_secret

log = logging.getLogger("gateway.service")


@dataclass
class Identity:
    """What the identity use cases need, built once in the app's lifespan."""

    settings: Settings
    keys: KeyRing
    passwords: Passwords
    codes: OneTimeCodes
    sender: CodeSender
    deny: DenyList


def client_subject(community: str, client_id: str) -> str:
    """A machine caller's subject is its client id: the id an administrator registers it under in
    the service it calls (parking's gate devices, citysync's consumers), as those services expect.

    Every service scopes by the token's community, so the same id in two communities is two callers.
    A UUID-shaped client id is refused (the kit's `ClientId`): it could name a resident or staff member.
    """
    return client_id


def _known_roles(roles: list[str]) -> list[str]:
    # A platform administrator is made only by the operator command (gateway/communities.py), never
    # by a community's registry.
    return sorted(r for r in set(roles) if r in ROLES and r != "platform_admin")


# --- registry (fed by property's events) ----------------------------------------------------------


async def register_resident(
    session: AsyncSession,
    *,
    resident_id: str,
    community: str,
    phone: str,
    roles: list[str],
    registered_at: datetime,
) -> None:
    async with transaction(session):
        values = {"community": community, "phone": phone, "roles": _known_roles(roles) or ["resident"]}
        await session.execute(
            insert(Resident)
            .values(id=resident_id, registered_at=registered_at, **values)
            .on_conflict_do_update(index_elements=["id"], set_=values)
        )


async def register_staff(session: AsyncSession, *, staff_id: str, community: str, username: str, roles: list[str]) -> None:
    if community == PLATFORM_COMMUNITY:
        # The platform's administrators are the operator's, never a community registry's.
        log.warning("ignored a staff registration in the reserved community %r", community)
        return
    async with transaction(session):
        values = {"community": community, "username": username, "roles": _known_roles(roles)}
        # The password hash is the gateway's own: a re-registration never clears it.
        await session.execute(
            insert(StaffMember).values(id=staff_id, **values).on_conflict_do_update(index_elements=["id"], set_=values)
        )


# --- credentials set by an administrator ----------------------------------------------------------


def refuse_local_secret(settings: Settings, secret: str) -> None:
    """Outside local mode, a secret in the shape of the demo's (public in this repository) is refused."""
    if local_secret_in_cluster(settings, secret):
        raise ValidationFailed(
            ("集群模式不接受演示用的密码或密钥", "A cluster refuses the demo's passwords and secrets: choose your own")
        )


def local_secret_in_cluster(settings: Settings, secret: str) -> bool:
    return settings.mode != "local" and is_local_secret(secret)


async def set_staff_password(session: AsyncSession, identity: Identity, admin: Principal, staff_id: str, password: str) -> None:
    refuse_local_secret(identity.settings, password)
    if admin.community == PLATFORM_COMMUNITY:
        # A platform administrator sets any community's staff passwords, never another administrator's.
        in_reach = col(StaffMember.community) != PLATFORM_COMMUNITY
    else:
        in_reach = col(StaffMember.community) == admin.community
    password_hash = await identity.passwords.hash(password)
    async with transaction(session):
        done = (
            await session.execute(
                update(StaffMember)
                .where(col(StaffMember.id) == staff_id, in_reach)
                .values(password_hash=password_hash)
                .returning(col(StaffMember.id))
            )
        ).first()
        if done is None:
            raise NotRegistered(("登记簿中没有该员工", "No such member of staff in this community"))
        # A new password ends every session the old one opened.
        await _revoke_subject(session, staff_id)


async def put_api_client(
    session: AsyncSession, identity: Identity, admin: Principal, client_id: str, data: ApiClientPut
) -> ApiClientPublic:
    refuse_local_secret(identity.settings, data.secret)
    secret_hash = await identity.passwords.hash(data.secret)
    subject = client_subject(admin.community, client_id)
    roles = sorted(set(data.roles))
    async with transaction(session):
        await session.execute(
            insert(ApiClient)
            .values(
                community=admin.community,
                client_id=client_id,
                subject=subject,
                roles=roles,
                secret_hash=secret_hash,
            )
            .on_conflict_do_update(
                index_elements=["community", "client_id"], set_={"roles": roles, "secret_hash": secret_hash, "subject": subject}
            )
        )
    return ApiClientPublic(client_id=client_id, subject=subject, roles=roles, community=admin.community)


# --- logging in -------------------------------------------------------------------------------------


async def send_login_code(session: AsyncSession, identity: Identity, community: str, phone: str) -> None:
    async with transaction(session):
        resident = (
            await session.execute(
                select(Resident)
                .where(col(Resident.community) == community, col(Resident.phone) == phone)
                .order_by(col(Resident.registered_at).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if resident is None:
        return  # an unknown number gets no code, and the caller is not told so
    code = await identity.codes.issue(community, phone)
    await identity.sender.send(resident_id=resident.id, phone=phone, code=code)


async def _issue(
    session: AsyncSession,
    identity: Identity,
    *,
    subject: str,
    roles: list[str],
    community: str,
    kind: str,
    family_id: str | None = None,
) -> TokenResponse:
    settings = identity.settings
    access = identity.keys.mint(subject=subject, roles=roles, community=community, ttl_s=settings.access_ttl_s)
    refresh: str | None = None
    if kind != "client":
        refresh = secrets.token_urlsafe(32)
        session.add(
            RefreshToken(
                token_hash=token_digest(refresh),
                family_id=family_id or uuid.uuid4().hex,
                subject=subject,
                community=community,
                kind=kind,
                expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_ttl_s),
            )
        )
        await session.flush()
    return TokenResponse(
        access_token=access,
        expires_in=settings.access_ttl_s,
        refresh_token=refresh,
        subject=subject,
        roles=roles,
        community=community,
    )


async def login_with_code(session: AsyncSession, identity: Identity, grant: OtpGrant) -> TokenResponse:
    if not await identity.codes.redeem(grant.community, grant.phone, grant.code):
        raise InvalidGrant(("验证码错误或已过期", "The code is wrong or has expired"))
    async with transaction(session):
        resident = (
            await session.execute(
                select(Resident)
                .where(col(Resident.community) == grant.community, col(Resident.phone) == grant.phone)
                .order_by(col(Resident.registered_at).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if resident is None:
            raise InvalidGrant(("验证码错误或已过期", "The code is wrong or has expired"))
        return await _issue(
            session,
            identity,
            subject=resident.id,
            roles=list(resident.roles),
            community=resident.community,
            kind="resident",
        )


async def login_with_password(session: AsyncSession, identity: Identity, grant: PasswordGrant) -> TokenResponse:
    async with transaction(session):
        staff = (
            await session.execute(
                select(StaffMember).where(
                    col(StaffMember.community) == grant.community,
                    col(StaffMember.username) == grant.username,
                )
            )
        ).scalar_one_or_none()
    # A demo password still stored from a local run opens nothing in a cluster.
    valid = await identity.passwords.verify(staff.password_hash if staff else None, grant.password)
    if not valid or staff is None or local_secret_in_cluster(identity.settings, grant.password):
        raise InvalidGrant(("用户名或密码错误", "Wrong username or password"))
    async with transaction(session):
        return await _issue(
            session,
            identity,
            subject=staff.id,
            roles=list(staff.roles),
            community=staff.community,
            kind="staff",
        )


async def login_with_client_secret(session: AsyncSession, identity: Identity, grant: ClientCredentialsGrant) -> TokenResponse:
    async with transaction(session):
        client = await session.get(ApiClient, (grant.community, grant.client_id))
    valid = await identity.passwords.verify(client.secret_hash if client else None, grant.client_secret)
    if not valid or client is None or local_secret_in_cluster(identity.settings, grant.client_secret):
        raise InvalidGrant(("客户端凭证错误", "Wrong client credentials"))
    async with transaction(session):
        return await _issue(
            session,
            identity,
            subject=client.subject,
            roles=list(client.roles),
            community=client.community,
            kind="client",
        )


async def refresh(session: AsyncSession, identity: Identity, grant: RefreshGrant) -> TokenResponse:
    """Swap a refresh token for new tokens. Reusing a spent one revokes its whole family."""
    now = datetime.now(UTC)
    reused = False
    async with transaction(session):
        # FOR UPDATE: of two racing refreshes with one token, exactly one gets through.
        token = (
            await session.execute(
                select(RefreshToken).where(col(RefreshToken.token_hash) == token_digest(grant.refresh_token)).with_for_update()
            )
        ).scalar_one_or_none()
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise InvalidGrant(("刷新令牌无效", "The refresh token is not valid"))
        if token.used_at is not None:
            # Someone replayed a spent token: it may have been stolen, so end the whole session.
            await session.execute(
                update(RefreshToken).where(col(RefreshToken.family_id) == token.family_id).values(revoked_at=now)
            )
            reused = True
        else:
            token.used_at = now
            roles = await _current_roles(session, token)
            if roles is None:
                raise InvalidGrant(("账户已不在登记簿中", "The account is no longer registered"))
            return await _issue(
                session,
                identity,
                subject=token.subject,
                roles=roles,
                community=token.community,
                kind=token.kind,
                family_id=token.family_id,
            )
    assert reused
    raise InvalidGrant(("刷新令牌已被使用", "The refresh token was already used"))


async def _current_roles(session: AsyncSession, token: RefreshToken) -> list[str] | None:
    """Roles are read afresh from the registry, so a change there applies at the next refresh."""
    if token.kind == "resident":
        resident = await session.get(Resident, token.subject)
        return list(resident.roles) if resident else None
    staff = await session.get(StaffMember, token.subject)
    return list(staff.roles) if staff else None


async def _revoke_subject(session: AsyncSession, subject: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(
            col(RefreshToken.subject) == subject,
            col(RefreshToken.revoked_at).is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )


async def logout(
    session: AsyncSession,
    identity: Identity,
    principal: Principal,
    access_token: str,
    refresh_token: str | None,
) -> None:
    """End a session: the access token is deny-listed at once, the refresh token's family revoked."""
    if refresh_token is not None:
        async with transaction(session):
            token = await session.get(RefreshToken, token_digest(refresh_token))
            if token is not None and token.subject == principal.subject:
                await session.execute(
                    update(RefreshToken)
                    .where(col(RefreshToken.family_id) == token.family_id)
                    .values(revoked_at=datetime.now(UTC))
                )
    await identity.deny.revoke(access_token, principal.expires_at)
