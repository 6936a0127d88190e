"""`python -m gateway.serve`: the gateway under uvicorn, with the request-head limits in force.

uvicorn's command line cannot name a protocol class of its own, so the gateway is started here:
the app factory (`gateway.app:create_app`) on `LimitedHttpToolsProtocol` (gateway/limits.py).

    python -m gateway.serve --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from gateway.limits import LimitedHttpToolsProtocol

# uvicorn as the gateway runs it: its own HTTP protocol, and no belief in forwarding headers
# (uvicorn would trust X-Forwarded-For from loopback; the gateway decides, in gateway/clients.py).
SERVER_OPTIONS: dict[str, Any] = {"http": LimitedHttpToolsProtocol, "proxy_headers": False}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.serve", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", action="store_true", help="uvicorn's own access log (the gateway writes its own)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None)
    args = parser.parse_args(argv)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        access_log=not args.no_access_log,
        log_level=args.log_level,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        **SERVER_OPTIONS,
    )


if __name__ == "__main__":
    main()
