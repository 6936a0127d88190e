"""A direct route answers the requests it can take ahead of FastAPI and hands every other one,
body included, to the documented route; what it raises is answered by the app's handlers; its
request span is named by the documented route; its session is the request's."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.auth import CurrentPrincipal, Principal, TokenVerifier
from services.kit.db import RequestSessions, get_session, make_engine, make_sessionmaker
from services.kit.direct_routes import DirectRoute, DirectRoutes
from services.kit.problems import Conflict, install_problem_handlers
from services.kit.query_params import refuse_unknown_query
from services.kit.request_telemetry import NO_NATIVE_TELEMETRY, RequestTelemetry
from services.kit.telemetry import setup_tracing
from tests.support.stack import TestStack

WAYS: Counter[str] = Counter()
router = APIRouter()


class NoteIn(BaseModel):
    minutes: int = Field(ge=1)


class NoteOut(BaseModel):
    item: uuid.UUID
    by: str
    minutes: int
    database_says: int


async def note_down(session: AsyncSession, principal: Principal, ids: dict[str, uuid.UUID], body: NoteIn) -> NoteOut:
    """The use case both ways share; `minutes` 13 is refused, 99 fails as no handler knows."""
    if body.minutes == 13:
        raise Conflict(("不吉利", "Unlucky"))
    if body.minutes == 99:
        raise RuntimeError("unexpected")
    async with session.begin():
        one = (await session.execute(text("SELECT 1"))).scalar_one()
    return NoteOut(item=ids["item"], by=principal.subject, minutes=body.minutes, database_says=one)


async def note_down_direct(session: AsyncSession, principal: Principal, ids: dict[str, uuid.UUID], body: NoteIn) -> NoteOut:
    WAYS["direct"] += 1
    return await note_down(session, principal, ids, body)


@router.post("/items/{item}/notes", response_model=NoteOut, status_code=201)
async def post_note(request: Request, item: uuid.UUID, body: NoteIn, principal: CurrentPrincipal) -> NoteOut:
    WAYS["fastapi"] += 1
    return await note_down(await get_session(request), principal, {"item": item}, body)


def probe_app(url: str, jwks_url: str) -> FastAPI:
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY, dependencies=[Depends(refuse_unknown_query)])
    engine = make_engine(url, pool_size=2, max_overflow=0)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.token_verifier = TokenVerifier(jwks_url, issuer="community-gateway", audience="community-platform")
    app.include_router(router)
    install_problem_handlers(app)
    app.add_middleware(DirectRoutes, routes=[DirectRoute(router, post_note, NoteIn, note_down_direct)])
    app.add_middleware(RequestSessions)
    app.add_middleware(RequestTelemetry, service="kit-direct-probe")
    return app


@pytest.fixture
async def client(stack: TestStack) -> httpx.AsyncClient:
    url = await stack.empty_database("kit_direct_routes")
    app = probe_app(url, stack.jwks_url)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as c:
        yield c  # type: ignore[misc]
    await app.state.engine.dispose()


def way_of(before: Counter[str]) -> str:
    """Which way answered since `before`: a refusal before the endpoint runs counts nowhere, and
    is FastAPI's (the direct way counts every request it takes)."""
    return "direct" if WAYS["direct"] != before["direct"] else "fastapi"


