"""The event contracts, generated from the code: JSON Schemas and one AsyncAPI 3 document.

Each service's `events.py` declares its topic and its event data models; an event belongs to the
service its type starts with. Consumers are read from each service's `consumers.py`.
`make contracts` writes docs/events/<type>.schema.json and docs/asyncapi.yaml; a test checks the
committed files match the code, so the documents stay true.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from services.kit.envelope import EventData
from services.kit.inbox import ConsumerSpec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SERVICES = ["timebank", "parking", "property", "governance", "citysync", "notify", "security"]


def _module(name: str) -> Any:
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def published_events() -> dict[str, dict[str, Any]]:
    """event type -> {service, topic, model}"""
    out: dict[str, dict[str, Any]] = {}
    for service in SERVICES:
        if importlib.util.find_spec(f"services.{service}") is None:
            continue
        events = _module(f"services.{service}.events")
        if events is None:
            continue
        for value in vars(events).values():
            if isinstance(value, type) and issubclass(value, EventData) and value is not EventData:
                etype = getattr(value, "event_type", None)
                if etype and etype.split(".", 1)[0] == service and etype not in out:
                    out[etype] = {"service": service, "topic": events.TOPIC, "model": value}
    return dict(sorted(out.items()))


def consumer_specs() -> dict[str, list[ConsumerSpec]]:
    out: dict[str, list[ConsumerSpec]] = {}
    for service in SERVICES:
        if importlib.util.find_spec(f"services.{service}") is None:
            continue
        consumers = _module(f"services.{service}.consumers")
        if consumers is None:
            continue
        specs = [v for v in vars(consumers).values() if isinstance(v, ConsumerSpec)]
        specs += [s for v in vars(consumers).values() if isinstance(v, list | tuple) for s in v if isinstance(s, ConsumerSpec)]
        unique = {id(s): s for s in specs}
        if unique:
            out[service] = list(unique.values())
    return out


def schemas() -> dict[str, dict[str, Any]]:
    result = {}
    for etype, info in published_events().items():
        schema = info["model"].model_json_schema()
        schema["$id"] = f"urn:community:event:{etype}"
        schema["title"] = etype
        schema["description"] = (info["model"].__doc__ or "").strip() or etype
        result[etype] = schema
    return result


def _key(name: str) -> str:
    return name.replace(".", "_")


def asyncapi() -> dict[str, Any]:
    events = published_events()
    all_schemas = schemas()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    ce_headers = {
        "type": "object",
        "required": ["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time"],
        "properties": {
            "ce_id": {"type": "string", "description": "Unique per event; consumers dedupe on (ce_source, ce_id)"},
            "ce_source": {"type": "string", "examples": ["/services/timebank"]},
            "ce_type": {"type": "string"},
            "ce_specversion": {"const": "1.0"},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_subject": {"type": "string"},
            "content-type": {"const": "application/json"},
            "traceparent": {"type": "string", "description": "W3C trace context of the producing request"},
        },
    }
    for etype, info in events.items():
        msg_key = _key(etype)
        messages[msg_key] = {
            "name": etype,
            "title": etype,
            "contentType": "application/json",
            "summary": (info["model"].__doc__ or "").strip().splitlines()[0] if info["model"].__doc__ else etype,
            "headers": ce_headers,
            "payload": all_schemas[etype],
            "bindings": {"kafka": {"key": {"type": "string", "description": "the aggregate id"}}},
        }
        chan_key = _key(info["topic"])
        channel = channels.setdefault(
            chan_key, {"address": info["topic"], "messages": {}, "description": f"Events published by services/{info['service']}"}
        )
        channel["messages"][msg_key] = {"$ref": f"#/components/messages/{msg_key}"}
    for etype, info in events.items():
        chan_key = _key(info["topic"])
        op_key = f"{info['service']}_publishes_{_key(etype)}"
        operations[op_key] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{chan_key}"},
            "messages": [{"$ref": f"#/channels/{chan_key}/messages/{_key(etype)}"}],
        }
    for service, specs in consumer_specs().items():
        for spec in specs:
            for etype in sorted(spec.handlers):
                if etype not in events:
                    continue
                chan_key = _key(events[etype]["topic"])
                op_key = f"{service}_{_key(spec.group)}_receives_{_key(etype)}"
                operations[op_key] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{chan_key}"},
                    "messages": [{"$ref": f"#/channels/{chan_key}/messages/{_key(etype)}"}],
                    "bindings": {"kafka": {"groupId": {"type": "string", "enum": [spec.group]}}},
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Future-community platform events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in Kafka binary mode; data is JSON; the Kafka key is the aggregate id. "
            "Consumers ignore fields they do not know. Generated by `make contracts`.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:19092", "protocol": "kafka", "description": "Tansu in `make run`"}},
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": dict(sorted(messages.items()))},
    }


def rendered() -> dict[Path, str]:
    files = {DOCS / "asyncapi.yaml": yaml.safe_dump(asyncapi(), allow_unicode=True, sort_keys=False, width=120)}
    for etype, schema in schemas().items():
        files[DOCS / "events" / f"{etype}.schema.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return files


def main(argv: list[str]) -> int:
    files = rendered()
    if "--check" in argv:
        stale = [str(p.relative_to(ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print("out of date (run `make contracts`):", *stale, sep="\n  ")
            return 1
        return 0
    (DOCS / "events").mkdir(parents=True, exist_ok=True)
    for old in (DOCS / "events").glob("*.schema.json"):
        if old not in files:
            old.unlink()
    for path, text in files.items():
        path.write_text(text)
    print(f"wrote {len(files)} files under docs/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
