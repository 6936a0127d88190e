"""The proxy path's per-request shortcuts give what the long way gives: the access line without a
LogRecord is the record's line; a route table's remembered template is the one it matched."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN_CONTEXT

from gateway.accesslog import AccessLogHandler, only_access_handler


async def test_the_direct_access_line_is_the_records_line_with_personal_data_masked() -> None:
    stream = io.StringIO()
    handler = AccessLogHandler("gateway", stream=stream)
    logger = logging.Logger("gateway.access.direct")
    logger.addHandler(handler)
    logger.propagate = False
    assert only_access_handler(logger) is handler
    tracer = TracerProvider().get_tracer("test")
    cases = [
        ("GET", "/api/timebank/members/me", 200, 1.25, "u-1", "req-1"),
        ("POST", "/api/parking/京A12345/unmatched", 503, 12.0, "17012345678", "13812345678"),
    ]
    with tracer.start_as_current_span("GET") as span:
        for method, route, status, elapsed, subject, request_id in cases:
            logger.info("%s %s %d %.1fms subject=%s", method, route, status, elapsed, subject, extra={"request_id": request_id})
            handler.access(logger.name, method, route, status, elapsed, subject, request_id, span.get_span_context())
    handler.access(logger.name, "GET", "/x", 404, 0.5, "-", "req-3", INVALID_SPAN_CONTEXT)
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 5
    for by_record, direct in (lines[0:2], lines[2:4]):
        by_record.pop("time"), direct.pop("time")
        assert direct == by_record
    assert lines[1]["message"] == "GET /api/timebank/members/me 200 1.2ms subject=u-1"
    masked = lines[3]
    assert "17012345678" not in masked["message"] and "京A12345" not in masked["message"]
    assert masked["request_id"] == "[redacted]" and masked["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in lines[4] and lines[4]["message"] == "GET /x 404 0.5ms subject=-"


def test_the_direct_line_is_used_only_when_the_handler_is_the_loggers_only_one() -> None:
    logger = logging.Logger("gateway.access.watched")
    logger.propagate = False
    handler = AccessLogHandler("gateway", stream=io.StringIO())
    logger.addHandler(handler)
    logger.addHandler(logging.NullHandler())  # as a test watching the lines adds its own
    assert only_access_handler(logger) is None
    logger.removeHandler(logger.handlers[1])
    assert only_access_handler(logger) is handler
    quiet = logging.Logger("gateway.access.quiet", logging.WARNING)
    quiet.propagate = False
    quiet.addHandler(AccessLogHandler("gateway", stream=io.StringIO()))
    assert only_access_handler(quiet) is None
    assert only_access_handler(logging.Logger("plain")) is None


def test_a_route_table_answers_a_known_path_as_it_did_the_first_time() -> None:
    from gateway.routes import KNOWN_PATH_LENGTH, RouteTable

    table = RouteTable.from_paths({"timebank": ["/members/me", "/members/{member_id}"]})
    for _ in range(2):
        assert table.template("timebank", "/members/me") == "/api/timebank/members/me"
        assert table.template("timebank", "/members/42") == "/api/timebank/members/{member_id}"
        assert table.template("timebank", "/nothing") == "/api/timebank/unmatched"
    long_path = "/members/" + "x" * KNOWN_PATH_LENGTH
    assert table.template("timebank", long_path) == "/api/timebank/members/{member_id}"
    assert ("timebank", long_path) not in table.known and len(table.known) == 3
