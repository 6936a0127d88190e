"""Property's settings (environment prefix `PROPERTY_`)."""

from __future__ import annotations

from typing import Literal

from services.kit.settings import service_config
from services.kit.storage import StorageSettings


class Settings(StorageSettings):
    service_name: str = "property"
    model_config = service_config("PROPERTY_")

    # Photos live in the kit's file store (`PROPERTY_STORAGE_BACKEND`: postgres by default, s3 in
    # production); the directory adapter, local mode only, keeps them here.
    storage_dir: str = ".local/property-files"
    photo_max_bytes: int = 2 * 1024 * 1024
    daily_ticket_limit: int = 10
    hurry_interval_minutes: int = 30
    fen_per_point: int = 10
    sla_check_interval_s: float = 30.0
    payment_provider: Literal["fake"] = "fake"
