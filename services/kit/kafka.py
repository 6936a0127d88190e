"""aiokafka clients configured per environment.

Tansu (the local, memory-only broker) needs short group timeouts to rebalance quickly and rejects
the InitProducerId version aiokafka sends for idempotent producers; a real Kafka cluster refuses
session timeouts under 6 s and should run idempotent producers. So these are per-profile settings.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.kit.settings import ServiceSettings


def producer_options(settings: ServiceSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "linger_ms": 2,
        "request_timeout_ms": 10_000,
        "max_batch_size": 256 * 1024,
    }
    if settings.kafka_profile == "kafka":
        opts["enable_idempotence"] = True
    return opts


def consumer_options(settings: ServiceSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_uncommitted",
    }
    if settings.kafka_profile == "local":
        opts.update(
            session_timeout_ms=1500,
            heartbeat_interval_ms=400,
            fetch_max_wait_ms=10,
            rebalance_timeout_ms=3000,
            metadata_max_age_ms=5000,
        )
    else:
        opts.update(session_timeout_ms=10_000, heartbeat_interval_ms=3000, fetch_max_wait_ms=50)
    return opts


def make_producer(settings: ServiceSettings, **overrides: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**{**producer_options(settings), **overrides})


def make_consumer(settings: ServiceSettings, *topics: str, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, group_id=group_id, **{**consumer_options(settings), **overrides})
