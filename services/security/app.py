"""The security service's app: `uvicorn --factory services.security.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.kit.app import ServiceParts, create_service_app
from services.security.api import router
from services.security.consumers import consumers
from services.security.jobs import jobs
from services.security.passes_api import pass_routes
from services.security.settings import Settings

DESCRIPTION = """Smart security (智慧安防): devices, visitor passes, access events, alarms.

Doors, gates, cameras and sensors are registered machine clients with a heartbeat; a resident's
visitor pass is an Ed25519-signed token a door verifies offline against the community's published
keys; access events are stored once each for a limited time and published without names, phones or
face data; alarms (device incidents and the opt-in inactivity watch for elders) are raised once per
incident.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = ServiceParts(
        routers=[router, pass_routes],
        consumers=consumers,
        jobs=jobs(settings),
        tags_metadata=[
            {"name": "security", "description": "Devices, access events, alarms and the inactivity watch"},
            {"name": "passes", "description": "Visitor passes, their keys and their revocations"},
        ],
    )
    return create_service_app(settings, parts, title="security", description=DESCRIPTION)
