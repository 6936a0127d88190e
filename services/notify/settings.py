"""Notify's settings (environment prefix `NOTIFY_`)."""

from __future__ import annotations

from typing import Literal

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("NOTIFY_")

    service_name: str = "notify"
    # Local time for quiet hours and the times a message shows.
    community_timezone: str = "Asia/Shanghai"
    # In-app notifications are kept this long; the trim job deletes older ones.
    retention_days: int = 180
    trim_every_s: float = 3600.0
    # --- SMS -------------------------------------------------------------------------------------
    # "local" appends each message to `sms_outbox_path` (`make run` prints it); "tencent" sends
    # through Tencent Cloud SMS with the credentials below.
    sms_provider: Literal["local", "tencent"] = "local"
    sms_outbox_path: str = ".local/notify-sms.log"
    sms_max_attempts: int = 5
    sms_backoff_s: float = 30.0
    sms_backoff_cap_s: float = 3600.0
    # While a worker sends, its claim keeps other replicas off the delivery for this long.
    sms_claim_s: float = 60.0
    sms_per_recipient_per_hour: int = 5
    sms_timeout_s: float = 5.0
    deliver_every_s: float = 2.0
    tencent_secret_id: str = ""
    tencent_secret_key: str = ""
    tencent_region: str = "ap-guangzhou"
    tencent_sms_sdk_app_id: str = ""
    tencent_sms_sign_name: str = ""
    # Template ids registered with the provider, one per language: the provider sends only
    # registered templates, with the notification's title and body as its two parameters.
    tencent_sms_template_zh: str = ""
    tencent_sms_template_en: str = ""
    # Overrides the provider's endpoint (a test server); empty: the SDK's default.
    tencent_endpoint: str = ""
    tencent_scheme: Literal["https", "http"] = "https"
    # --- live stream -----------------------------------------------------------------------------
    heartbeat_s: float = 15.0
    max_streams_per_user: int = 3
