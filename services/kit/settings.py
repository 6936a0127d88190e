"""One settings class per service, read from the environment.

Each service's settings use its own prefix (`TIMEBANK_DATABASE_URL`), and fall back to the
platform-wide variables: `DATABASE_URL` names a PostgreSQL server on which each service uses the
database named after it; `REDIS_URL` and `KAFKA_BOOTSTRAP_SERVERS` are shared as they are.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def with_database(server_url: str, database: str) -> str:
    """Replace the database part of a PostgreSQL URL."""
    head, _, tail = server_url.partition("://")
    rest, query = ([*tail.split("?", 1), ""])[:2] if "?" in tail else (tail, "")
    hostpart = rest.split("/", 1)[0]
    return f"{head}://{hostpart}/{database}" + (f"?{query}" if query else "")


KAFKA_CONNECTION_SETTINGS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
)


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclass with `model_config = service_config("TIMEBANK_")`."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    # "local" is `make run` and the tests (embedded servers, demo secrets, keys made on the spot);
    # "cluster" is any real deployment, which refuses the local defaults. PLATFORM_MODE sets it for all.
    mode: Literal["local", "cluster"] = "local"
    database_url: str = ""
    redis_url: str | None = None
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # "local" tunes aiokafka for the in-memory Tansu broker (short session timeouts, no idempotent
    # producer, which Tansu rejects); "kafka" keeps settings a real cluster accepts. Unset, it is
    # "local" in local mode and "kafka" in any other.
    kafka_profile: Literal["local", "kafka"] = "local"
    # Prepended to every topic and consumer group name: separates environments (and test runs)
    # sharing one broker. Outbox rows store the plain topic; the relay adds the namespace.
    kafka_namespace: str = ""
    # A managed Kafka: SASL (PLAIN or SCRAM) and TLS, for every producer, consumer and admin client
    # the kit makes (services/kit/kafka.py). Platform-wide as KAFKA_SECURITY_PROTOCOL and so on.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The CA that signed the brokers' certificates (else the system's), and a client certificate for mTLS.
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    jwks_url: str | None = None
    token_issuer: str = "community-gateway"
    token_audience: str = "community-platform"
    outbox_batch_size: int = 500
    outbox_poll_interval_s: float = 1.0
    outbox_retention_days: int = 7
    # How often the relay asks the broker whether it still holds what it acknowledged (it also
    # asks on every reconnect).
    outbox_loss_check_s: float = 5.0
    # The largest event (key, data and headers) the broker accepts: Kafka's message.max.bytes is
    # about 1 MB by default. A larger event is set aside rather than retried forever.
    outbox_max_event_bytes: int = 1_000_000
    consumer_max_attempts: int = 5
    consumer_backoff_s: float = 0.2
    # Connections the pool may hold; each is opened when a burst first needs it and then kept (no
    # overflow connections, which the pool would close on return and reopen, TLS attempt and SCRAM
    # included, on the next burst).
    db_pool_size: int = 30
    log_level: str = "INFO"
    log_json: bool = True
    # A span per SQL statement beside each request's span (services/kit/telemetry.py): for a
    # diagnosis, not by default, as it costs about as much CPU as the statement's own Python work.
    trace_statements: bool = False
    # The everyday writes answered ahead of FastAPI (services/kit/direct_routes.py); off, FastAPI
    # answers them too: the same answers, for a comparison or a diagnosis.
    direct_routes: bool = True

    @model_validator(mode="before")
    @classmethod
    def _platform_fallbacks(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        name = values.get("service_name") or cls.model_fields["service_name"].default
        if not values.get("database_url") and os.environ.get("DATABASE_URL"):
            values["database_url"] = with_database(os.environ["DATABASE_URL"], name)
        for field, env in (
            ("redis_url", "REDIS_URL"),
            ("kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("kafka_profile", "KAFKA_PROFILE"),
            ("jwks_url", "JWKS_URL"),
            ("kafka_namespace", "KAFKA_NAMESPACE"),
            ("mode", "PLATFORM_MODE"),
            *((name, name.upper()) for name in KAFKA_CONNECTION_SETTINGS),
        ):
            if not values.get(field) and os.environ.get(env):
                values[field] = os.environ[env]
        return values

    @model_validator(mode="after")
    def _real_kafka_outside_local_mode(self) -> ServiceSettings:
        # The local profile's short timeouts and no idempotent producer suit only the embedded broker:
        # outside local mode the real-Kafka profile is the default (KAFKA_PROFILE=local still chooses it).
        if self.mode != "local" and "kafka_profile" not in self.model_fields_set:
            self.kafka_profile = "kafka"
        return self

    @model_validator(mode="after")
    def _no_local_secrets_outside_local_mode(self) -> ServiceSettings:
        # A secret whose value is the one written in the code is public: the local stack may use it,
        # a real deployment may not. Every secret setting is a SecretStr, so this finds them all.
        if self.mode == "local":
            return self
        prefix = str(self.model_config.get("env_prefix") or "")
        public = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            # Any secret setting, optional ones too (a SASL password, a key-encryption key): the code's
            # default, or a value in the shape of the local stack's secrets.
            if isinstance(value, SecretStr) and (
                (isinstance(field.default, SecretStr) and value.get_secret_value() == field.default.get_secret_value())
                or is_local_secret(value.get_secret_value())
            ):
                public.append(f"{prefix}{name}".upper())
        if public:
            raise LocalSecretOutsideLocalMode(
                f"PLATFORM_MODE=cluster refuses the local default of {', '.join(public)}: set each to a long random "
                "value (from a Secret), or run with PLATFORM_MODE=local on a laptop"
            )
        return self


def is_local_secret(value: str) -> bool:
    """The shape of every secret the code and the local demo write down: public, so never for a cluster."""
    return "not-for-production" in value or value.startswith(LOCAL_SECRET_PREFIXES)


# The local stack's demo secrets (client secrets `demo-<client>-secret`, staff passwords `demo-…`).
LOCAL_SECRET_PREFIXES = ("demo-",)


class LocalSecretOutsideLocalMode(ValueError):
    """A secret still has the value written in the code, outside local mode."""


def service_config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore")
