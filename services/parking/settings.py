"""Parking's process settings (PARKING_*). Per-community rules live in the community_settings table."""

from __future__ import annotations

from typing import Literal

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("PARKING_")

    service_name: str = "parking"
    # Weekly windows are expanded into concrete occurrences this many days ahead; a job keeps extending them.
    weekly_horizon_days: int = 28
    expire_holds_every_s: float = 30.0
    extend_windows_every_s: float = 3600.0
    # A booking starting within 15 minutes is reminded at the first run after it is: keep this well under.
    remind_bookings_every_s: float = 60.0
    payment_provider: Literal["fake"] = "fake"
