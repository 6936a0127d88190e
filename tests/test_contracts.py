"""The event contracts hold across services, and the committed documents match the code."""

from __future__ import annotations

import importlib

from deploy import contracts
from services.kit.envelope import EventData


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
