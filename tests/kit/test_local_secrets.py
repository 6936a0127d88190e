"""Outside local mode, a secret still holding the value written in the code refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.citysync.settings import Settings as CitysyncSettings

LONG = "k" * 48


def test_cluster_mode_refuses_the_local_hmac_keys_and_names_them() -> None:
    with pytest.raises(ValidationError) as refused:
        CitysyncSettings(mode="cluster")
    message = str(refused.value)
    assert "CITYSYNC_PLATFORM_HASH_KEY" in message and "CITYSYNC_TOPIC_HASH_KEY" in message
    assert "citysync-local" not in message, "the message names the settings, never their values"
    with pytest.raises(ValidationError, match="CITYSYNC_TOPIC_HASH_KEY"):
        CitysyncSettings(mode="cluster", platform_hash_key=LONG)
    with pytest.raises(ValidationError, match="CITYSYNC_PLATFORM_HASH_KEY"):
        CitysyncSettings(mode="cluster", platform_hash_key="mine-not-for-production", topic_hash_key=LONG)


def test_cluster_mode_starts_with_secrets_of_its_own_and_local_mode_with_the_defaults() -> None:
    assert CitysyncSettings(mode="cluster", platform_hash_key=LONG, topic_hash_key=LONG + "t").mode == "cluster"
    assert CitysyncSettings().mode == "local"


def test_the_service_process_exits_with_the_reason_when_platform_mode_is_cluster() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSYNC_")} | {"PLATFORM_MODE": "cluster"}
    run = subprocess.run(
        [sys.executable, "-c", "from services.citysync.app import create_app; create_app()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "PLATFORM_MODE=cluster refuses the local default of CITYSYNC_PLATFORM_HASH_KEY" in run.stderr


def test_cluster_mode_refuses_demo_shaped_values_in_every_secret_setting_optional_ones_too() -> None:
    cluster = {"mode": "cluster", "platform_hash_key": LONG, "topic_hash_key": LONG + "t"}
    with pytest.raises(ValidationError, match="CITYSYNC_KAFKA_SASL_PASSWORD"):
        CitysyncSettings(**cluster, kafka_sasl_password="demo-broker-secret")
    with pytest.raises(ValidationError, match="CITYSYNC_TOPIC_HASH_KEY"):
        CitysyncSettings(**cluster | {"topic_hash_key": "demo-" + LONG})
    assert CitysyncSettings(**cluster, kafka_sasl_password=LONG).kafka_sasl_password is not None
    # Local mode keeps every demo value.
    assert CitysyncSettings(kafka_sasl_password="demo-broker-secret").mode == "local"


def test_outside_local_mode_the_real_kafka_profile_is_the_default_and_local_mode_keeps_the_embedded_one() -> None:
    cluster = {"mode": "cluster", "platform_hash_key": LONG, "topic_hash_key": LONG + "t"}
    assert CitysyncSettings(**cluster).kafka_profile == "kafka"
    assert CitysyncSettings().kafka_profile == "local"
    # Chosen explicitly (a cluster drill against the embedded broker), the local profile stays.
    assert CitysyncSettings(**cluster, kafka_profile="local").kafka_profile == "local"


def test_platform_mode_from_the_environment_chooses_the_real_kafka_profile() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYSYNC_", "KAFKA_"))}
    env |= {"PLATFORM_MODE": "cluster", "CITYSYNC_PLATFORM_HASH_KEY": LONG, "CITYSYNC_TOPIC_HASH_KEY": LONG + "t"}
    code = "from services.citysync.settings import Settings; print(Settings().kafka_profile)"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "kafka"
    run = subprocess.run(
        [sys.executable, "-c", code], env=env | {"KAFKA_PROFILE": "local"}, capture_output=True, text=True, timeout=60
    )
    assert run.stdout.strip() == "local", run.stderr
