"""Every list is a cursor page (issue 19): read from the merged OpenAPI document the gateway serves,
every GET operation of every service answers either the kit's page (`items`, `next_cursor`, with
`cursor` and `limit` declared, the kit's default and maximum size, and the invalid-cursor problem)
or one resource that is not an array. No route answers a bare JSON array.

The walks that prove each page route pages without duplicates or gaps under concurrent inserts are
in the services' own test directories (`test_pages.py` in each)."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from deploy import openapi_dump
from services.kit.pagination import MAX_PAGE_SIZE, InvalidCursor

# The page routes of issue 19's third part, which were bare arrays before it: each must now be a page.
WERE_ARRAYS = {
    "/api/timebank/members/{member_id}/relatives",
    "/api/parking/spots/{spot_id}/windows",
    "/api/parking/gate-devices",
    "/api/property/sla-policies",
    "/api/property/tickets/{ticket_id}/steps",
    "/api/property/tickets/{ticket_id}/payments",
    "/api/governance/rules",
    "/api/governance/me/lots",
    "/api/governance/rewards",
    "/api/governance/decisions",
    "/api/governance/me/decisions",
    "/api/governance/decisions/{decision_id}/ballots",
    "/api/governance/pledge-offers",
    "/city/v1/feeds",
    "/api/security/devices",
    "/api/security/alarms",
    "/api/security/watches",
    "/api/security/passes",
    "/api/security/expected-visitors",
    "/api/security/devices/me/revocations",
    "/api/security/devices/me/passes",
}


@functools.cache
def document() -> dict[str, Any]:
    return openapi_dump.merged_document()


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document()["components"]["schemas"][name]
    return schema


def json_answers(operation: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON schemas of the operation's 2xx answers."""
    found = []
    for status, response in operation.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        for media, content in response.get("content", {}).items():
            if media == "application/json" or media.endswith("+json"):
                found.append(resolve(content.get("schema", {})))
    return found


def get_operations() -> list[tuple[str, dict[str, Any]]]:
    return [(path, item["get"]) for path, item in document()["paths"].items() if "get" in item]


def is_page(schema: dict[str, Any]) -> bool:
    properties = schema.get("properties", {})
    return "next_cursor" in properties and resolve(properties.get("items", {})).get("type") == "array"


def query_parameter(operation: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in operation.get("parameters", []) if p.get("in") == "query" and p["name"] == name), None)


def test_the_document_holds_every_service_and_each_route_of_the_issue() -> None:
    paths = {path for path, _ in get_operations()}
    assert len(paths) > 60
    assert WERE_ARRAYS <= paths, sorted(WERE_ARRAYS - paths)


@pytest.mark.parametrize(("path", "operation"), get_operations(), ids=[path for path, _ in get_operations()])
def test_a_get_route_answers_a_page_or_one_resource_never_a_bare_array(path: str, operation: dict[str, Any]) -> None:
    answers = json_answers(operation)
    assert all(schema.get("type") != "array" for schema in answers), f"{path} answers a bare JSON array"
    pages = [schema for schema in answers if is_page(schema)]
    if path in WERE_ARRAYS:
        assert pages, f"{path} must answer a cursor page"
    if not pages:
        # One resource: an object, never a list dressed as one (an `items` array without a cursor).
        assert all(schema.get("type", "object") == "object" for schema in answers), path
        assert not any("items" in schema.get("properties", {}) for schema in answers), f"{path}: a list without a cursor"
        return
    limit, cursor = query_parameter(operation, "limit"), query_parameter(operation, "cursor")
    assert limit is not None and cursor is not None, f"{path} must declare `limit` and `cursor`"
    assert (limit["schema"].get("maximum"), limit["schema"].get("minimum"), limit["schema"].get("default")) == (
        MAX_PAGE_SIZE,
        1,
        20,
    ), path
    invalid = operation["responses"].get("400", {})
    assert InvalidCursor.slug in str(invalid), f"{path} must document the invalid-cursor problem"
