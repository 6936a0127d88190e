"""One OpenAPI document for the whole platform: the gateway's own routes and every service's.

Each service's paths move under `/api/<service>`, its operation ids and tags get the service's
name in front (`timebank-transfers-create-transfer`), and its schemas too (`TimebankTransfer`),
so nothing collides and a generated client gets readable names. Schemas the kit gives every
service the same way (Problem, validation errors) are kept once under their own name.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import Any

import httpx
from starlette.datastructures import State

from gateway.proxy import Proxy
from gateway.routes import CITY_DOOR, CITY_PREFIX, RouteTable, public_path

log = logging.getLogger("gateway.openapi")

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
SHARED_SCHEMAS = frozenset({"Problem", "ValidationProblem", "FieldError"})
SERVERS = [{"url": "http://127.0.0.1:8000", "description": "The local stack's gateway (`make run`)"}]
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "Access token from POST /auth/token",
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _tag_name(service: str, tag: str) -> str:
    return tag if tag.startswith(service) else f"{service}-{tag}"


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                name = value.removeprefix("#/components/schemas/")
                out[key] = "#/components/schemas/" + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def merge(own: dict[str, Any], services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged = copy.deepcopy(own)
    merged["info"] = {**merged.get("info", {}), "title": "Community platform API (via the gateway)"}
    merged["servers"] = SERVERS
    tags = {tag["name"]: tag for tag in merged.get("tags", [])}
    components = merged.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemes = components.setdefault("securitySchemes", {})
    schemes["HTTPBearer"] = BEARER_SCHEME
    paths = merged.setdefault("paths", {})
    for path in OPERATIONS_PATHS & set(paths):
        paths[path] = {m: {**op, "security": []} for m, op in paths[path].items()}
    for service, doc in sorted(services.items()):
        prefix = _camel(service)
        theirs: dict[str, Any] = doc.get("components", {}).get("schemas", {})
        renames: dict[str, str] = {}
        for name, schema in theirs.items():
            shared = name in SHARED_SCHEMAS and schemas.get(name, schema) == schema
            renames[name] = name if shared else prefix + name
        for name, schema in theirs.items():
            renamed = _rewrite_refs(schema, renames)
            if renames[name] != name and isinstance(renamed, dict):
                renamed["title"] = renames[name]  # generators name classes by title, not by key
            schemas[renames[name]] = renamed
        for tag in doc.get("tags", []):
            tags.setdefault(_tag_name(service, tag["name"]), {**tag, "name": _tag_name(service, tag["name"])})
        tags.setdefault(service, {"name": service, "description": doc.get("info", {}).get("description", "")})
        for scheme_name, scheme in doc.get("components", {}).get("securitySchemes", {}).items():
            schemes.setdefault(scheme_name, scheme)
        for path, item in doc.get("paths", {}).items():
            if path in OPERATIONS_PATHS:
                continue
            new_item: dict[str, Any] = {}
            for key, value in item.items():
                value = _rewrite_refs(value, renames)
                if key in HTTP_METHODS:
                    op_id = value.get("operationId") or f"{key}-{path.strip('/').replace('/', '-')}"
                    value["operationId"] = op_id if op_id.startswith(f"{service}-") else f"{service}-{op_id}"
                    value["tags"] = [_tag_name(service, t) for t in value.get("tags", [])] or [service]
                new_item[key] = value
            paths[public_path(service, path)] = new_item
    # Only the tags some operation carries: a service's `operations` probes are not merged.
    used = {tag for item in paths.values() for key, op in item.items() if key in HTTP_METHODS for tag in op.get("tags", [])}
    merged["tags"] = [tag for name, tag in tags.items() if name in used]
    return merged


def paths_by_service(merged: dict[str, Any], services: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {s: [] for s in services}
    door_service = CITY_DOOR[0]
    for path in merged.get("paths", {}):
        if path.startswith(CITY_PREFIX + "/") and door_service in out:
            out[door_service].append(path.removeprefix(CITY_PREFIX))
            continue
        for service in services:
            if path.startswith(f"/api/{service}/"):
                out[service].append(path.removeprefix(f"/api/{service}"))
    return out


async def fetch_documents(
    client: httpx.AsyncClient, upstreams: dict[str, str], timeout_s: float = 3.0
) -> dict[str, dict[str, Any]]:
    """Each reachable service's document; one that does not answer is left out for now."""

    async def fetch(name: str, base: str) -> tuple[str, dict[str, Any] | None]:
        try:
            response = await client.get(base.rstrip("/") + "/openapi.json", timeout=timeout_s)
            response.raise_for_status()
            return name, dict(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.info("no OpenAPI document from %s yet: %s", name, exc.__class__.__name__)
            return name, None

    results = await asyncio.gather(*(fetch(n, u) for n, u in upstreams.items()))
    return {name: doc for name, doc in results if doc is not None}


async def refresh_openapi(state: State) -> dict[str, Any]:
    """Fetch the services' documents again, merge them with the gateway's, and label routes by them."""
    proxy: Proxy = state.proxy
    docs = await fetch_documents(state.http_client, state.settings.upstreams)
    merged = merge(state.own_openapi, docs)
    state.merged_openapi = merged
    proxy.routes = RouteTable.from_paths(paths_by_service(merged, list(state.settings.upstreams)))
    return merged


async def refresh_forever(state: State, every_s: float) -> None:
    """Keep the merged document current; a service that is down is picked up when it is back."""
    while True:
        with contextlib.suppress(Exception):
            await refresh_openapi(state)
        await asyncio.sleep(every_s)
