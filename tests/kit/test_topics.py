"""The topic declaration covers what the code uses; the operator command creates and checks topics
on a real broker (the embedded Tansu); SASL and TLS settings reach every Kafka client."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr

from gateway.consumers import registry_consumer
from services.citysync.consumers import DOMAIN_TOPICS
from services.citysync.consumers import GROUP as CITYSYNC_GROUP
from services.citysync.domain import SCENES
from services.citysync.events import TOPIC as CITYSYNC_TOPIC
from services.citysync.events import city_topic
from services.governance.consumers import DECLARED_CONSUMERS
from services.governance.events import TOPIC as GOVERNANCE_TOPIC
from services.kit.inbox import dlq_topic, retry_topic
from services.kit.kafka import connection_options, consumer_options, producer_options
from services.kit.operator import topics
from services.kit.settings import ServiceSettings
from services.kit.topics import declared_topics
from services.parking.events import TOPIC as PARKING_TOPIC
from services.property.consumers import governance_consumer
from services.property.events import TOPIC as PROPERTY_TOPIC
from services.security.consumers import property_consumer as security_property_consumer
from services.security.events import TOPIC as SECURITY_TOPIC
from services.timebank.events import TOPIC as TIMEBANK_TOPIC
from tests.support.stack import TestStack, new_namespace


def test_the_declaration_lists_every_topic_the_code_uses_and_no_other() -> None:
    groups = [registry_consumer.group, governance_consumer.group, CITYSYNC_GROUP, *(spec.group for spec in DECLARED_CONSUMERS)]
    groups.append(security_property_consumer.group)
    used = {TIMEBANK_TOPIC, PARKING_TOPIC, PROPERTY_TOPIC, GOVERNANCE_TOPIC, CITYSYNC_TOPIC, SECURITY_TOPIC, *DOMAIN_TOPICS}
    used |= {city_topic(scene) for scene in SCENES}
    used |= {topic for group in groups for topic in (retry_topic(group), dlq_topic(group))}
    for spec in [registry_consumer, governance_consumer, *DECLARED_CONSUMERS]:
        used |= set(spec.topics)
    production = declared_topics(ServiceSettings(kafka_profile="kafka"))
    assert {spec.name for spec in production} == used
    for spec in production:
        assert spec.replication_factor >= 3 and spec.min_insync_replicas == 2 and spec.partitions >= 3, spec
    local = declared_topics(ServiceSettings(kafka_profile="local", kafka_namespace="x."))
    assert all(s.name.startswith("x.") and s.replication_factor == 1 and s.min_insync_replicas is None for s in local)


async def test_the_operator_creates_missing_topics_once_and_then_checks_them(stack: TestStack) -> None:
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap, kafka_namespace=new_namespace())
    declared = {spec.name for spec in declared_topics(settings)}
    created, differences = await topics(settings, check=True)
    assert created == [] and {line.split(":")[0] for line in differences} == declared
    created, differences = await topics(settings, check=False)
    assert set(created) == declared and differences == []
    # Idempotent: a second run creates nothing and finds the cluster as declared.
    assert await topics(settings, check=False) == ([], [])
    assert await topics(settings, check=True) == ([], [])


def test_the_topics_command_fails_while_topics_are_missing_and_passes_once_created(stack: TestStack) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap, "KAFKA_NAMESPACE": new_namespace()}
    command = [sys.executable, "-m", "services.kit.operator", "topics"]
    checked = subprocess.run([*command, "--check"], env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "missing" in checked.stdout
    made = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "0 differences" in made.stdout
    checked = subprocess.run([*command, "--check"], env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "0 created, 0 differences" in checked.stdout, checked.stdout + checked.stderr


def test_sasl_and_tls_settings_reach_producers_consumers_and_admins() -> None:
    plain = ServiceSettings()
    assert connection_options(plain) == {"bootstrap_servers": plain.kafka_bootstrap_servers, "security_protocol": "PLAINTEXT"}
    scram = ServiceSettings(
        kafka_profile="kafka",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="platform",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    for options in (connection_options(scram), producer_options(scram), consumer_options(scram)):
        assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_username"] == "platform" and options["sasl_plain_password"] == "s3cret"
        assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        connection_options(ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN"))


def test_the_platform_wide_kafka_variables_set_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.timebank.settings import Settings as TimebankSettings

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "platform")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw")
    settings = TimebankSettings()
    options = connection_options(settings)
    assert (options["security_protocol"], options["sasl_mechanism"], options["sasl_plain_password"]) == (
        "SASL_PLAINTEXT",
        "PLAIN",
        "pw",
    )
