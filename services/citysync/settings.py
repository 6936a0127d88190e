"""citysync's process settings (CITYSYNC_*)."""

from __future__ import annotations

from pydantic import SecretStr

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("CITYSYNC_")

    service_name: str = "citysync"
    # The platform key: identifiers (phones, plates, resident ids) are stored only as HMAC(platform key,
    # value). Each pull derives the consumer's own hash from that, so raw identifiers are never stored.
    # Set a long random value in production; the default is for the local stack and the tests only.
    platform_hash_key: SecretStr = SecretStr("citysync-local-platform-key-not-for-production")
    # The `city.<scene>.v1` Kafka topics count as one more consumer with its own key.
    topic_hash_key: SecretStr = SecretStr("citysync-local-topic-key-not-for-production")
    # A day's statistics are published once the day (Asia/Shanghai) has been over this long.
    stats_grace_minutes: int = 60
    stats_every_s: float = 60.0
    # New feed records are copied to the city topics' outbox in batches this often.
    topic_every_s: float = 0.5
