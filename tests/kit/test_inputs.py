"""The input policy: what every request body and query parameter refuses, and that every service's
request bodies follow it (with examples that themselves pass)."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from services.kit.inputs import Day, Month, RequestBody, Timestamp, Uuid
from services.kit.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

SERVICES = ("timebank", "parking", "property", "governance", "citysync", "notify", "security")


class Note(RequestBody):
    text: Annotated[str, Field(min_length=1, max_length=50)]
    count: int = 1
    urgent: bool = False
    tags: list[str] = Field(default_factory=list)
    at: Timestamp | None = None
    ref: Uuid | None = None
    free: str | None = None


@pytest.mark.parametrize(
    "text",
    [
        "nul\x00inside",
        "bell\x07",
        "escape\x1b[31m",
        "carriage\rreturn",
        "delete\x7f",
        "c1\x85",
        "lone \ud800 high",
        "lone \udfff low",
    ],
)
def test_text_with_control_characters_or_lone_surrogates_is_refused(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Note.model_validate({"text": text})
    assert [e["loc"] for e in caught.value.errors()] == [("text",)]


@pytest.mark.parametrize(
    "text", ["厨房水龙头漏水", "line one\nline two\tindented", "\u202eRTL mark", "'; DROP TABLE t; --", "<b>x</b>", "😀"]
)
def test_text_people_write_is_kept_as_it_is(text: str) -> None:
    assert Note.model_validate({"text": text}).text == text


def test_strings_in_a_list_are_checked_and_name_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Note.model_validate({"text": "ok", "tags": ["fine", "bad\x00"]})
    assert [e["loc"] for e in caught.value.errors()] == [("tags",)]


def test_text_is_bounded_even_where_the_field_names_no_bound() -> None:
    with pytest.raises(ValidationError) as caught:
        Note.model_validate({"text": "ok", "free": "x" * 1_000_001})
    assert caught.value.errors()[0]["type"] == "string_too_long"


@pytest.mark.parametrize(
    ("field", "value"),
    [("count", True), ("count", 1.5), ("count", "1"), ("urgent", 1), ("urgent", "true"), ("text", 5), ("text", True)],
)
def test_types_are_strict(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        Note.model_validate({"text": "ok", field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_a_whole_number_with_a_zero_fraction_is_the_integer_json_schema_says_it_is() -> None:
    note = Note.model_validate_json('{"text": "ok", "count": 178.0}')
    assert note.count == 178 and isinstance(note.count, int)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Note.model_validate({"text": "ok", "status": "closed"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_uuids_and_timestamps_are_read_from_json_text() -> None:
    note = Note.model_validate({"text": "ok", "at": "2026-03-01T09:00:00+08:00", "ref": "4b8f2d1e-6c3a-4e5f-9a7b-1c2d3e4f5a6b"})
    assert note.at == datetime(2026, 3, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T07:00:00+08:00",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59-12:00",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2100-01-01T09:00:00+08:00",
        "2026-03-01T09:00:00",
    ],
)
def test_timestamps_need_an_offset_and_lie_in_2000_to_2100(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Timestamp).validate_python(value)


@pytest.mark.parametrize(
    "value", ["2000-01-01T00:00:00Z", "2000-01-01T08:00:00+08:00", "2100-01-01T07:59:59+08:00", "2099-12-31T23:59:59Z"]
)
def test_timestamps_at_the_window_edges_pass(value: str) -> None:
    TypeAdapter(Timestamp).validate_python(value)


@pytest.mark.parametrize(
    "value", ["0000-01", "9999-12", "1999-12", "2100-01", "2026-13", "2026-00", "2026-3", "2026-03-01", "二〇二六-03"]
)
def test_months_outside_2000_to_2099_or_misshapen_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Month).validate_python(value)


def test_a_month_in_the_window_is_kept_as_text() -> None:
    assert TypeAdapter(Month).validate_python("2026-03") == "2026-03"


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "1999-12-31", "2100-01-01"])
def test_days_outside_2000_to_2099_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Day).validate_python(value)
    assert TypeAdapter(Day).validate_python("2026-03-01") == date(2026, 3, 1)


def _demo_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/notes")
    async def post_note(body: Note) -> dict[str, str]:
        return {"text": body.text}

    @app.get("/months")
    async def get_month(month: Annotated[Month | None, Query()] = None) -> dict[str, str | None]:
        return {"month": month}

    return app


async def test_a_violation_is_a_422_problem_naming_the_field() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_demo_app()), base_url="http://test") as client:
        r = await client.post("/notes", json={"text": "a\x00b"})
        assert r.status_code == 422
        assert r.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
        assert [(e["in"], e["field"]) for e in r.json()["errors"]] == [("body", "text")]
        r = await client.get("/months", params={"month": "0000-01"})
        assert r.status_code == 422
        assert [(e["in"], e["field"]) for e in r.json()["errors"]] == [("query", "month")]
        assert (await client.get("/months", params={"month": "2026-03"})).json() == {"month": "2026-03"}


def request_body_models() -> list[tuple[str, type[BaseModel]]]:
    """Every model a service or the gateway reads from a request body, nested ones included,
    found through the routes' OpenAPI (so a route added later is covered)."""
    found: dict[str, tuple[str, type[BaseModel]]] = {}
    for service in (*SERVICES, "gateway"):
        package = f"services.{service}" if service != "gateway" else "gateway"
        app = importlib.import_module(f"{package}.app").create_app(_settings(package))
        schemas = importlib.import_module(f"{package}.schemas")
        doc = app.openapi()
        components = doc["components"]["schemas"]
        pending = [
            ref
            for ops in doc["paths"].values()
            for op in ops.values()
            for media in op.get("requestBody", {}).get("content", {}).values()
            for ref in _refs(media.get("schema", {}))
        ]
        while pending:
            name = pending.pop()
            model = getattr(schemas, name, None)
            if f"{service}.{name}" in found or not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            found[f"{service}.{name}"] = (service, model)
            pending.extend(_refs(components[name]))
    return sorted(found.values(), key=lambda item: (item[0], item[1].__name__))


