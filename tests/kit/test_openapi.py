"""What the kit adds to every service's OpenAPI document, and that it documents what is answered."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from services.kit.app import ServiceParts, create_service_app
from services.kit.auth import CurrentPrincipal
from services.kit.openapi import FASTAPI_VALIDATION_SCHEMAS, ProblemSchema, ValidationProblemSchema
from services.kit.problems import PROBLEM_MEDIA_TYPE, Conflict, problem_responses
from services.kit.settings import ServiceSettings

router = APIRouter(tags=["shelves"])


class ShelfIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"label": "门口的鞋架", "slots": 6}]})

    label: Annotated[str, Field(min_length=1, max_length=40)]
    slots: Annotated[int, Field(ge=1, le=50)]


class ShelfLabel(BaseModel):
    label: Annotated[str, Field(min_length=1, max_length=40, examples=["二楼鞋架"])]
    colour: Annotated[str | None, Field(examples=["红"])] = None
    note: str | None = None


class ShelfFull(Conflict):
    slug = "probe/shelf-full"
    title_zh = "鞋架已满"
    title_en = "The shelf is full"


@router.post("/shelves", status_code=201, responses=problem_responses(ShelfFull))
async def add_shelf(body: ShelfIn, principal: CurrentPrincipal) -> dict[str, str]:
    """Put up a shelf in the hallway.

    A resident may put up as many as the hallway holds; each gets its own slots.
    """
    return {"label": body.label}


@router.put("/shelves/{shelf_id}/label")
async def label_shelf(shelf_id: str, body: ShelfLabel) -> dict[str, str]:
    """Give a shelf a new label."""
    return {"id": shelf_id, "label": body.label}


@router.get("/shelves/{shelf_id}")
async def read_shelf(shelf_id: Annotated[str, Path(max_length=8)]) -> dict[str, str]:
    """One shelf, by id."""
    return {"id": shelf_id}


@router.get("/shelves")
async def list_shelves() -> list[str]:
    return []


def shelf_app() -> FastAPI:
    settings = ServiceSettings(service_name="shelves", database_url="postgresql://offline@127.0.0.1:1/none", log_json=False)
    tags = [{"name": "shelves", "description": "Shoe shelves in the hallway"}]
    return create_service_app(
        settings, ServiceParts(routers=[router], tags_metadata=tags), title="shelves", description="Shelves"
    )


def operation(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["paths"][path][method]
    return found


def test_summary_and_description_come_from_the_docstring() -> None:
    doc = shelf_app().openapi()
    add = operation(doc, "/shelves", "post")
    assert add["summary"] == "Put up a shelf in the hallway."
    assert add["description"] == "A resident may put up as many as the hallway holds; each gets its own slots."
    one = operation(doc, "/shelves/{shelf_id}", "get")
    assert one["summary"] == one["description"] == "One shelf, by id."
    # No docstring: nothing to describe it with, which the merged document's test reports.
    assert "description" not in operation(doc, "/shelves", "get")


def test_every_tag_an_operation_carries_is_defined_with_a_description() -> None:
    doc = shelf_app().openapi()
    defined = {tag["name"]: tag["description"] for tag in doc["tags"]}
    used = {tag for item in doc["paths"].values() for op in item.values() for tag in op["tags"]}
    assert used == {"shelves", "operations"} and used <= set(defined)
    assert all(defined.values())


def test_problems_are_documented_where_the_operation_can_answer_them() -> None:
    doc = shelf_app().openapi()
    add = operation(doc, "/shelves", "post")["responses"]
    # 400: a body that is not JSON at all.
    assert set(add) == {"201", "400", "401", "403", "409", "422", "429"}
    one = operation(doc, "/shelves/{shelf_id}", "get")["responses"]
    assert set(one) == {"200", "404", "422", "429"}
    assert set(operation(doc, "/shelves", "get")["responses"]) == {"200", "429"}
    # The probes are called on each replica directly, past the gateway's rate limits.
    assert set(operation(doc, "/healthz", "get")["responses"]) == {"200"}
    for responses in (add, one):
        for status, response in responses.items():
            if status.startswith("4"):
                assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], status
    # The route's own problem type comes first; the generic one it may also meet follows.
    assert add["409"]["description"].split("; ") == [
        "urn:community:problem:probe/shelf-full (The shelf is full)",
        "urn:community:problem:conflict (Conflicts with the current state)",
    ]
    assert add["422"]["content"][PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/ValidationProblem"}
    assert not set(FASTAPI_VALIDATION_SCHEMAS) & set(doc["components"]["schemas"])
    assert doc["components"]["schemas"]["FieldError"]["required"] == ["field", "in", "message", "code"]


def test_a_request_models_examples_are_the_request_bodys_examples() -> None:
    doc = shelf_app().openapi()
    media = operation(doc, "/shelves", "post")["requestBody"]["content"]["application/json"]
    assert media["examples"] == {"example-1": {"value": {"label": "门口的鞋架", "slots": 6}}}
    # No examples on the model: its fields' examples make one.
    media = operation(doc, "/shelves/{shelf_id}/label", "put")["requestBody"]["content"]["application/json"]
    assert media["examples"] == {"example-1": {"value": {"label": "二楼鞋架", "colour": "红"}}}


def test_the_document_is_completed_once_and_stays_the_same() -> None:
    app = shelf_app()
    first = app.openapi()
    assert app.openapi() is first
    assert operation(first, "/shelves", "post")["responses"]["409"]["description"].count("shelf-full") == 1


async def test_the_answered_problems_match_the_documented_schemas() -> None:
    app = shelf_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        invalid = await client.get("/shelves/far-too-long-an-id")
        anonymous = await client.post("/shelves", json={"label": "鞋架", "slots": 2})
    assert invalid.status_code == 422 and invalid.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = ValidationProblemSchema.model_validate(invalid.json())
    assert [(e.field, e.in_) for e in problem.errors] == [("shelf_id", "path")]
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert ProblemSchema.model_validate(anonymous.json()).type == "urn:community:problem:unauthorized"
