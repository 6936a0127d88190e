"""An undeclared query parameter is a 422 problem on every route of every service, and the names a
route accepts are exactly the ones its OpenAPI operation declares."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from services.kit.pagination import PageDep
from services.kit.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from services.kit.query_params import declared_query_names, refuse_unknown_query

SERVICES = ("timebank", "parking", "property", "governance", "citysync", "notify")


class Filters(BaseModel):
    building: str | None = None
    overdue: bool = False


def _demo_app() -> FastAPI:
    app = FastAPI(dependencies=[Depends(refuse_unknown_query)])
    install_problem_handlers(app)

    @app.get("/items")
    async def items(page: PageDep, filters: Annotated[Filters, Query()], q: str | None = None) -> dict[str, Any]:
        return {"limit": page.limit, "building": filters.building, "q": q}

    return app


async def _get(app: FastAPI, url: str, params: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get(url, params=params)


async def test_declared_names_pass_including_those_of_dependencies_and_query_models() -> None:
    r = await _get(_demo_app(), "/items", {"limit": "5", "cursor": "", "building": "b-1", "overdue": "true", "q": "3-201"})
    assert r.status_code == 200, r.text
    assert r.json() == {"limit": 5, "building": "b-1", "q": "3-201"}
    assert (await _get(_demo_app(), "/items")).status_code == 200


async def test_an_unknown_name_is_a_422_problem_naming_each_unknown_one() -> None:
    r = await _get(_demo_app(), "/items", {"limit": "5", "stauts": "open", "sort": "due_at"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = r.json()
    assert body["type"].endswith("validation-error")
    assert [(e["in"], e["field"], e["code"]) for e in body["errors"]] == [
        ("query", "sort", "extra_forbidden"),
        ("query", "stauts", "extra_forbidden"),
    ]


def _service_app(service: str) -> FastAPI:
    package = f"services.{service}"
    settings = importlib.import_module(f"{package}.settings").Settings()
    app: FastAPI = importlib.import_module(f"{package}.app").create_app(settings)
    return app


def _routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Each documented route with its path as the app serves it (routers are included lazily)."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            found.append((context.path_format or route.path_format, route))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_each_route_accepts_exactly_the_query_parameters_its_openapi_operation_declares(service: str) -> None:
    app = _service_app(service)
    document = app.openapi()
    checked = 0
    for path, route in _routes(app):
        for method in route.methods:
            operation = document["paths"][path][method.lower()]
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert declared_query_names(route) == declared, f"{service} {method} {path}"
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("service", SERVICES)
async def test_every_get_route_of_every_service_refuses_an_unknown_query_parameter(service: str) -> None:
    """Checked before authentication and the database: the refusal needs neither, so the app is
    driven without its lifespan (no database, no broker) and still answers the 422."""
    app = _service_app(service)
    refused = 0
    for path_format, route in _routes(app):
        if "GET" not in route.methods:
            continue
        path = path_format
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", "x")
        r = await _get(app, path, {"no_such_filter": "1"})
        assert r.status_code == 422, f"{service} GET {path_format}: {r.status_code} {r.text[:200]}"
        assert [(e["in"], e["field"]) for e in r.json()["errors"]] == [("query", "no_such_filter")]
        refused += 1
    assert refused >= 2
