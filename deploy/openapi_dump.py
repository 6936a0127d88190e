"""The gateway's merged OpenAPI document, built in-process from every service's app: no server,
database or broker runs (building an app connects to nothing; only its lifespan would).

`python -m deploy.openapi_dump build/openapi.json` writes it for `make check`, where Spectral
lints it; tests read the same document through `merged_document()`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import warnings
from pathlib import Path
from typing import Any

from gateway import openapi
from gateway.settings import SERVICES

# Building an app reads its settings; these values only need to parse, nothing connects to them.
OFFLINE: dict[str, Any] = {"database_url": "postgresql://offline@127.0.0.1:1/none", "log_json": False}


def service_documents() -> dict[str, dict[str, Any]]:
    """Each service's own OpenAPI document, as its app serves it at /openapi.json."""
    docs: dict[str, dict[str, Any]] = {}
    for name in SERVICES:
        app_module = importlib.import_module(f"services.{name}.app")
        settings_module = importlib.import_module(f"services.{name}.settings")
        docs[name] = app_module.create_app(settings_module.Settings(**OFFLINE)).openapi()
    return docs


def gateway_document() -> dict[str, Any]:
    """The gateway's own routes (login, tokens, keys, readiness), before the services are merged in."""
    from gateway.app import create_app
    from gateway.settings import Settings

    app = create_app(Settings(**OFFLINE, redis_url="redis://127.0.0.1:1/0"))
    with warnings.catch_warnings():
        # The gateway puts its own /readyz ahead of the kit's, so FastAPI sees the operation id twice.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID operations-readyz")
        own: dict[str, Any] = app.openapi()
    return own


def merged_document() -> dict[str, Any]:
    """What the gateway serves at /openapi.json once every service has answered."""
    return openapi.merge(gateway_document(), service_documents())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path, help="where to write the merged document (JSON)")
    target: Path = parser.parse_args().output
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(merged_document(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
