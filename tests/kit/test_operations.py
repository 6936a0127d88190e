"""Operations: one trace from HTTP to consumer, and readiness that follows real outages."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.kit.app import ScheduledJob, repeat
from tests.kit import probe
from tests.kit.test_backbone import tallies, wait_consumer_ready, wait_until
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack


@pytest.fixture
async def probe_service(stack: TestStack) -> AsyncIterator[RunningService]:
    url = await stack.empty_database("probe")
    await probe.create_schema(url)
    async with run_service(stack, "probe", probe.create_app, probe.ProbeSettings, database_url=url) as svc:
        yield svc
    await stack.drop_database(url)


async def test_consumer_span_continues_the_request_trace(stack: TestStack, probe_service: RunningService) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    svc = probe_service
    await wait_consumer_ready(svc)
    r = await svc.client.post("/notes", json={"key": "traced", "seq": 1}, headers=stack.auth("writer", "resident"))
    assert r.status_code == 201

    async def applied() -> bool:
        return "traced" in await tallies(svc)

    await wait_until(applied, timeout=30)
    await asyncio.sleep(0.2)
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == trace.SpanKind.SERVER and "POST /notes" in s.name]
    consumed = [
        s
        for s in spans
        if s.kind == trace.SpanKind.CONSUMER
        and s.name.endswith("probe.events process")
        and s.attributes is not None
        and s.attributes.get("cloudevents.event_type") == probe.NoteWritten.event_type
    ]
    published = [s for s in spans if s.kind == trace.SpanKind.PRODUCER and s.name == "outbox publish"]
    assert server and consumed and published
    request_trace = server[-1].context.trace_id
    # One server span per request (FastAPI's native telemetry stands down beside the instrumentation).
    in_request = [s for s in spans if s.kind == trace.SpanKind.SERVER and s.context.trace_id == request_trace]
    assert len(in_request) == 1, [s.name for s in in_request]
    # The relay's batch publish span links to the request that wrote the event.
    assert any(link.context.trace_id == request_trace for s in published for link in s.links)
    assert any(s.context.trace_id == request_trace for s in consumed)
    # The consumer's span is a descendant, not a new root.
    consumer_span = next(s for s in consumed if s.context.trace_id == request_trace)
    assert consumer_span.parent is not None


async def readiness(svc: RunningService) -> tuple[int, dict[str, str]]:
    r = await svc.client.get("/readyz")
    return r.status_code, r.json()["checks"]


async def wait_ready_status(svc: RunningService, status: int, timeout: float = 30) -> dict[str, str]:
    checks: dict[str, str] = {}

    async def reached() -> bool:
        nonlocal checks
        code, checks = await readiness(svc)
        return code == status

    await wait_until(reached, timeout=timeout, interval=0.3)
    return checks


async def test_a_broker_outage_degrades_readiness_and_writes_wait_in_the_outbox(
    stack: TestStack, probe_service: RunningService
) -> None:
    if stack.broker is None:
        pytest.skip("needs the embedded broker, which the test stops and restarts")
    svc = probe_service
    await wait_consumer_ready(svc)
    await wait_ready_status(svc, 200)
    stack.stop_broker()
    try:

        async def degraded() -> bool:
            r = await svc.client.get("/readyz")
            return bool(r.status_code == 200 and r.json()["status"] == "degraded")

        await wait_until(degraded, timeout=30, interval=0.3)
        _, checks = await readiness(svc)
        assert checks["broker"] == "broker unreachable"
        assert checks["database"] == "ok"
        r = await svc.client.post("/notes", json={"key": "outage", "seq": 1}, headers=stack.auth("w", "resident"))
        assert r.status_code == 201
    finally:
        stack.start_broker()

    async def all_ok() -> bool:
        return (await svc.client.get("/readyz")).json()["status"] == "ready"

    await wait_until(all_ok, timeout=60, interval=0.3)

    async def drained() -> bool:
        return "outage" in await tallies(svc)

    await wait_until(drained, timeout=60)


async def test_readyz_follows_a_database_outage_and_work_resumes(stack: TestStack, probe_service: RunningService) -> None:
    if stack.pg is None:
        pytest.skip("needs the embedded PostgreSQL, which the test stops and restarts")
    svc = probe_service
    await wait_consumer_ready(svc)
    await wait_ready_status(svc, 200)
    stack.stop_database()
    try:
        checks = await wait_ready_status(svc, 503)
        assert checks["database"].startswith("database unreachable")
        failed = await svc.client.post("/notes", json={"key": "after", "seq": 1}, headers=stack.auth("w", "resident"))
        assert failed.status_code == 503
        assert failed.json()["type"] == "urn:community:problem:service-unavailable"
        assert failed.headers["retry-after"] == "2"
    finally:
        stack.start_database()
    await wait_ready_status(svc, 200, timeout=60)
    r = await svc.client.post("/notes", json={"key": "after", "seq": 1}, headers=stack.auth("w", "resident"))
    assert r.status_code == 201

    async def applied() -> bool:
        return "after" in await tallies(svc)

    await wait_until(applied, timeout=60)


async def test_metrics_report_latency_per_route_template(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    r = await svc.client.post("/notes", json={"key": "m", "seq": 1}, headers=stack.auth("w", "resident"))
    assert r.status_code == 201
    bad = await svc.client.post("/notes", json={"key": "", "seq": 0}, headers=stack.auth("w", "resident"))
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"key", "seq"}
    text = (await svc.client.get("/metrics")).text
    assert 'http_request_duration_seconds_count{method="POST",route="/notes",service="probe",status="201"}' in text
    assert 'route="/notes",service="probe",status="422"' in text


async def test_scheduled_job_runs_are_counted_by_outcome_with_the_last_success(probe_service: RunningService) -> None:
    """What an alert on a stuck job reads: runs by outcome, their duration, the last success."""
    calls = 0

    async def flaky(state: Any) -> None:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:
            raise RuntimeError("the database went away")

    job = ScheduledJob(name="flaky-probe", every_s=0.01, run=flaky)
    before = time.time()
    task = asyncio.create_task(repeat(job, probe_service.state))
    try:

        async def ran_four_times() -> bool:
            return calls >= 4

        await wait_until(ran_four_times, timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    samples = metric_samples((await probe_service.client.get("/metrics")).text)
    mine = {"job": "flaky-probe", "service": "probe"}
    assert samples[("scheduled_job_runs_total", frozenset({**mine, "outcome": "ok"}.items()))] >= 2
    assert samples[("scheduled_job_runs_total", frozenset({**mine, "outcome": "failed"}.items()))] >= 2
    assert samples[("scheduled_job_duration_seconds_count", frozenset(mine.items()))] >= 4
    assert samples[("scheduled_job_last_success_timestamp_seconds", frozenset(mine.items()))] >= before


def metric_samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text exposition as {(name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in exposition.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            out[(match.group(1), labels)] = float(match.group(3))
    return out
