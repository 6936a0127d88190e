"""The gateway's own routes: logging in, tokens, keys, credentials, the merged OpenAPI, readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from fastapi.responses import JSONResponse

from gateway import service
from gateway.headers import bearer_token, client_ip
from gateway.identity import GatewayVerifier
from gateway.openapi import refresh_openapi
from gateway.problems import (
    CommunityNotServed,
    InvalidGrant,
    NotRegistered,
    TokenRevoked,
    TooManyRequests,
)
from gateway.protection import RateLimits
from gateway.revocations import token_digest
from gateway.schemas import (
    ApiClientPublic,
    ApiClientPut,
    CodeRequest,
    CodeSent,
    Jwks,
    LogoutRequest,
    Me,
    OtpGrant,
    PasswordGrant,
    PasswordSet,
    RefreshGrant,
    TokenRequest,
    TokenResponse,
)
from gateway.throttle import LoginThrottle
from services.kit.auth import Principal
from services.kit.db import SessionDep
from services.kit.health import ReadinessCheck, assess, assess_app
from services.kit.inputs import ClientId, Text
from services.kit.problems import Forbidden, Unauthorized, ValidationFailed, problem_responses

router = APIRouter(tags=["auth"])
operations = APIRouter(tags=["operations"])

AUTH_PROBLEMS = (Unauthorized, TokenRevoked, CommunityNotServed)


def identity(request: Request) -> service.Identity:
    found: service.Identity = request.app.state.identity
    return found


async def caller(request: Request, *roles: str) -> tuple[Principal, str]:
    verifier: GatewayVerifier = request.app.state.verifier
    token = bearer_token(request)
    principal = await verifier.verify(token)
    request.state.principal = principal
    if roles and not principal.has(*roles):
        raise Forbidden((f"需要以下角色之一: {', '.join(roles)}", f"Requires one of the roles: {', '.join(roles)}"))
    return principal, token


@router.post(
    "/auth/otp",
    status_code=202,
    response_model=CodeSent,
    summary="Send a resident a one-time login code",
    responses=problem_responses(ValidationFailed, TooManyRequests),
)
async def send_code(body: CodeRequest, request: Request, session: SessionDep) -> CodeSent:
    """Send a resident a 6-digit one-time login code.

    The answer is the same whether or not the number is registered, so it reveals nothing; an
    unknown number gets no code. Attempts are limited per client address and per phone number.
    """
    limits: RateLimits = request.app.state.limits
    await limits.check_login(ip=client_ip(request))
    await limits.check_code_send(ip=client_ip(request), phone=token_digest(body.phone))
    await service.send_login_code(session, identity(request), body.community, body.phone)
    return CodeSent(sent=True, expires_in=identity(request).settings.otp_ttl_s)


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    summary="Log in (one-time code, password, client credentials) or refresh",
    responses=problem_responses(InvalidGrant, ValidationFailed, TooManyRequests),
)
async def issue_token(body: Annotated[TokenRequest, Body()], request: Request, session: SessionDep) -> TokenResponse:
    """Log in, or trade a refresh token for new tokens, by `grant_type`.

    `otp` (residents: phone and one-time code), `password` (staff), `client_credentials` (gate
    devices, city sync; no refresh token) or `refresh_token` (each refresh token works once; a
    reused one ends its whole family). Wrong credentials of any kind get the same 401.
    """
    ident = identity(request)
    if isinstance(body, OtpGrant):
        return await login_attempt(request, token_digest(body.phone), partial(service.login_with_code, session, ident, body))
    if isinstance(body, PasswordGrant):
        account = f"{body.community}:{body.username}"
        return await login_attempt(request, account, partial(service.login_with_password, session, ident, body))
    if isinstance(body, RefreshGrant):
        return await service.refresh(session, ident, body)
    account = f"{body.community}:{body.client_id}"
    return await login_attempt(request, account, partial(service.login_with_client_secret, session, ident, body))


async def login_attempt(request: Request, account: str, log_in: Callable[[], Awaitable[TokenResponse]]) -> TokenResponse:
    """One attempt at `account` by this client: within the client's window and its wait at the account."""
    client = client_ip(request)
    limits: RateLimits = request.app.state.limits
    throttle: LoginThrottle = request.app.state.login_throttle
    await limits.check_login(ip=client)
    await throttle.before(account=account, client=client)
    try:
        tokens = await log_in()
    except InvalidGrant:
        await throttle.failed(account=account, client=client)
        raise
    await throttle.succeeded(account=account, client=client)
    return tokens


