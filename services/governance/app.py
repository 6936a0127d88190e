"""`uvicorn --factory services.governance.app:create_app`"""

from __future__ import annotations

from fastapi import FastAPI

from services.governance import api, decisions_api, pledges_api, points_api, rewards_api
from services.governance.consumers import make_consumers
from services.governance.jobs import make_jobs
from services.governance.settings import Settings
from services.kit.app import ServiceParts, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = ServiceParts(
        routers=[api.router, points_api.router, rewards_api.router, decisions_api.router, pledges_api.router],
        consumers=make_consumers(settings),
        jobs=make_jobs(settings),
        tags_metadata=[
            {"name": "governance", "description": "Resident points: earn by taking part, spend on services"},
            {
                "name": "decisions",
                "description": "Collective choice: owners' decisions by the Civil Code's thresholds, household polls",
            },
            {"name": "pledges", "description": "Service pledges: a service opens when enough households sign up in time"},
        ],
    )
    return create_service_app(
        settings,
        parts,
        title="governance",
        description="积分换服务 / 服务换积分: earning rules, awards, a funded budget, lots with expiry, "
        "a reward catalogue with a redemption saga, statements and a monthly leaderboard.",
    )
