"""Notify's settings (environment prefix `NOTIFY_`)."""

from __future__ import annotations

from services.kit.settings import ServiceSettings, service_config
from services.kit.sms import SmsSettings


class Settings(ServiceSettings, SmsSettings):
    model_config = service_config("NOTIFY_")

    service_name: str = "notify"
    # Local time for quiet hours and the times a message shows.
    community_timezone: str = "Asia/Shanghai"
    # In-app notifications are kept this long; the trim job deletes older ones.
    retention_days: int = 180
    trim_every_s: float = 3600.0
    # --- SMS (the port's provider and credentials: services/kit/sms.py's SmsSettings) -----------
    sms_max_attempts: int = 5
    sms_backoff_s: float = 30.0
    sms_backoff_cap_s: float = 3600.0
    # While a worker sends, its claim keeps other replicas off the delivery for this long.
    sms_claim_s: float = 60.0
    sms_per_recipient_per_hour: int = 5
    deliver_every_s: float = 2.0
    # --- live stream -----------------------------------------------------------------------------
    heartbeat_s: float = 15.0
    max_streams_per_user: int = 3
