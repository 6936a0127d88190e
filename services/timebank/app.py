"""The time-bank service app: `uvicorn --factory services.timebank.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.kit.app import ServiceParts, create_service_app
from services.timebank.api import community_routes, settings_routes
from services.timebank.care_api import care_routes
from services.timebank.jobs import expiry_job, expiry_warning_job, hours_expiry_job
from services.timebank.members_api import member_routes
from services.timebank.settings import Settings
from services.timebank.transfers_api import DIRECT_CONFIRM, confirm_routes, transfer_routes

TAGS = [
    {"name": "members", "description": "Enrolment, age and relative verification, passbooks (存折)"},
    {"name": "care", "description": "Care requests: post, accept, check in and out"},
    {"name": "transfers", "description": "The ledger: confirm, dispute, spend, give, donate, fund, reverse, batch"},
    {"name": "community", "description": "The pool (公益池), pending confirmations and disputes, monthly summary"},
    {"name": "settings", "description": "Per-community rules"},
]

# The router tries its routes in this order, each request (some µs of CPU a route): the everyday
# ones first, the confirmation (on its own router), the members' (`/members/me` their second route),
# the ledger's; the rare settings last. No two routers' paths overlap
# (tests/timebank/test_route_order.py), so the order changes no answer.
ROUTERS = [confirm_routes, member_routes, transfer_routes, care_routes, community_routes, settings_routes]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    jobs = [
        expiry_job(settings.expiry_job_every_s, settings.expiry_batch_size),
        hours_expiry_job(settings.hours_expiry_job_every_s, settings.hours_expiry_batch_size),
        expiry_warning_job(settings.expiry_warning_job_every_s),
    ]
    parts = ServiceParts(routers=ROUTERS, jobs=jobs, tags_metadata=TAGS, direct_routes=[DIRECT_CONFIRM])
    return create_service_app(
        settings,
        parts,
        title="Time bank (时间银行)",
        description="The elder-care credit ledger: volunteers bank the minutes they spend caring for elders "
        "and draw them later for their own care, or give them to relatives.",
    )
