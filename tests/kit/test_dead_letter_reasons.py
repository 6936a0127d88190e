"""What a failure's text leaves beside an event (a dead letter's `dlq_error`, an outbox row's
reason) is bounded and shows no phone number, ID number or plate, nor the input pydantic echoes."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from pydantic import BaseModel, ValidationError

from services.kit.inbox import dlq_topic
from services.kit.kafka import make_consumer
from services.kit.telemetry import REASON_LIMIT, safe_reason
from tests.kit import probe
from tests.kit.test_backbone import probe_service, wait_consumer_ready, wait_until
from tests.support.harness import RunningService
from tests.support.stack import TestStack

PHONE, ID_NUMBER, PLATE = "13812345678", "330102199001011234", "浙A12345"


__all__ = ["probe_service"]  # the fixture, shared with test_backbone


def test_a_reason_is_masked_flattened_and_bounded() -> None:
    text = safe_reason(f"ValueError: resident {PHONE} id {ID_NUMBER} car {PLATE}\nnext line" + "x" * 2000)
    assert PHONE not in text and ID_NUMBER not in text and PLATE not in text
    assert "\n" not in text and len(text) == REASON_LIMIT and text.endswith("…")
    assert safe_reason("short") == "short"


def test_the_input_pydantic_echoes_is_dropped() -> None:
    class Resident(BaseModel):
        age: int

    with pytest.raises(ValidationError) as caught:
        Resident.model_validate({"age": "王秀英 住 1幢101"})
    reason = safe_reason(str(caught.value))
    assert "王秀英" not in reason and "input_value=[redacted]" in reason and "age" in reason


async def dead_letter_errors(svc: RunningService, key: bytes) -> list[str]:
    """The `dlq_error` headers of the dead letters of `key`, read from the start of the DLQ topic."""
    topic = dlq_topic(svc.settings.kafka_namespace + probe.tally_consumer.group)
    consumer = make_consumer(svc.settings, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[str] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
                for record in records:
                    if record.key == key:
                        found += [v.decode() for k, v in record.headers or () if k == "dlq_error"]
        return found
    finally:
        await consumer.stop()


async def test_a_dead_letter_carries_the_error_masked(stack: TestStack, probe_service: RunningService) -> None:
    svc = probe_service
    await wait_consumer_ready(svc)
    key = f"poison-{PHONE}"
    probe.POISON["enabled"] = True
    r = await svc.client.post("/notes", json={"key": key, "seq": 1, "poison": True}, headers=stack.auth("w", "resident"))
    assert r.status_code == 201
    errors: list[str] = []

    async def dead_lettered() -> bool:
        nonlocal errors
        errors = await dead_letter_errors(svc, key.encode())
        return bool(errors)

    await wait_until(dead_lettered, timeout=60, interval=0.5)
    assert errors == ["ValueError: poison note poison-[redacted]"]
