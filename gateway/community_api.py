"""The platform administrators' routes: create, configure and list the communities the gateway serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from gateway import communities
from gateway.api import AUTH_PROBLEMS, caller
from gateway.problems import NoSuchCommunity
from gateway.schemas import CommunityPublic, CommunityPut
from services.kit.auth import PLATFORM_COMMUNITY
from services.kit.db import SessionDep
from services.kit.pagination import Page, PageDep
from services.kit.problems import Forbidden, ValidationFailed, problem_responses

router = APIRouter(tags=["platform"])


async def platform_admin(request: Request) -> None:
    """A platform administrator's token: the role, in the platform's own community (never a community's)."""
    principal, _ = await caller(request, "platform_admin")
    if principal.community != PLATFORM_COMMUNITY:
        raise Forbidden(("需要平台管理员令牌", "Requires a platform administrator's token"))


CommunityId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]


@router.put(
    "/platform/communities/{community_id}",
    response_model=CommunityPublic,
    summary="Create or configure a community (platform administrators)",
    responses={
        201: {"model": CommunityPublic, "description": "Created"},
        **problem_responses(*AUTH_PROBLEMS, Forbidden, ValidationFailed),
    },
)
async def put_community(
    community_id: CommunityId, body: CommunityPut, request: Request, session: SessionDep, response: Response
) -> CommunityPublic:
    """Create a community (201) or replace its name, region code, settings and whether it is active (200).

    Every gateway replica serves a new community from the next token that names it, and stops
    serving a deactivated one within `GATEWAY_COMMUNITIES_RELOAD_S`. The id `platform` is reserved.
    """
    await platform_admin(request)
    found, created = await communities.put_community(session, community_id, body)
    # This replica serves the change from the next request; the others on their next read.
    await request.app.state.communities.reload()
    response.status_code = 201 if created else 200
    return found


@router.get(
    "/platform/communities/{community_id}",
    response_model=CommunityPublic,
    summary="One community (platform administrators)",
    responses=problem_responses(*AUTH_PROBLEMS, Forbidden, NoSuchCommunity),
)
async def get_community(community_id: CommunityId, request: Request, session: SessionDep) -> CommunityPublic:
    """A community's name, region code, settings and whether it is served."""
    await platform_admin(request)
    return await communities.get_community(session, community_id)


@router.get(
    "/platform/communities",
    response_model=Page[CommunityPublic],
    summary="Every community, served or not (platform administrators)",
    responses=problem_responses(*AUTH_PROBLEMS, Forbidden),
)
async def list_communities(request: Request, session: SessionDep, page: PageDep) -> Page[CommunityPublic]:
    """Every community by id, paged by cursor."""
    await platform_admin(request)
    after = page.after()
    items, cursor = await communities.list_communities(session, after=str(after[0]) if after else None, limit=page.limit)
    return Page(items=items, next_cursor=cursor)
