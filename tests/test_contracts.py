"""The event contracts hold across services, the committed documents match the code, and the
merged OpenAPI document documents the errors the services answer."""

from __future__ import annotations

import importlib

from deploy import contracts, openapi_dump
from services.kit.envelope import EventData
from services.kit.openapi import FASTAPI_VALIDATION_SCHEMAS, HTTP_METHODS, PROBE_PATHS, WRITE_METHODS
from services.kit.problems import PROBLEM_MEDIA_TYPE


def consumer_models() -> list[tuple[str, str, type[EventData]]]:
    """(consuming service, event type, the consumer's own model of that event's data)."""
    out = []
    for service, specs in contracts.consumer_specs().items():
        events = importlib.import_module(f"services.{service}.events")
        local = {
            v.event_type: v
            for v in vars(events).values()
            if isinstance(v, type) and issubclass(v, EventData) and getattr(v, "event_type", None)
        }
        for spec in specs:
            for etype in spec.handlers:
                if etype in local:
                    out.append((service, etype, local[etype]))
    return out


def test_every_consumed_event_is_published_by_someone() -> None:
    published = contracts.published_events()
    for service, specs in contracts.consumer_specs().items():
        for spec in specs:
            for etype in spec.handlers:
                assert etype in published, f"{service}/{spec.group} handles {etype}, which no service publishes"


def test_consumers_require_only_fields_their_publisher_sends() -> None:
    published = contracts.published_events()
    checked = 0
    for service, etype, model in consumer_models():
        if etype not in published:
            continue
        producer_fields = published[etype]["model"].model_fields
        for name, field in model.model_fields.items():
            if field.is_required():
                assert name in producer_fields, f"{service} requires {etype}.{name}, which the publisher does not send"
        checked += 1
    assert checked > 0 or not consumer_models()


def test_committed_contract_documents_match_the_code() -> None:
    stale = [str(p) for p, text in contracts.rendered().items() if not p.exists() or p.read_text() != text]
    assert not stale, f"run `make contracts`: {stale}"


def test_every_error_an_operation_can_answer_is_documented_as_a_problem() -> None:
    """401/403 with a bearer token, 404 with a path id, 409 on writes, 422 on input, 429 through
    the gateway; all of them application/problem+json, as the kit answers them."""
    doc = openapi_dump.merged_document()
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            parameters = op.get("parameters", [])
            expected = {"429"} if path not in PROBE_PATHS else set()
            if op.get("security"):
                expected |= {"401", "403"}
            if any(p["in"] == "path" for p in parameters):
                expected.add("404")
            if method in WRITE_METHODS:
                expected.add("409")
            if parameters or "requestBody" in op:
                expected.add("422")
            assert expected <= set(responses), f"{where} leaves out {sorted(expected - set(responses))}"
            for status, response in responses.items():
                if status.startswith("4"):
                    assert list(response.get("content", {})) == [PROBLEM_MEDIA_TYPE], f"{where} {status}"
            if "422" in responses:
                schema = responses["422"]["content"][PROBLEM_MEDIA_TYPE]["schema"]
                assert schema == {"$ref": "#/components/schemas/ValidationProblem"}, where
            checked += 1
    assert checked > 100
    assert not set(FASTAPI_VALIDATION_SCHEMAS) & set(doc["components"]["schemas"])


def test_every_published_event_type_is_decided_by_notify() -> None:
    """Each published type either tells someone (a row of notify's table) or is left out with a reason."""
    from services.notify.catalogue import KINDS_BY_TYPE, LEFT_OUT

    published = set(contracts.published_events())
    undecided = published - set(KINDS_BY_TYPE) - set(LEFT_OUT)
    assert not undecided, f"add these to services/notify/catalogue.py (a row or LEFT_OUT): {sorted(undecided)}"
    both = set(KINDS_BY_TYPE) & set(LEFT_OUT)
    assert not both, f"notified and left out at once: {sorted(both)}"
    stale = (set(KINDS_BY_TYPE) | set(LEFT_OUT)) - published
    assert not stale, f"notify decides types no service publishes: {sorted(stale)}"
    assert all(reason.strip() for reason in LEFT_OUT.values())


def test_notify_templates_name_only_fields_their_event_carries() -> None:
    from services.notify.catalogue import KINDS

    for kind in KINDS:
        fields = set(kind.event.model_fields)
        offered = fields | {f.removesuffix("_id") + "_ref" for f in fields if f.endswith("_id")}
        offered |= {f.removesuffix("_fen") + "_yuan" for f in fields if f.endswith("_fen")}
        offered |= {"hours"} if "minutes" in fields else set()
        for template in (kind.title, kind.body):
            missing = template.fields() - offered
            assert not missing, f"{kind.name}'s template names {missing}, which {kind.event_type} does not carry"
