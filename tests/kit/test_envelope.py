"""CloudEvents in Kafka's binary mode: what goes out comes back the same, and a bad envelope is refused."""

from __future__ import annotations

import dataclasses

import pytest

from services.kit.envelope import CloudEvent, InvalidEnvelope


def an_event(**changes: object) -> CloudEvent:
    event = CloudEvent(
        type="governance.points.granted.v1",
        source="/services/governance",
        key="res-1",
        data={"community": "c-1", "points": 3},
        subject="res-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate="vendor=1",
    )
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("event", [an_event(), an_event(subject=None, traceparent=None, tracestate=None)])
def test_an_event_read_back_from_kafka_is_the_event_sent(event: CloudEvent) -> None:
    back = CloudEvent.from_kafka(*event.to_kafka())
    assert back == event
    assert {f.name: getattr(back, f.name) for f in dataclasses.fields(CloudEvent)} == dataclasses.asdict(event)


def test_headers_of_other_types_are_read_as_text() -> None:
    event = an_event()
    key, value, headers = event.to_kafka()
    as_text = [(name, raw.decode()) for name, raw in headers]
    assert CloudEvent.from_kafka(key, value, as_text) == event


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda h: [(n, v) for n, v in h if n != "ce_type"], "missing CloudEvents headers: ce_type"),
        (lambda h: [(n, b"\xff" if n == "ce_source" else v) for n, v in h], "header ce_source is not UTF-8"),
        (lambda h: [(n, b"0.3" if n == "ce_specversion" else v) for n, v in h], "unsupported specversion 0.3"),
        (lambda h: [(n, b"yesterday" if n == "ce_time" else v) for n, v in h], "ce_time is not an RFC 3339 time"),
    ],
)
def test_a_bad_envelope_is_refused_with_its_reason(spoil: object, reason: str) -> None:
    key, value, headers = an_event().to_kafka()
    with pytest.raises(InvalidEnvelope, match=reason):
        CloudEvent.from_kafka(key, value, spoil(headers))  # type: ignore[operator]


@pytest.mark.parametrize(("value", "reason"), [(b"{not json", "data is not JSON"), (b"[1, 2]", "not a JSON object")])
def test_data_that_is_not_a_json_object_is_refused(value: bytes, reason: str) -> None:
    key, _, headers = an_event().to_kafka()
    with pytest.raises(InvalidEnvelope, match=reason):
        CloudEvent.from_kafka(key, value, headers)
