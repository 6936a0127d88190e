"""Property's settings (environment prefix `PROPERTY_`)."""

from __future__ import annotations

from typing import Literal

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    service_name: str = "property"
    model_config = service_config("PROPERTY_")

    # Where photos go in local mode (an object store's bucket in production).
    photo_store_dir: str = ".local/property-photos"
    photo_max_bytes: int = 2 * 1024 * 1024
    daily_ticket_limit: int = 10
    hurry_interval_minutes: int = 30
    fen_per_point: int = 10
    sla_check_interval_s: float = 30.0
    payment_provider: Literal["fake"] = "fake"
