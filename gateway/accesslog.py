"""The access log's own handler: the kit's line shape, written once per event-loop pass.

The gateway writes one access line per proxied request, which through the kit's handler meant the
kit's general JSON formatter (every record attribute inspected) and a write and flush per line.
This handler formats just the fields an access line has, with the same names as the kit's
(`time`, `level`, `service`, `logger`, `message`, `trace_id`, `span_id`, `request_id`), masks
personal data the same way as a last line of defence, and writes the lines gathered in one pass
of the event loop together.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

import orjson

from services.kit.telemetry import log_entry, mask_personal_data

# Past this many waiting lines, write at once rather than at the end of the pass.
MAX_PENDING_LINES = 256


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

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.line(record))
        except Exception:
            self.handleError(record)
            return
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


def install_access_log(logger: logging.Logger, service: str, *, as_json: bool) -> None:
    """Give the access logger its own handler (and keep its lines off the root's)."""
    logger.handlers[:] = [AccessLogHandler(service, as_json=as_json)]
    logger.propagate = False