@router.post(
    "/auth/logout",
    status_code=204,
    summary="End this session: the access token stops working at once",
    responses=problem_responses(*AUTH_PROBLEMS),
)
async def logout(request: Request, session: SessionDep, body: LogoutRequest | None = None) -> Response:
    """End this session: the access token stops working at once, on every gateway replica.

    A refresh token given in the body is revoked with its whole family.
    """
    principal, token = await caller(request)
    await service.logout(session, identity(request), principal, token, body.refresh_token if body else None)
    return Response(status_code=204)


@router.get(
    "/auth/me",
    response_model=Me,
    summary="Who the bearer token says the caller is",
    responses=problem_responses(*AUTH_PROBLEMS),
)
async def me(request: Request) -> Me:
    """The caller as the bearer token names them: subject, roles, community, expiry."""
    principal, _ = await caller(request)
    return Me(
        subject=principal.subject,
        roles=sorted(principal.roles),
        community=principal.community,
        expires_at=principal.expires_at,
    )


@router.put(
    "/auth/staff/{staff_id}/password",
    status_code=204,
    summary="Set a staff member's password",
    responses=problem_responses(*AUTH_PROBLEMS, Forbidden, NotRegistered, ValidationFailed),
)
async def set_staff_password(
    staff_id: Annotated[Text, Path(min_length=1, max_length=64)],
    body: PasswordSet,
    request: Request,
    session: SessionDep,
) -> Response:
    """Set a registered staff member's password (property admins of the same community; platform
    administrators for any community, which is how a new community's first property admin gets one).

    The staff member's refresh sessions end; 404 when property's registry has no such staff.
    """
    admin, _ = await caller(request, "property_admin", "platform_admin")
    await service.set_staff_password(session, identity(request), admin, staff_id, body.password)
    return Response(status_code=204)


@router.put(
    "/auth/clients/{client_id}",
    response_model=ApiClientPublic,
    summary="Create or replace a machine client's credentials (city sync, gate device)",
    responses=problem_responses(*AUTH_PROBLEMS, Forbidden, ValidationFailed),
)
async def put_client(
    client_id: Annotated[ClientId, Path()],
    body: ApiClientPut,
    request: Request,
    session: SessionDep,
) -> ApiClientPublic:
    """Create or replace a machine client's roles and secret (property admins of the same community).

    The client id is the token's subject and the id parking and citysync know the client by.
    """
    admin, _ = await caller(request, "property_admin")
    return await service.put_api_client(session, identity(request), admin, client_id, body)


@router.get("/.well-known/jwks.json", response_model=Jwks, summary="Public keys that verify access tokens")
async def jwks(request: Request) -> JSONResponse:
    """Every live public key (the newest and the one before), to verify access tokens with."""
    return JSONResponse(identity(request).keys.jwks(), headers={"Cache-Control": "public, max-age=60"})


@operations.get("/openapi.json", include_in_schema=False)
async def merged_openapi(request: Request) -> JSONResponse:
    """The whole platform's OpenAPI document: the gateway's routes and every reachable service's."""
    doc = request.app.state.merged_openapi
    if doc is None:
        doc = await refresh_openapi(request.app.state)
    return JSONResponse(doc)


@operations.get(
    "/readyz",
    summary="Readiness: the gateway can serve (its database and Redis); the broker and each service reported",
    operation_id="operations-readyz",
    responses={503: {"description": "The gateway itself is not ready"}},
)
async def readyz(request: Request) -> JSONResponse:
    """503 only when the gateway itself cannot serve; a service or the broker being down is reported, not fatal."""
    upstream: dict[str, ReadinessCheck] = request.app.state.upstream_checks
    own, services = await asyncio.gather(assess_app(request.app.state), assess(upstream, cannot_serve_without=()))
    status = own.status if own.status != "ready" else services.status
    return JSONResponse(
        {"status": status, "checks": own.checks, "services": services.checks},
        status_code=200 if own.can_serve else 503,
    )
