"""The kit's lean request path keeps its guarantees: a request's session never keeps a connection
past the request, and each request is one server span (child of the caller's trace, named by its
route, with its status) and one latency observation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.kit.db import RequestSessions, SessionDep, get_session, make_engine, make_sessionmaker
from services.kit.request_telemetry import NO_NATIVE_TELEMETRY, RequestTelemetry
from services.kit.telemetry import setup_tracing
from tests.support.stack import TestStack


async def left_open(session: SessionDep) -> dict[str, int]:
    """A route that begins a transaction and returns inside it (a bug the kit must contain)."""
    await session.begin()
    one = (await session.execute(text("SELECT 1"))).scalar_one()
    return {"one": one}


async def both(a: SessionDep, b: Annotated[AsyncSession, Depends(get_session)]) -> dict[str, bool]:
    return {"same": a is b}


async def failing() -> None:
    raise RuntimeError("boom")


def probe_app(url: str) -> FastAPI:
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)
    engine = make_engine(url, pool_size=2, max_overflow=0)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.add_api_route("/left-open/{n}", left_open)
    app.add_api_route("/both", both)
    app.add_api_route("/failing", failing)
    app.add_middleware(RequestSessions)
    app.add_middleware(RequestTelemetry, service="kit-probe")
    return app


async def test_a_session_left_in_a_transaction_gives_its_connection_back_after_the_request(stack: TestStack) -> None:
    url = await stack.empty_database("kit_request_path")
    app = probe_app(url)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
            # 20 concurrent requests on a pool of 2: each would hold its connection for ever if the
            # session were not closed after its request, and the third would wait out the pool.
            answers = await asyncio.wait_for(asyncio.gather(*(client.get(f"/left-open/{n}") for n in range(20))), timeout=60)
            assert [a.json() for a in answers] == [{"one": 1}] * 20
            pool = app.state.engine.pool
            assert pool.checkedout() == 0
            # One session per request, shared by the dependencies that ask for it.
            assert (await client.get("/both")).json() == {"same": True}
    finally:
        await app.state.engine.dispose()
        await stack.drop_database(url)


def latency_count(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_request_duration_seconds_count",
        {"service": "kit-probe", "method": "GET", "route": route, "status": status},
    )
    return value or 0.0


async def test_each_request_is_one_server_span_in_the_callers_trace_and_one_observation(stack: TestStack) -> None:
    setup_tracing("kit-probe")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    url = await stack.empty_database("kit_request_span")
    app = probe_app(url)
    trace_id, parent = uuid.uuid4().hex, "3" * 16
    before = latency_count("/left-open/{n}", "200"), latency_count("/failing", "500")
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
            headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
            assert (await client.get("/left-open/7", headers=headers)).status_code == 200
            assert (await client.get("/failing", headers=headers)).status_code == 500
            assert (await client.get("/healthz-unrouted", headers=headers)).status_code == 404
    finally:
        await app.state.engine.dispose()
        await stack.drop_database(url)
    ours = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    servers = {s.name: s for s in ours if s.kind == trace.SpanKind.SERVER}
    assert sorted(servers) == ["GET /failing", "GET /left-open/{n}", "GET unmatched"], [s.name for s in ours]
    ok, failed = servers["GET /left-open/{n}"], servers["GET /failing"]
    assert ok.parent is not None and format(ok.parent.span_id, "016x") == parent
    assert ok.attributes is not None and ok.attributes["http.route"] == "/left-open/{n}"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.status.status_code == trace.StatusCode.UNSET
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert any(event.name == "exception" for event in failed.events)
    assert latency_count("/left-open/{n}", "200") == before[0] + 1
    assert latency_count("/failing", "500") == before[1] + 1


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_and_scrapes_are_measured_but_not_traced(path: str) -> None:
    setup_tracing("kit-probe")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry=NO_NATIVE_TELEMETRY)
    app.add_api_route(path, failing)
    app.add_middleware(RequestTelemetry, service="kit-probe")
    before = latency_count(path, "500")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        assert (await client.get(path)).status_code == 500
    assert [s.name for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER] == []
    assert latency_count(path, "500") == before + 1
