"""aiokafka clients configured per environment.

Tansu (the local, memory-only broker) needs short group timeouts to rebalance quickly and rejects
the InitProducerId version aiokafka sends for idempotent producers; a real Kafka cluster refuses
session timeouts under 6 s and should run idempotent producers. So these are per-profile settings.
A managed cluster adds SASL and TLS (`connection_options`), which every client made here carries.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from services.kit.settings import ServiceSettings


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    """How to reach and authenticate to the brokers: the same for producers, consumers and admins."""
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile
        )
    if settings.kafka_security_protocol.startswith("SASL_"):
        if not (settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise ValueError("SASL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        opts.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return opts


def producer_options(settings: ServiceSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        **connection_options(settings),
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
        **connection_options(settings),
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


def make_admin(settings: ServiceSettings, **overrides: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**{**connection_options(settings), "request_timeout_ms": 10_000, **overrides})
