"""Tracing, metrics and logs.

One trace runs from the HTTP request through the outbox row (which stores the request's
`traceparent`), across Kafka (the header), into the consumer's span. Spans are exported by OTLP
when OTEL_EXPORTER_OTLP_ENDPOINT is set; metrics are served at /metrics for Prometheus; logs are
JSON lines carrying the trace id, with phone, ID-card and plate numbers masked as a last line of
defence (nothing should log them in the first place).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

_provider: TracerProvider | None = None
_instrumented_libs = False
_instrumented_statements = False

HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_SENT = Counter("outbox_events_sent_total", "Events the outbox relay delivered to the broker", ["service"])
# A broker that lost acknowledged events (a memory-only broker restarted, a topic re-created): the
# relay sends them again by itself; an alert on the rate tells the operator it happened.
OUTBOX_LOSSES = Counter("outbox_broker_losses_total", "Partitions found to have lost acknowledged events", ["service"])
OUTBOX_RESENT = Counter("outbox_events_resent_total", "Events sent again because the broker lost them", ["service"])
# Alert on any increase: an event the broker can never accept waits for the operator.
OUTBOX_SET_ASIDE = Counter("outbox_events_set_aside_total", "Events set aside as never acceptable by the broker", ["service"])
CONSUMER_APPLIED = Counter("consumer_events_applied_total", "Events applied by a consumer group", ["group", "type"])
CONSUMER_DEAD = Counter("consumer_events_dead_lettered_total", "Events sent to the dead-letter topic", ["group"])
# An idle consumer's rests (services/kit/wakes.py) by what ended them: a wake, the fallback timer, or
# the wake subscription lost. Fallbacks well above ~2 a second per group while events flow mean wakes go missing.
CONSUMER_RESTS = Counter("consumer_rests_total", "Idle rests of a consumer group by what ended them", ["group", "ended_by"])
# Scheduled jobs: an alert on `time() - scheduled_job_last_success_timestamp_seconds` above a few
# intervals finds a job that keeps failing or has stopped, which a log line alone does not.
JOB_RUNS = Counter(
    "scheduled_job_runs_total",
    "Runs of a scheduled job by outcome (ok, failed, elsewhere: another replica had the period)",
    ["service", "job", "outcome"],
)
JOB_DURATION = Histogram(
    "scheduled_job_duration_seconds",
    "How long one run of a scheduled job took",
    ["service", "job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
JOB_LAST_SUCCESS = Gauge(
    "scheduled_job_last_success_timestamp_seconds",
    "When a scheduled job last finished without an error (Unix time)",
    ["service", "job"],
)


def setup_tracing(service_name: str, *, statements: bool = False) -> TracerProvider:
    """Install the global tracer provider once per process (tests may add processors to it).

    `statements` adds a span per SQL statement (asyncpg's instrumentation). Off unless a service's
    `TRACE_STATEMENTS` asks: it costs 0.15-0.3 ms of CPU per statement, as much as the statement's
    own Python work (docs/architecture.md), while the request's span already times the request and
    carries its trace into the outbox and the consumers."""
    global _provider, _instrumented_libs, _instrumented_statements
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
    if not _instrumented_libs:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        HTTPXClientInstrumentor().instrument()
        RedisInstrumentor().instrument()
        _instrumented_libs = True
    if statements and not _instrumented_statements:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
        _instrumented_statements = True
    return _provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_traceparent() -> tuple[str | None, str | None]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def context_from(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return propagate.extract(carrier)


_TRACEPARENT_V00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def span_context_of(traceparent: str) -> trace.SpanContext | None:
    """The remote span context a W3C `traceparent` names, or None if it names none. Version 00 is
    parsed directly (the relay links a batch's span to hundreds); others go through the propagator."""
    match = _TRACEPARENT_V00.fullmatch(traceparent)
    if match is None:
        ctx = trace.get_current_span(context_from(traceparent)).get_span_context()
        return ctx if ctx.is_valid else None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(match[3], 16)))


# --- logs ---------------------------------------------------------------------------------------

_PII_PATTERNS = [
    re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"),  # resident ID-card numbers
    re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"),  # mainland mobile numbers
    re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Z][A-HJ-NP-Z0-9]{5,6}"),  # plates
]


def mask_personal_data(text: str) -> str:
    for pattern in _PII_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


# Pydantic echoes the refused input in its messages (`input_value='13812345678'`): never kept.
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]|$)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
REASON_LIMIT = 500


def safe_reason(text: str, limit: int = REASON_LIMIT) -> str:
    """An error's text fit to keep beside an event (a dead letter's header, an outbox row): the
    inputs pydantic echoes dropped, personal data masked, control characters flattened, and at most
    `limit` characters. Masking comes before the cut, so a number cut in half cannot slip through."""
    text = _INPUT_VALUE.sub("input_value=[redacted]", text)
    text = _CONTROL.sub(" ", mask_personal_data(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


_STANDARD_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def log_entry(service: str, record: logging.LogRecord) -> dict[str, Any]:
    """The fields every JSON log line has: time, level, service, logger, the message with personal
    data masked, and the current trace and span ids."""
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "service": service,
        "logger": record.name,
        "message": mask_personal_data(record.getMessage()),
    }
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        entry["trace_id"] = format(ctx.trace_id, "032x")
        entry["span_id"] = format(ctx.span_id, "016x")
    return entry


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = log_entry(self.service, record)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_") and key not in entry:
                entry[key] = mask_personal_data(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.set_name("kit")
    root = logging.getLogger()
    # Replace only our own handler (called again per app in one process); leave others, such as
    # a test runner's capture, in place.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "kit"] + [handler]
    root.setLevel(level)
    # Access logs carry full URLs (which may hold query parameters); the metrics cover them.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO, query string (and any phone number in it) included.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


# --- metrics ------------------------------------------------------------------------------------


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
