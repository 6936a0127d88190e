"""citysync's routes: parse, authorise, call one use case, shape the response.

The gateway routes `/city/v1/feeds/{scene}` to `GET /feeds/{scene}` here.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from services.citysync import pulls, register
from services.citysync.domain import Scene, parse_cursor
from services.citysync.problems import (
    ConsumerExists,
    ConsumerInactive,
    ConsumerNotFound,
    ConsumerRevoked,
    ConsumerUnknown,
    FeedNotFound,
    GrantExists,
    GrantNotFound,
    InvalidFeedCursor,
)
from services.citysync.schemas import (
    ConsumerCreate,
    ConsumerPublic,
    ConsumersPublic,
    FeedPage,
    FeedSummary,
    GrantCreate,
    GrantPublic,
    PullPublic,
    PullsPublic,
)
from services.kit.auth import Principal, require_roles
from services.kit.db import SessionDep
from services.kit.idempotency import IdempotencyDep
from services.kit.inputs import ClientId, Text
from services.kit.pagination import InvalidCursor, Page, PageDep, encode_cursor
from services.kit.problems import Forbidden, problem_responses

router = APIRouter()

CitySync = Annotated[Principal, require_roles("city_sync")]
Worker = Annotated[Principal, require_roles("community_worker")]
ConsumerPath = Annotated[ClientId, Path()]

MAX_FEED_PAGE = 1000


def _consumer_public(view: register.ConsumerView) -> ConsumerPublic:
    public = ConsumerPublic.model_validate(view.consumer, from_attributes=True)
    public.grants = [GrantPublic.model_validate(g, from_attributes=True) for g in view.grants]
    return public


async def _registered(session: AsyncSession, worker: Principal, body: ConsumerCreate) -> ConsumerPublic:
    return _consumer_public(await register.register_consumer(session, worker, body))


async def _granted(session: AsyncSession, worker: Principal, consumer_id: str, body: GrantCreate) -> GrantPublic:
    return GrantPublic.model_validate(await register.grant_feed(session, worker, consumer_id, body.scene.value))


# --- feeds (city_sync consumers) ------------------------------------------------------------------


@router.get(
    "/feeds",
    tags=["feeds"],
    response_model=Page[FeedSummary],
    responses=problem_responses(Forbidden, ConsumerUnknown, ConsumerRevoked, InvalidCursor),
)
async def list_feeds(caller: CitySync, session: SessionDep, page: PageDep) -> Page[FeedSummary]:
    """The feeds I may pull

    The feeds granted to the calling consumer, by scene and paged by cursor, with each one's latest
    sequence number, so a sync job knows whether there is anything to pull. Registered city_sync
    consumers only; a revoked one gets 403.
    """
    feeds, cursor = await pulls.feed_summaries(session, caller, page)
    return Page[FeedSummary](items=[FeedSummary.model_validate(f) for f in feeds], next_cursor=cursor)


@router.get(
    "/feeds/{scene}",
    tags=["feeds"],
    response_model=FeedPage,
    responses=problem_responses(Forbidden, ConsumerUnknown, ConsumerRevoked, FeedNotFound, InvalidFeedCursor),
)
async def pull_feed(
    scene: Annotated[Text, Path(max_length=32, description="timebank, parking, property, governance or stats")],
    caller: CitySync,
    session: SessionDep,
    after: Annotated[
        str | None,
        Query(max_length=18, description="The `next_cursor` of the last page you processed; omit to start from the beginning"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEED_PAGE)] = 100,
    # Set by the gateway from the community's record (callers cannot send it through the gateway).
    region: Annotated[str | None, Header(alias="x-community-region", include_in_schema=False, pattern=r"^[0-9]{6}$")] = None,
) -> Response:
    """Pull a page of a feed

    Records after the cursor, in sequence order, de-identified with the caller's own hash key. Store
    `next_cursor` together with what you did with the page: resuming from it after any restart reads
    every record exactly once, in order. Every pull is recorded in the register. Registered city_sync
    consumers with a live grant for the feed only; a revoked consumer gets 403, an ungranted feed 404.
    """
    try:
        after_seq = parse_cursor(after)
    except ValueError:
        raise InvalidFeedCursor(("游标应为非负整数", "The cursor must be a non-negative integer")) from None
    page = await pulls.pull(session, caller, scene, after=after_seq, limit=limit, region_code=region)
    # Built with orjson straight from the rows: this is the hot path of every city sync job.
    return Response(orjson.dumps(page), media_type="application/json")


# --- the register (community workers) ------------------------------------------------------------


@router.post(
    "/consumers",
    tags=["register"],
    status_code=201,
    response_model=ConsumerPublic,
    responses=problem_responses(Forbidden, ConsumerExists),
)
async def register_consumer(
    body: ConsumerCreate, worker: Worker, session: SessionDep, idem: IdempotencyDep
) -> ConsumerPublic | JSONResponse:
    """Register a data consumer

    Its id becomes the subject of its city_sync tokens, and it gets its own hash key, so two consumers
    never see the same hash for the same person. It may pull nothing until a feed is granted to it.
    Community workers only.
    """
    return await idem.run(session, body, partial(_registered, session, worker, body), ConsumerPublic)


@router.get("/consumers", tags=["register"], response_model=ConsumersPublic, responses=problem_responses(Forbidden))
async def list_consumers(worker: Worker, session: SessionDep, page: PageDep) -> ConsumersPublic:
    """The community's data consumers

    Every registered consumer, active or revoked, with its grants, by id, paged by cursor. Community
    workers only.
    """
    after = page.after()
    if after is not None and (len(after) != 1 or not isinstance(after[0], str)):
        raise InvalidCursor()
    views = await register.list_consumers(session, worker.community, after=after[0] if after else None, limit=page.limit)
    items = [_consumer_public(v) for v in views[: page.limit]]
    cursor = encode_cursor([items[-1].id]) if len(views) > page.limit else None
    return ConsumersPublic(items=items, next_cursor=cursor)


@router.get(
    "/consumers/{consumer_id}",
    tags=["register"],
    response_model=ConsumerPublic,
    responses=problem_responses(Forbidden, ConsumerNotFound),
)
async def get_consumer(consumer_id: ConsumerPath, worker: Worker, session: SessionDep) -> ConsumerPublic:
    """One data consumer

    Its status and every grant it holds or held. Community workers only.
    """
    return _consumer_public(await register.get_consumer(session, worker.community, consumer_id))


@router.post(
    "/consumers/{consumer_id}/revocation",
    tags=["register"],
    response_model=ConsumerPublic,
    responses=problem_responses(Forbidden, ConsumerNotFound),
)
async def revoke_consumer(consumer_id: ConsumerPath, worker: Worker, session: SessionDep) -> ConsumerPublic:
    """Revoke a data consumer

    Takes effect at once: its next pull gets 403 (a pull in flight finishes first). Revoking twice
    changes nothing. Community workers only.
    """
    return _consumer_public(await register.revoke_consumer(session, worker, consumer_id))


@router.post(
    "/consumers/{consumer_id}/grants",
    tags=["register"],
    status_code=201,
    response_model=GrantPublic,
    responses=problem_responses(Forbidden, ConsumerNotFound, ConsumerInactive, GrantExists),
)
async def grant_feed(
    consumer_id: ConsumerPath, body: GrantCreate, worker: Worker, session: SessionDep, idem: IdempotencyDep
) -> GrantPublic | JSONResponse:
    """Grant a consumer a feed

    The consumer may pull the scene's feed from the next request on; one live grant per consumer and
    feed. Community workers only; a revoked consumer cannot be granted anything.
    """
    return await idem.run(session, body, partial(_granted, session, worker, consumer_id, body), GrantPublic)


@router.delete(
    "/consumers/{consumer_id}/grants/{scene}",
    tags=["register"],
    response_model=GrantPublic,
    responses=problem_responses(Forbidden, ConsumerNotFound, GrantNotFound),
)
async def revoke_grant(consumer_id: ConsumerPath, scene: Scene, worker: Worker, session: SessionDep) -> GrantPublic:
    """Revoke a consumer's feed

    Takes effect at once: the consumer's next pull of that feed gets 404 (a pull in flight finishes
    first). Community workers only.
    """
    return GrantPublic.model_validate(await register.revoke_grant(session, worker, consumer_id, scene.value))


@router.get("/pulls", tags=["register"], response_model=PullsPublic, responses=problem_responses(Forbidden))
async def list_pulls(
    worker: Worker,
    session: SessionDep,
    page: PageDep,
    consumer_id: Annotated[Text | None, Query(max_length=64)] = None,
    scene: Scene | None = None,
) -> PullsPublic:
    """The pull register

    Every pull (consumer, feed, cursor range, record count, time), newest first, optionally for one
    consumer or feed, paged by cursor. Community workers only.
    """
    after = page.after()
    if after is not None and (len(after) != 1 or not isinstance(after[0], int)):
        raise InvalidCursor()
    rows = await register.list_pulls(
        session,
        worker.community,
        consumer_id=consumer_id,
        scene=scene.value if scene else None,
        before_id=after[0] if after else None,
        limit=page.limit,
    )
    items = [PullPublic.model_validate(p) for p in rows[: page.limit]]
    cursor = encode_cursor([items[-1].id]) if len(rows) > page.limit else None
    return PullsPublic(items=items, next_cursor=cursor)
