"""Security's settings (environment prefix `SECURITY_`)."""

from __future__ import annotations

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("SECURITY_")

    service_name: str = "security"
    # Local time for "today's expected visitors".
    community_timezone: str = "Asia/Shanghai"
    # Access events older than this are deleted by the purge job (personal movement data is kept
    # no longer than the community needs it).
    access_retention_days: int = 90
    purge_every_s: float = 3600.0
    # How often the device-offline and inactivity sweeps run; a sweep's verdict is one conditional
    # UPDATE or INSERT, so every replica may run it.
    sweep_every_s: float = 30.0
    # A device silent for its heartbeat interval times this factor is offline (one missed beat
    # is a hiccup, not an outage).
    offline_after_missed_beats: int = 3
    # The longest pass a resident may issue.
    max_pass_hours: int = 7 * 24
    # Largest access-event batch a device may send at once.
    max_batch: int = 500
