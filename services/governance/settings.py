"""Governance settings (prefix `GOVERNANCE_`)."""

from __future__ import annotations

from services.kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("GOVERNANCE_")

    service_name: str = "governance"
    # Awards (or deductions) whose size exceeds this need a second community worker's approval.
    award_approval_threshold: int = 50
    # Points from awards expire after this many days; None keeps them without expiry.
    award_lot_validity_days: int | None = 365
    # A property-fulfilled redemption is released when property reports nothing within this time.
    redemption_timeout_s: int = 3600
    # An item redemption waits this long for a worker to hand it over before it is released.
    item_pickup_timeout_s: int = 7 * 24 * 3600
    # How often the scheduled jobs look for due lots and overdue redemptions.
    expiry_job_every_s: float = 3600.0
    redemption_timeout_job_every_s: float = 30.0
    # How often the closing job looks for decisions past their closing time.
    decision_close_job_every_s: float = 15.0
    # How often the lapsing job looks for pledge offers past their deadline.
    pledge_lapse_job_every_s: float = 30.0
    # The Redis leaderboard is a cache of the database; it is rebuilt when missing or this old.
    leaderboard_cache_s: int = 30
    # Local time for days, weeks and months (caps, QR-code days, leaderboard months).
    community_timezone: str = "Asia/Shanghai"
