"""The access log's own handler: the kit's line shape, written once per event-loop pass.

The gateway writes one access line per proxied request, which through the kit's handler meant the
kit's general JSON formatter (every record attribute inspected) and a write and flush per line.
This handler formats just the fields an access line has, with the same names as the kit's
(`time`, `level`, `service`, `logger`, `message`, `trace_id`, `span_id`, `request_id`), masks
personal data the same way as a last line of defence, and writes the lines gathered in one pass
of the event loop together.

The front door writes its line through `access` when this handler is the access logger's only
one: no `LogRecord`, no `%` formatting of the message, and the route and subject masked once per
distinct value (cached); the line is the same as `emit` would write for the same record.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import TextIO

import orjson
from opentelemetry.trace import SpanContext

from services.kit.telemetry import log_entry, mask_personal_data

# Past this many waiting lines, write at once rather than at the end of the pass.
MAX_PENDING_LINES = 256
# An elapsed time this long (in ms) prints 10 digits before the point: masked like any other text.
MASK_ELAPSED_FROM_MS = 1e9


@lru_cache(maxsize=4096)
def masked(text: str) -> str:
    """`mask_personal_data` of a value that recurs (a method and route template, a subject id)."""
    return mask_personal_data(text)


class AccessLogHandler(logging.Handler):
    def __init__(self, service: str, *, as_json: bool = True, stream: TextIO | None = None):
        super().__init__()
        self.service = service
        self.as_json = as_json
        self.plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        # None: whatever sys.stderr is when the lines are written (as a test runner may swap it).
        self.stream = stream
        self.lines: list[str] = []

    def line(self, record: logging.LogRecord) -> str:
        if not self.as_json:
            return self.plain.format(record) + "\n"
        entry = log_entry(self.service, record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = mask_personal_data(str(request_id))
        return orjson.dumps(entry).decode() + "\n"

    def access(
        self,
        logger: str,
        method: str,
        route: str,
        status: int,
        elapsed_ms: float,
        subject: str,
        request_id: str,
        span_context: SpanContext,
    ) -> None:
        """The line `emit` writes for `"%s %s %d %.1fms subject=%s"` of these values at INFO.

        The message's parts are masked one by one: they are joined by spaces and `=`, which none
        of the masked patterns (digit runs, plates) can span, so the result is the whole's masking.
        """
        elapsed = f"{elapsed_ms:.1f}"
        if elapsed_ms >= MASK_ELAPSED_FROM_MS:
            elapsed = mask_personal_data(elapsed)
        entry = {
            "time": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "service": self.service,
            "logger": logger,
            "message": f"{masked(method + ' ' + route)} {status} {elapsed}ms subject={masked(subject)}",
        }
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        entry["request_id"] = mask_personal_data(request_id)
        self.lines.append(orjson.dumps(entry).decode() + "\n")
        self._written()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.line(record))
        except Exception:
            self.handleError(record)
            return
        self._written()

    def _written(self) -> None:
        if len(self.lines) >= MAX_PENDING_LINES:
            self.flush()
        elif len(self.lines) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on the event loop's thread: write now
                self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        text, self.lines = "".join(self.lines), []
        stream = self.stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed stream (interpreter shutdown, a finished test's capture)
            pass


def only_access_handler(logger: logging.Logger) -> AccessLogHandler | None:
    """The logger's own JSON access handler if a line through it equals one through `logger.info`:
    INFO enabled, no filters, no other handler (as a test may add), no propagation."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters or not logger.isEnabledFor(logging.INFO):
        return None
    handler = handlers[0]
    if type(handler) is not AccessLogHandler or not handler.as_json or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def install_access_log(logger: logging.Logger, service: str, *, as_json: bool) -> None:
    """Give the access logger its own handler (and keep its lines off the root's)."""
    logger.handlers[:] = [AccessLogHandler(service, as_json=as_json)]
    logger.propagate = False
