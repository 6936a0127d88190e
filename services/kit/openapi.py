"""The kit's part of every service's OpenAPI document, so each one reads as documentation.

- Each operation's summary is its route function's docstring's first paragraph; its description is
  the rest (or the summary again when the docstring is one paragraph).
- Every tag has a description: the service's own, plus the kit's `operations` tag.
- The problems the kit and the gateway answer are documented where they can happen, as
  `application/problem+json`: 401/403 on routes that need a bearer token, 404 on routes with a
  path id, 409 on writes, 429 on every route the gateway rate-limits, and 422 with the field
  errors the kit's validation handler sends (not FastAPI's `HTTPValidationError`, which is never
  answered).
- A request body whose model declares `examples` (`model_config = ConfigDict(json_schema_extra=
  {"examples": [...]})`) carries them as the media type's examples, where tools show them; a
  model without any, whose required fields each have `Field(examples=[...])`, carries their sum.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from services.kit.pagination import InvalidCursor
from services.kit.problems import (
    PROBLEM_MEDIA_TYPE,
    BadRequest,
    Conflict,
    Forbidden,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    NotFound,
    Problem,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
# The orchestrator calls the probes on each replica directly; the gateway's rate limits never apply.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
SCHEMA_REF = "#/components/schemas/"
# FastAPI's validation-error schemas: documented by default, never answered by the kit.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

OPERATIONS_TAG = {
    "name": "operations",
    "description": "Liveness and readiness probes, called by the orchestrator on each replica",
}


class ProblemSchema(BaseModel):
    """RFC 9457 problem details; a problem type may add members of its own."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class FieldError(BaseModel):
    """One invalid input: where it is (`body`, `query`, `path`, `header`), which field, and why."""

    field: str
    in_: str = Field(alias="in")
    message: str
    code: str


class ValidationProblemSchema(ProblemSchema):
    """A 422 problem; request validation lists each invalid field in `errors`."""

    errors: list[FieldError] = []


def problem_components() -> dict[str, dict[str, Any]]:
    """The component schemas that every service's problem responses refer to."""
    validation = ValidationProblemSchema.model_json_schema(ref_template=SCHEMA_REF + "{model}")
    field_error = validation.pop("$defs")["FieldError"]
    return {
        "Problem": {**ProblemSchema.model_json_schema(), "title": "Problem"},
        "ValidationProblem": {**validation, "title": "ValidationProblem"},
        "FieldError": {**field_error, "title": "FieldError"},
    }


def describe_from_docstrings(routes: Sequence[BaseRoute]) -> None:
    """Give each route the summary and description its function's docstring holds.

    Runs over a router's routes before the app includes it: the app copies them when it first
    resolves its routes, so later changes would not reach the document.
    """
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        doc = inspect.cleandoc(route.endpoint.__doc__ or "").split("\f")[0].strip()
        if not doc:
            continue
        first, _, rest = doc.partition("\n\n")
        summary = " ".join(first.split())
        route.summary = route.summary or summary
        # FastAPI has already copied the whole docstring; a description passed explicitly stays.
        if route.description == doc:
            route.description = rest.strip() or summary


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def expected_problems(path: str, method: str, operation: dict[str, Any]) -> list[type[Problem]]:
    """The kit's and the gateway's problems this operation can answer, read from its shape."""
    parameters = operation.get("parameters", [])
    found: list[type[Problem]] = []
    if operation.get("security"):
        found += [Unauthorized, Forbidden]
    if any(p.get("in") == "path" for p in parameters):
        found.append(NotFound)
    if method in WRITE_METHODS:
        found.append(Conflict)
    if any(p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key" for p in parameters):
        found += [IdempotencyInProgress, IdempotencyKeyReused]
    if "requestBody" in operation:
        found.append(BadRequest)  # a body that is not UTF-8 JSON at all
    if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
        found.append(InvalidCursor)
    if parameters or "requestBody" in operation:
        found.append(ValidationFailed)
    if path not in PROBE_PATHS:
        found.append(RateLimited)
    return found


def _lines(description: str) -> list[str]:
    return [line for line in description.split("; ") if line]


def document_problems(document: dict[str, Any]) -> None:
    """Document every problem an operation can answer as problem+json (422 with its field errors)."""
    for path, method, operation in operations(document):
        responses: dict[str, Any] = operation.setdefault("responses", {})
        fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json")
        if fastapi_422 is not None:
            del responses["422"]
        for status, generic in problem_responses(*expected_problems(path, method, operation)).items():
            key = str(status)
            declared = responses.get(key)
            if declared is None:
                responses[key] = generic
                continue
            if PROBLEM_MEDIA_TYPE in declared.get("content", {}):
                # A route's own problem types come first; the generic ones it may also meet follow.
                lines = _lines(declared.get("description", ""))
                lines += [line for line in _lines(generic["description"]) if line not in lines]
                declared["description"] = "; ".join(lines)
        if "422" in responses:
            responses["422"]["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": SCHEMA_REF + "ValidationProblem"}}}
        operation["responses"] = dict(sorted(responses.items()))
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(problem_components())
    text = json.dumps(document["paths"])
    for name in FASTAPI_VALIDATION_SCHEMAS:
        if name in schemas and f'"{SCHEMA_REF}{name}"' not in text:
            del schemas[name]


def _examples_of(schema: dict[str, Any], components: dict[str, Any]) -> list[Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
        return _examples_of(components.get(ref.removeprefix(SCHEMA_REF), {}), components)
    variants = schema.get("oneOf") or schema.get("anyOf") or []
    if variants:
        return [example for variant in variants for example in _examples_of(variant, components)]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return list(examples)
    composed = _composed_example(schema)
    return [composed] if composed is not None else []


def _composed_example(schema: dict[str, Any]) -> dict[str, Any] | None:
    """A model without examples of its own, whose required fields all have one, has their sum."""
    properties: dict[str, Any] = schema.get("properties", {})
    example = {name: field["examples"][0] for name, field in properties.items() if field.get("examples")}
    if not example or not set(schema.get("required", [])) <= set(example):
        return None
    return example


def add_request_examples(document: dict[str, Any]) -> None:
    """Carry each request model's examples to its operations' request bodies."""
    components = document.get("components", {}).get("schemas", {})
    for _, _, operation in operations(document):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            if "example" in media or "examples" in media:
                continue
            found = _examples_of(media.get("schema", {}), components)
            if found:
                media["examples"] = {f"example-{i}": {"value": value} for i, value in enumerate(found, 1)}


def define_tags(document: dict[str, Any], tags: Sequence[dict[str, Any]]) -> None:
    """The service's tag definitions, then the kit's own."""
    document["tags"] = [*(t for t in tags if t["name"] != OPERATIONS_TAG["name"]), OPERATIONS_TAG]


def complete_document(document: dict[str, Any], tags: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Everything above, over the document FastAPI generated from the routes."""
    define_tags(document, tags)
    document_problems(document)
    add_request_examples(document)
    return document


class DocumentedApp(FastAPI):
    """A FastAPI app whose OpenAPI document is completed as above each time FastAPI generates it."""

    def __init__(self, *, tag_definitions: Sequence[dict[str, Any]], **options: Any) -> None:
        super().__init__(**options)
        self.tag_definitions = tag_definitions
        self._completed: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        # FastAPI caches its document until the routes change; complete each new one once.
        generated = super().openapi()
        if generated is not self._completed:
            self._completed = complete_document(generated, self.tag_definitions)
        return self._completed