def _settings(package: str) -> Any:
    settings_cls = importlib.import_module(f"{package}.settings").Settings
    return settings_cls(redis_url="redis://127.0.0.1:1") if package == "gateway" else settings_cls()


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else []
        return own + [r for value in schema.values() for r in _refs(value)]
    if isinstance(schema, list):
        return [r for value in schema for r in _refs(value)]
    return []


def test_the_request_bodies_are_found() -> None:
    names = {model.__name__ for _, model in request_body_models()}
    assert {"CareRequestIn", "BatchItem", "TicketCreate", "ShiftIn", "AwardCreate", "BookingCreate", "PasswordGrant"} <= names
    assert len(names) >= 50


@pytest.mark.parametrize(("service", "model"), request_body_models(), ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_every_request_body_follows_the_policy_and_shows_examples_that_pass(service: str, model: type[BaseModel]) -> None:
    assert issubclass(model, RequestBody), f"{service}: {model.__name__} is read from a request but is not a RequestBody"
    examples = model.model_json_schema().get("examples")
    assert examples, f"{service}: {model.__name__} shows no request example"
    for example in examples:
        model.model_validate(example)


def test_the_fast_check_refuses_exactly_the_characters_the_unicode_categories_refuse() -> None:
    """`printable_text` looks for refused characters with one regex before walking the text: over
    every code point, the regex and the Unicode categories agree."""
    import unicodedata

    from services.kit.inputs import _REFUSED

    for code_point in range(0x110000):
        char = chr(code_point)
        category = unicodedata.category(char)
        refused = (category == "Cc" and char not in "\n\t") or category == "Cs"
        assert refused == (_REFUSED.search(char) is not None), f"U+{code_point:04X}"
