"""Routing through the gateway to a real upstream on a loopback port."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deploy.local.servers import free_port
from deploy.local.stack import only_seeding_awaited
from tests.gateway.conftest import COMMUNITY, Upstream, client_from, running_gateway
from tests.gateway.upstream import create_upstream, serve
from tests.support.harness import RunningService
from tests.support.stack import TestStack


def resident(stack: TestStack, subject: str | None = None) -> dict[str, str]:
    return stack.auth(subject or str(uuid.uuid4()), "resident", community=COMMUNITY)


async def test_request_reaches_the_upstream_with_the_token_as_is_and_no_hop_by_hop_headers(
    stack: TestStack, gateway: RunningService
) -> None:
    headers = resident(stack)
    trace_id = uuid.uuid4().hex
    r = await gateway.client.get(
        "/api/timebank/echo?a=1&b=two",
        headers={
            **headers,
            "Connection": "keep-alive, x-private-hop",
            "X-Private-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "X-Request-ID": "req-123",
            "traceparent": f"00-{trace_id}-{'1' * 16}-01",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Prefix": "/elsewhere",
        },
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["query"] == "a=1&b=two"
    assert seen["headers"]["authorization"] == headers["Authorization"]
    for hop in ("x-private-hop", "keep-alive"):
        assert hop not in seen["headers"]
    assert seen["headers"]["x-request-id"] == "req-123"
    assert r.headers["x-request-id"] == "req-123"
    assert seen["headers"]["traceparent"].split("-")[1] == trace_id
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1", "the caller cannot choose its forwarded address"
    assert seen["headers"]["x-forwarded-prefix"] == "/api/timebank", "nor the prefix its problems are named with"


async def test_a_request_id_is_made_when_none_is_given(stack: TestStack, gateway: RunningService) -> None:
    r = await gateway.client.get("/api/timebank/echo", headers=resident(stack))
    made = r.headers["x-request-id"]
    assert len(made) == 32 and r.json()["headers"]["x-request-id"] == made


async def test_services_decide_access_and_the_gateway_passes_their_answers_on(stack: TestStack, gateway: RunningService) -> None:
    alice, bob = resident(stack), resident(stack)
    note = (await gateway.client.post("/api/timebank/notes", json={"text": "mine"}, headers=alice)).json()
    assert (await gateway.client.get(f"/api/timebank/notes/{note['id']}", headers=alice)).status_code == 200
    other = await gateway.client.get(f"/api/timebank/notes/{note['id']}", headers=bob)
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")
    # The problem names the path the client asked for, not the service's own.
    assert other.json()["instance"] == f"/api/timebank/notes/{note['id']}"
    assert (await gateway.client.get("/api/timebank/staff/report", headers=alice)).status_code == 403
    assert (await gateway.client.get("/api/nosuch/x", headers=alice)).status_code == 404


async def test_rate_limit_is_shared_by_two_gateways_on_one_redis(
    stack: TestStack, gateway_template: str, upstream: Upstream
) -> None:
    headers = resident(stack)
    settings: dict[str, Any] = {"upstreams": {"timebank": upstream.url}, "rate_limit_user": "5/minute"}
    async with (
        running_gateway(stack, gateway_template, **settings) as first,
        running_gateway(stack, gateway_template, **settings) as second,
    ):
        for _ in range(3):
            assert (await first.client.get("/api/timebank/notes", headers=headers)).status_code == 200
        for _ in range(2):
            assert (await second.client.get("/api/timebank/notes", headers=headers)).status_code == 200
        refused = await second.client.get("/api/timebank/notes", headers=headers)
        assert refused.status_code == 429
        assert refused.json()["type"] == "urn:community:problem:gateway/rate-limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await first.client.get("/api/timebank/notes", headers=headers)).status_code == 429
        # Another resident has their own allowance.
        assert (await first.client.get("/api/timebank/notes", headers=resident(stack))).status_code == 200


async def test_rate_limit_per_ip_covers_many_users(stack: TestStack, gateway_template: str, upstream: Upstream) -> None:
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    async with (
        running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}, rate_limit_ip="4/minute") as gw,
        client_from(gw, ip) as client,
    ):
        codes = [(await client.get("/api/timebank/notes", headers=resident(stack))).status_code for _ in range(6)]
        assert codes == [200, 200, 200, 200, 429, 429]


async def test_circuit_breaker_fails_fast_while_the_upstream_is_down_and_closes_after(
    stack: TestStack, gateway_template: str
) -> None:
    port = free_port()
    headers = resident(stack)
    async with running_gateway(
        stack,
        gateway_template,
        upstreams={"timebank": f"http://127.0.0.1:{port}"},
        breaker_failure_threshold=3,
        breaker_open_s=1.0,
        idempotent_retries=0,
    ) as gw:
        for _ in range(3):
            r = await gw.client.get("/api/timebank/notes", headers=headers)
            assert r.status_code == 503
            assert r.json()["type"] == "urn:community:problem:gateway/upstream-unavailable"
        r = await gw.client.get("/api/timebank/notes", headers=headers)
        assert r.status_code == 503
        assert r.json()["type"] == "urn:community:problem:gateway/circuit-open"
        assert "retry-after" in r.headers
        app, _ = create_upstream(stack.jwks_url)
        async with serve(app, port):
            # Still open: the gateway does not touch the recovered upstream until the open period ends.
            assert (await gw.client.get("/api/timebank/notes", headers=headers)).json()["type"].endswith("circuit-open")
            await asyncio.sleep(1.1)
            assert (await gw.client.get("/api/timebank/notes", headers=headers)).status_code == 200
            assert gw.state.proxy.upstreams["timebank"].breaker.state == "closed"


async def test_idempotent_methods_are_retried_and_posts_are_not(
    stack: TestStack, gateway: RunningService, upstream: Upstream
) -> None:
    headers = resident(stack)
    upstream.state.fail_next = 1
    r = await gateway.client.get("/api/timebank/echo", headers=headers)
    assert r.status_code == 200
    assert upstream.state.calls["echo-GET"] == 2
    upstream.state.fail_next = 1
    r = await gateway.client.post("/api/timebank/echo", content=b"x", headers=headers)
    assert r.status_code == 503
    assert upstream.state.calls["echo-POST"] == 1


async def test_per_route_timeout_gives_504(stack: TestStack, gateway_template: str, upstream: Upstream) -> None:
    async with running_gateway(
        stack,
        gateway_template,
        upstreams={"timebank": upstream.url},
        route_timeouts_s={"timebank/slow": 0.3},
        idempotent_retries=0,
    ) as gw:
        headers = resident(stack)
        r = await gw.client.get("/api/timebank/slow?s=2", headers=headers)
        assert r.status_code == 504
        assert r.json()["type"] == "urn:community:problem:gateway/upstream-timeout"
        assert (await gw.client.get("/api/timebank/slow?s=0.05", headers=headers)).status_code == 200


async def test_bodies_over_the_limit_are_refused(stack: TestStack, gateway_template: str, upstream: Upstream) -> None:
    async with running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}, max_body_bytes=100_000) as gw:
        headers = resident(stack)
        r = await gw.client.post("/api/timebank/echo", content=b"x" * 100_001, headers=headers)
        assert r.status_code == 413
        assert "echo-POST" not in upstream.state.calls, "a declared oversize body never leaves the gateway"

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 10_000

        r = await gw.client.post("/api/timebank/echo", content=chunked(), headers=headers)
        # A chunked body is cut off once it passes the limit; the upstream sees an aborted request.
        assert r.status_code == 413
        assert r.json()["type"] == "urn:community:problem:gateway/body-too-large"
        assert gw.state.proxy.upstreams["timebank"].breaker.failures == 0


async def test_bodies_stream_both_ways_intact(stack: TestStack, gateway: RunningService) -> None:
    headers = resident(stack)
    payload = bytes(range(256)) * 800  # 200 KiB: above the buffering threshold, so it streams

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7000):
            yield payload[i : i + 7000]

    r = await gateway.client.post("/api/timebank/echo", content=chunks(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["body_len"] == len(payload)
    assert r.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()
    async with gateway.client.stream("GET", "/api/timebank/stream?chunks=64", headers=headers) as response:
        received = b"".join([c async for c in response.aiter_raw()])
    assert len(received) == 64 * 16384
    assert received[:1] == b"A" and received[-1:] == bytes([65 + 63 % 26])


async def test_idempotency_key_replays_rejects_other_bodies_and_refuses_while_running(
    stack: TestStack, gateway: RunningService, upstream: Upstream
) -> None:
    headers = {**resident(stack), "Idempotency-Key": str(uuid.uuid4())}
    first = await gateway.client.post("/api/timebank/notes", json={"text": "once"}, headers=headers)
    assert first.status_code == 201
    again = await gateway.client.post("/api/timebank/notes", json={"text": "once"}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    assert upstream.state.calls["create_note"] == 1
    other = await gateway.client.post("/api/timebank/notes", json={"text": "twice"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["type"] == "urn:community:problem:gateway/idempotency-key-reused"

    slow = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"text": "slow", "delay_s": 0.5}
    running = asyncio.create_task(gateway.client.post("/api/timebank/notes", json=body, headers=slow))
    await asyncio.sleep(0.2)
    retry = await gateway.client.post("/api/timebank/notes", json=body, headers=slow)
    assert retry.status_code == 409
    assert (await running).status_code == 201
    assert upstream.state.calls["create_note"] == 2


async def test_concurrent_posts_with_one_key_create_once(stack: TestStack, gateway: RunningService, upstream: Upstream) -> None:
    headers = {**resident(stack), "Idempotency-Key": str(uuid.uuid4())}
    results = await asyncio.gather(
        *(gateway.client.post("/api/timebank/notes", json={"text": "race", "delay_s": 0.2}, headers=headers) for _ in range(10))
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 9
    assert upstream.state.calls["create_note"] == 1


async def test_cors_allows_the_staff_dashboard_origin_only(gateway: RunningService) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,idempotency-key"}
    ok = await gateway.client.options("/api/timebank/notes", headers={"Origin": "http://127.0.0.1:5173", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://127.0.0.1:5173"
    bad = await gateway.client.options("/api/timebank/notes", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in bad.headers


async def test_metrics_have_per_route_latency_and_access_logs_hold_no_personal_data(
    stack: TestStack, gateway: RunningService
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    # The access log has its own handler and does not pass its lines on to the root's.
    watched = [logging.getLogger(), logging.getLogger("gateway.access")]
    for logger in watched:
        logger.addHandler(keep)
    try:
        subject = str(uuid.uuid4())
        headers = resident(stack, subject)
        note = (await gateway.client.post("/api/timebank/notes", json={"text": "m"}, headers=headers)).json()
        await gateway.client.get(f"/api/timebank/notes/{note['id']}?phone=17012345678", headers=headers)
        await gateway.client.post("/auth/otp", json={"community": COMMUNITY, "phone": "17012345678"})
    finally:
        for logger in watched:
            logger.removeHandler(keep)
    access = [r.getMessage() for r in records if r.name == "gateway.access"]
    assert any("/api/timebank/notes/{note_id} 200" in line and f"subject={subject}" in line for line in access), access
    assert not any("17012345678" in r.getMessage() for r in records)
    assert not any(note["id"] in line for line in access), "access logs name the route, not the raw path"
    metrics = (await gateway.client.get("/metrics")).text
    assert 'gateway_request_duration_seconds_count{method="GET",route="/api/timebank/notes/{note_id}",status="200"}' in metrics


async def test_readyz_reports_each_service(stack: TestStack, gateway_template: str, upstream: Upstream) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url, "parking": down}) as gw:
        assert (await gw.client.get("/healthz")).status_code == 200
        r = await gw.client.get("/readyz")
        assert r.status_code == 200  # the gateway itself can work; one service being down is reported
        body = r.json()
        assert body["status"] == "degraded"
        assert body["services"]["timebank"] == "ok"
        assert body["services"]["parking"].startswith("parking unreachable")
        assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"


async def test_readyz_waits_for_the_start_up_file_when_one_is_set(
    stack: TestStack, gateway_template: str, upstream: Upstream, tmp_path: Path
) -> None:
    # `make run` sets it to the file it writes once the demo data is in.
    marker = tmp_path / "demo-data-ready"
    async with running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}, ready_after_file=marker) as gw:
        assert (await gw.client.get("/healthz")).status_code == 200
        r = await gw.client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "not ready" and r.json()["checks"]["startup"].startswith("waiting for demo-data-ready")
        assert only_seeding_awaited(r)  # what `make run` waits for before it seeds
        # Logins and the door already work: the seeding goes through them.
        assert (await gw.client.get("/api/timebank/notes", headers=resident(stack))).status_code == 200
        marker.write_text("seeded")
        r = await gw.client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["startup"] == "ok", r.text
        assert not only_seeding_awaited(r)


async def test_the_path_reaches_the_upstream_as_the_caller_encoded_it(stack: TestStack, gateway: RunningService) -> None:
    headers = resident(stack)
    r = await gateway.client.get("/api/timebank/notes/%1A%2Fodd", headers=headers)
    assert r.status_code == 404, r.text  # the service's own answer: no such note, not a gateway crash
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_concurrent_requests_share_redis_round_trips_yet_each_is_counted(
    stack: TestStack, gateway_template: str, upstream: Upstream
) -> None:
    # Requests arriving together are admitted in one batched script call; each must still get its
    # own increment, so exactly the allowance passes and the rest are refused.
    headers = resident(stack)
    async with running_gateway(stack, gateway_template, upstreams={"timebank": upstream.url}, rate_limit_user="10/minute") as gw:
        results = await asyncio.gather(*(gw.client.get("/api/timebank/echo", headers=headers) for _ in range(30)))
        assert sorted(r.status_code for r in results) == [200] * 10 + [429] * 20
        assert upstream.state.calls["echo-GET"] == 10


async def test_admissions_arriving_while_a_call_is_out_go_together_in_the_next(stack: TestStack) -> None:
    # One admission call in flight at a time: the requests that arrive, over several event-loop
    # passes, while the first one's call is out share the second call, and each still gets its own
    # increment.
    from redis.asyncio import Redis

    from gateway.protection import AdmissionBatcher

    redis = Redis.from_url(stack.redis_url)
    try:
        batcher = AdmissionBatcher(redis, user_expiry=60, ip_expiry=60)
        calls: list[int] = []
        first_out, first_back = asyncio.Event(), asyncio.Event()
        script = batcher.script

        async def counted(*, keys: list[str], args: tuple[int, int]) -> bytes:
            calls.append(len(keys) // 3)
            first_out.set()
            answer: bytes = await script(keys=keys, args=args)
            if len(calls) == 1:
                await first_back.wait()  # hold the first call out while the others arrive
            return answer

        batcher.script = counted  # type: ignore[assignment]
        tag = uuid.uuid4().hex
        first = asyncio.ensure_future(batcher.admit(f"deny:{tag}", f"user:{tag}", f"ip:{tag}:0"))
        await first_out.wait()
        waves = []
        for wave in range(2):
            waves += [
                asyncio.ensure_future(batcher.admit(f"deny:{tag}", f"user:{tag}", f"ip:{tag}:{wave}-{n}")) for n in range(10)
            ]
            for _ in range(3):
                await asyncio.sleep(0)  # let a flush run, were one scheduled
        first_back.set()
        answers = [await first, *await asyncio.gather(*waves)]
        assert calls == [1, 20]
        assert sorted(user for _, user, _ in answers) == list(range(1, 22))
        assert all(revoked == 0 and ip == 1 for revoked, _, ip in answers)
    finally:
        await redis.aclose()


async def test_a_revoked_token_is_refused_even_among_valid_ones_admitted_together(
    stack: TestStack, gateway: RunningService
) -> None:
    subject = str(uuid.uuid4())
    revoked_token = stack.token(subject, "resident", community=COMMUNITY)
    await gateway.state.identity.deny.revoke(revoked_token, int(time.time()) + 900)
    valid = resident(stack)
    calls = [(True, {"Authorization": f"Bearer {revoked_token}"}) if i % 3 == 0 else (False, valid) for i in range(24)]
    results = await asyncio.gather(*(gateway.client.get("/api/timebank/echo", headers=h) for _, h in calls))
    for (is_revoked, _), r in zip(calls, results, strict=True):
        if is_revoked:
            assert r.status_code == 401
            assert r.json()["type"] == "urn:community:problem:gateway/token-revoked"
        else:
            assert r.status_code == 200, r.text


async def test_a_proxied_request_is_one_server_span_in_the_callers_trace(stack: TestStack, gateway: RunningService) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = uuid.uuid4().hex
    r = await gateway.client.get("/api/timebank/echo", headers={**resident(stack), "traceparent": f"00-{trace_id}-{'2' * 16}-01"})
    assert r.status_code == 200
    ours = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    hop = [s for s in ours if s.kind == trace.SpanKind.SERVER and s.name.startswith("GET /api/timebank/")]
    assert len(hop) == 1, [s.name for s in ours]
    span = hop[0]
    assert span.parent is not None and format(span.parent.span_id, "016x") == "2" * 16
    # Nothing else at the door opens a server span for the caller's request (FastAPI's native
    # telemetry would, beside the front door's, if it did not see the OpenTelemetry instrumentation).
    at_the_door = [
        s
        for s in ours
        if s.kind == trace.SpanKind.SERVER and s.parent is not None and format(s.parent.span_id, "016x") == "2" * 16
    ]
    assert len(at_the_door) == 1, [s.name for s in at_the_door]
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200
    # The upstream is called inside that span: the service's own server span is its child.
    forwarded = r.json()["headers"]["traceparent"].split("-")
    assert forwarded[1] == trace_id and forwarded[2] == format(span.context.span_id, "016x")
    service = [s for s in ours if s.kind == trace.SpanKind.SERVER and s.name == "GET /echo"]
    assert service and service[0].parent is not None and service[0].parent.span_id == span.context.span_id


async def test_access_lines_have_the_kits_fields_and_are_written_once_per_loop_pass() -> None:
    import io
    import json

    from gateway.accesslog import AccessLogHandler

    stream = io.StringIO()
    logger = logging.Logger("gateway.access.test")
    logger.addHandler(AccessLogHandler("gateway", stream=stream))
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("GET") as span:
        logger.info("%s %s %d subject=%s", "GET", "/api/timebank/notes/{note_id}", 200, "u-1", extra={"request_id": "req-1"})
        logger.info("phone 17012345678 slipped in", extra={"request_id": "req-2"})
    assert stream.getvalue() == "", "written at the end of the event-loop pass, not per line"
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["req-1", "req-2"]
    first = lines[0]
    assert first["message"] == "GET /api/timebank/notes/{note_id} 200 subject=u-1"
    assert first["level"] == "info" and first["service"] == "gateway" and first["logger"] == "gateway.access.test"
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "17012345678" not in lines[1]["message"]