@pytest.mark.parametrize(
    ("case", "path", "headers", "content", "status", "way"),
    [
        ("answered directly", "/items/{id}/notes", {"content-type": "application/json"}, b'{"minutes": 5}', 201, "direct"),
        (
            "a charset is still JSON",
            "/items/{id}/notes",
            {"content-type": "application/json; charset=utf-8"},
            b'{"minutes": 5}',
            201,
            "direct",
        ),
        (
            "a body of two chunks",
            "/items/{id}/notes",
            {"content-type": "application/json"},
            [b'{"minutes"', b": 5}"],
            201,
            "direct",
        ),
        (
            "no token",
            "/items/{id}/notes",
            {"content-type": "application/json", "authorization": ""},
            b'{"minutes": 5}',
            401,
            "fastapi",
        ),
        (
            "a bad token",
            "/items/{id}/notes",
            {"content-type": "application/json", "authorization": "Bearer x.y.z"},
            b'{"minutes": 5}',
            401,
            "fastapi",
        ),
        ("an invalid body", "/items/{id}/notes", {"content-type": "application/json"}, b'{"minutes": 0}', 422, "fastapi"),
        ("malformed JSON", "/items/{id}/notes", {"content-type": "application/json"}, b'{"minutes": ', 422, "fastapi"),
        (
            "JSON nested too deep to parse",
            "/items/{id}/notes",
            {"content-type": "application/json"},
            b"[" * 100_000,
            400,
            "fastapi",
        ),
        ("not declared JSON", "/items/{id}/notes", {"content-type": "text/plain"}, b'{"minutes": 5}', 422, "fastapi"),
        ("a query string", "/items/{id}/notes?x=1", {"content-type": "application/json"}, b'{"minutes": 5}', 422, "fastapi"),
        ("not an id", "/items/not-an-id/notes", {"content-type": "application/json"}, b'{"minutes": 5}', 422, "fastapi"),
    ],
)
async def test_a_request_goes_the_direct_way_only_when_it_needs_nothing_else(
    client: httpx.AsyncClient,
    stack: TestStack,
    case: str,
    path: str,
    headers: dict[str, str],
    content: bytes | list[bytes],
    status: int,
    way: str,
) -> None:
    item = uuid.uuid4()
    sent = {"authorization": f"Bearer {stack.token('u1', 'resident')}", **headers}
    if not sent["authorization"]:
        del sent["authorization"]
    before = WAYS.copy()
    body = content if isinstance(content, bytes) else _chunks(content)
    r = await client.post(path.format(id=item), headers=sent, content=body)
    assert r.status_code == status, (case, r.text)
    assert way_of(before) == way, case
    if status == 201:
        assert r.json() == {"item": str(item), "by": "u1", "minutes": 5, "database_says": 1}
    else:
        assert r.headers["content-type"].startswith("application/problem+json"), case


async def _chunks(parts: list[bytes]):  # type: ignore[no-untyped-def]
    for part in parts:
        yield part


async def test_what_the_use_case_raises_is_answered_by_the_apps_handlers(client: httpx.AsyncClient, stack: TestStack) -> None:
    h = {"authorization": f"Bearer {stack.token('u1', 'resident')}"}
    before = WAYS.copy()
    r = await client.post(f"/items/{uuid.uuid4()}/notes", headers=h, json={"minutes": 13})
    assert way_of(before) == "direct"
    assert (r.status_code, r.headers["content-type"]) == (409, "application/problem+json")
    assert r.json()["type"] == "urn:community:problem:conflict" and r.json()["detail"] == "不吉利"
    assert r.json()["instance"].startswith("/items/")
    # Not one of the app's problems: the server-error layer answers 500 (a problem), as for a route.
    before = WAYS.copy()
    r = await client.post(f"/items/{uuid.uuid4()}/notes", headers=h, json={"minutes": 99})
    assert way_of(before) == "direct"
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"


async def test_the_direct_answer_is_traced_and_measured_as_the_documented_route(
    client: httpx.AsyncClient, stack: TestStack
) -> None:
    setup_tracing("kit-direct-probe")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = uuid.uuid4().hex
    before = WAYS.copy()
    r = await client.post(
        f"/items/{uuid.uuid4()}/notes",
        headers={"authorization": f"Bearer {stack.token('u1', 'resident')}", "traceparent": f"00-{trace_id}-{'4' * 16}-01"},
        json={"minutes": 5},
    )
    assert r.status_code == 201 and way_of(before) == "direct"
    ours = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    (span,) = [s for s in ours if s.kind == trace.SpanKind.SERVER]
    assert span.name == "POST /items/{item}/notes"
    assert span.attributes is not None and span.attributes["http.route"] == "/items/{item}/notes"
    assert span.attributes["http.response.status_code"] == 201
