"""The Kafka topics the platform uses, as declared in `deploy/kafka/topics.toml`, created or checked.

A managed Kafka usually refuses to create topics on first use, and its defaults (one partition,
a replication factor of one) would lose acknowledged events with one broker. So the topics are
declared once, with partitions, replication factor and `min.insync.replicas`, and the operator
command `python -m services.kit.operator topics [--check]` creates the missing ones or reports
how the cluster differs. Creating is idempotent: a topic that exists is left as it is.

With the local profile (Tansu, the embedded broker) every topic has one copy and no topic configs:
Tansu keeps one copy and does not take `min.insync.replicas`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.kit.settings import ServiceSettings

DECLARED = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "topics.toml"
TOPIC_ALREADY_EXISTS = 36
MIN_ISR = "min.insync.replicas"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int | None


def declared_topics(settings: ServiceSettings, path: Path = DECLARED) -> list[TopicSpec]:
    """The declared topics, named with the settings' namespace, as this broker profile takes them."""
    declaration = tomllib.loads(path.read_text())
    defaults: dict[str, Any] = declaration["defaults"]
    local = settings.kafka_profile == "local"
    specs = []
    for name, own in declaration["topics"].items():
        values = {**defaults, **own}
        specs.append(
            TopicSpec(
                name=settings.kafka_namespace + name,
                partitions=int(values["partitions"]),
                replication_factor=1 if local else int(values["replication_factor"]),
                min_insync_replicas=None if local else int(values["min_insync_replicas"]),
            )
        )
    return specs


async def create_missing_topics(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    """Create every declared topic the cluster lacks; returns the names created."""
    existing = set(await admin.list_topics())
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    response = await admin.create_topics(
        [
            NewTopic(
                spec.name,
                spec.partitions,
                spec.replication_factor,
                topic_configs={MIN_ISR: str(spec.min_insync_replicas)} if spec.min_insync_replicas else None,
            )
            for spec in missing
        ]
    )
    created = []
    for name, code, *rest in response.topic_errors:
        # Another operator (or the other replica of a Job) creating it at the same time is no failure.
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"creating topic {name} failed: error {code} {rest[0] if rest else ''}".strip())
        if code == 0:
            created.append(name)
    return sorted(created)


async def topic_differences(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    """How the cluster differs from the declaration, one line each; empty when it matches."""
    # Only topics that exist are described: a metadata request naming a missing topic may create it.
    existing = set(await admin.list_topics())
    present = [spec.name for spec in specs if spec.name in existing]
    found = {str(t["topic"]): t for t in await admin.describe_topics(present)} if present else {}
    differences = []
    checked_isr = []
    for spec in specs:
        topic = found.get(spec.name)
        if topic is None or topic.get("error_code") or not topic.get("partitions"):
            differences.append(f"{spec.name}: missing")
            continue
        partitions = topic["partitions"]
        if len(partitions) != spec.partitions:
            differences.append(f"{spec.name}: {len(partitions)} partitions, declared {spec.partitions}")
        copies = min(len(p["replicas"]) for p in partitions)
        if copies != spec.replication_factor:
            differences.append(f"{spec.name}: replication factor {copies}, declared {spec.replication_factor}")
        if spec.min_insync_replicas is not None:
            checked_isr.append(spec)
    if checked_isr:
        differences += await _min_isr_differences(admin, checked_isr)
    return differences


async def _min_isr_differences(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> list[str]:
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, [MIN_ISR]) for spec in specs])
    actual: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            for entry in entries:
                if entry[0] == MIN_ISR:
                    actual[name] = str(entry[1])
    return [
        f"{spec.name}: {MIN_ISR} {actual.get(spec.name, 'unknown')}, declared {spec.min_insync_replicas}"
        for spec in specs
        if actual.get(spec.name) != str(spec.min_insync_replicas)
    ]
