"""The merged OpenAPI document: every service under /api/<service>, unique readable ids, a
document to read (every operation described, every tag defined, every JSON body with an example),
and good enough that openapi-python-client generates a client that walks a resident scenario."""

from __future__ import annotations

import asyncio
import functools
import importlib
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from deploy import openapi_dump
from gateway import openapi
from tests.gateway.conftest import COMMUNITY, random_phone, register_resident, sender
from tests.support.harness import RunningService


@functools.cache
def merged() -> dict[str, Any]:
    """The document the gateway serves once every service has answered, as `make check` lints it."""
    return openapi_dump.merged_document()


def merged_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in merged()["paths"].items()
        for method, op in item.items()
        if method in openapi.HTTP_METHODS
    ]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_merging_the_real_services_keeps_every_operation_unique_and_every_reference_whole() -> None:
    docs = openapi_dump.service_documents()
    # Every service exists now: an empty set would mean the merge test checks nothing.
    assert set(docs) >= {"timebank", "parking", "property", "governance", "citysync", "notify"}
    own = {
        "openapi": "3.1.0",
        "info": {"title": "gw", "version": "1"},
        "paths": {},
        "components": {"schemas": {"Problem": docs[next(iter(docs))]["components"]["schemas"]["Problem"]}},
    }
    merged = openapi.merge(own, docs)
    operations = [
        (path, method, op)
        for path, item in merged["paths"].items()
        for method, op in item.items()
        if method in openapi.HTTP_METHODS
    ]
    assert sum(
        len([m for m in item if m in openapi.HTTP_METHODS])
        for d in docs.values()
        for p, item in d["paths"].items()
        if p not in openapi.OPERATIONS_PATHS
    ) == len(operations)
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    for path, _, op in operations:
        service = op["operationId"].partition("-")[0]
        assert path.startswith(f"/api/{service}/") or (service, path.split("/")[1:4]) == ("citysync", ["city", "v1", "feeds"])
    schemas = merged["components"]["schemas"]
    missing = {r for r in refs(merged) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not missing
    assert merged["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_the_city_feed_is_documented_at_its_one_public_path() -> None:
    paths = set(merged()["paths"])
    assert {"/city/v1/feeds", "/city/v1/feeds/{scene}"} <= paths
    assert not {p for p in paths if p.startswith("/api/citysync/feeds")}
    # The route table for metrics and logs names the same public path.
    table = openapi.paths_by_service(merged(), ["citysync"])
    assert "/feeds/{scene}" in table["citysync"] and "/consumers" in table["citysync"]


def test_every_operation_has_a_summary_and_a_description() -> None:
    """A route function's docstring gives both; a route without one is listed here."""
    lacking = [
        f"{method.upper()} {path}"
        for path, method, op in merged_operations()
        if not (op.get("summary") and op.get("description"))
    ]
    assert len(merged_operations()) > 100
    assert not lacking, f"{len(lacking)} operations lack a docstring: {lacking}"


def test_every_tag_is_defined_with_a_description() -> None:
    defined = {tag["name"]: tag.get("description") for tag in merged()["tags"]}
    used = {tag for _, _, op in merged_operations() for tag in op["tags"]}
    assert used == set(defined), "every tag an operation carries is defined, and no other"
    assert all(defined.values()), [name for name, description in defined.items() if not description]


def test_every_json_request_body_carries_an_example() -> None:
    """From the request model's `json_schema_extra` examples, so clients and tools can show one."""
    bodies = [
        (f"{method.upper()} {path}", op["requestBody"]["content"]["application/json"])
        for path, method, op in merged_operations()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    lacking = [name for name, media in bodies if not media.get("examples")]
    assert len(bodies) > 50
    assert not lacking, f"{len(lacking)} request bodies lack an example: {lacking}"


async def test_generated_client_walks_a_resident_scenario(gateway: RunningService, tmp_path: Path) -> None:
    r = await gateway.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert "/api/timebank/notes/{note_id}" in doc["paths"] and "/auth/token" in doc["paths"]
    spec = tmp_path / "openapi.json"
    spec.write_text(r.text)
    out = tmp_path / "community_client"
    gen = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "openapi-python-client"),
        "generate",
        "--path",
        str(spec),
        "--output-path",
        str(out),
        "--meta",
        "none",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(gen.communicate(), 120)
    assert gen.returncode == 0, output.decode()
    sys.path.insert(0, str(tmp_path))
    try:
        client_pkg = importlib.import_module("community_client")
        auth_api = importlib.import_module("community_client.api.auth.auth_send_code")
        token_api = importlib.import_module("community_client.api.auth.auth_issue_token")
        create = importlib.import_module("community_client.api.timebank_notes.timebank_notes_create_note")
        read = importlib.import_module("community_client.api.timebank_notes.timebank_notes_read_note")
        models = importlib.import_module("community_client.models")

        transport = httpx.ASGITransport(app=gateway.app)
        anonymous = client_pkg.Client(base_url="http://test")
        anonymous.set_async_httpx_client(httpx.AsyncClient(transport=transport, base_url="http://test"))

        phone = random_phone()
        resident_id = await register_resident(gateway, phone)
        sent = await auth_api.asyncio_detailed(client=anonymous, body=models.CodeRequest(community=COMMUNITY, phone=phone))
        assert sent.status_code == 202
        code = sender(gateway).sent[phone][-1]
        tokens = await token_api.asyncio(
            client=anonymous, body=models.OtpGrant(grant_type="otp", community=COMMUNITY, phone=phone, code=code)
        )
        assert isinstance(tokens, models.TokenResponse) and tokens.subject == resident_id

        me = client_pkg.AuthenticatedClient(base_url="http://test", token=tokens.access_token)
        me.set_async_httpx_client(
            httpx.AsyncClient(
                transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {tokens.access_token}"}
            )
        )
        note = await create.asyncio(client=me, body=models.TimebankNoteIn(text="walk the dog"))
        assert isinstance(note, models.TimebankNotePublic) and note.owner == resident_id
        again = await read.asyncio(client=me, note_id=note.id)
        assert isinstance(again, models.TimebankNotePublic) and again.text == "walk the dog"
        missing = await read.asyncio_detailed(client=me, note_id=str(uuid.uuid4()))
        assert missing.status_code == 404
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "community_client" or m.startswith("community_client.")]:
            del sys.modules[name]
