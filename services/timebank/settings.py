"""Process settings of the time-bank service (per-community rules are rows, see `CommunitySettings`)."""

from __future__ import annotations

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("TIMEBANK_")

    service_name: str = "timebank"
    # How often the expiry job looks for unconfirmed pending service transfers, and how many it
    # voids per step of a run (a run takes every step due).
    expiry_job_every_s: float = 30.0
    expiry_batch_size: int = 200
    # How often members' hours past the validity period are moved to the pool (communities with
    # `hours_expire` on), and how many accounts are read per step of a run (a run takes every step due).
    hours_expiry_job_every_s: float = 3600.0
    hours_expiry_batch_size: int = 1000
    # How often members are warned of hours expiring within 30 days (each (member, day) once).
    expiry_warning_job_every_s: float = 3600.0
