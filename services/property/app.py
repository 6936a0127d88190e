"""The property service's app: `uvicorn --factory services.property.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.kit.app import ServiceParts, create_service_app
from services.kit.payments import provider_for
from services.kit.storage import close_file_store, install_file_store
from services.property.api import ticket_routes
from services.property.consumers import consumers
from services.property.dashboard_api import dashboard_routes
from services.property.jobs import jobs
from services.property.registry_api import registry_routes, settings_routes
from services.property.settings import Settings

DESCRIPTION = """The "platform + steward" (平台+管家) property service and the community registry.

Residents file tickets (repairs, cleaning, complaints, consultations free; value-added services
paid), routed to their building's steward; stewards work them through one transition table; SLA
breaches escalate. Buildings, households, residents and staff are registered here and published.
"""


async def install_payment_provider(app: FastAPI) -> None:
    """The provider the settings name (in local mode the fake); tests may replace it on app.state."""
    settings: Settings = app.state.settings
    app.state.payment_provider = provider_for(settings.payment_provider)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = ServiceParts(
        routers=[ticket_routes, dashboard_routes, registry_routes, settings_routes],
        consumers=consumers,
        jobs=jobs(settings.sla_check_interval_s),
        on_startup=[install_payment_provider, install_file_store],
        on_shutdown=[close_file_store],
        tags_metadata=[
            {"name": "registry", "description": "Buildings, households, residents, staff and duty rosters"},
            {"name": "tickets", "description": "Tickets, photos, the steward queue and payments"},
            {"name": "settings", "description": "The value-added catalogue and SLA policies"},
            {"name": "reports", "description": "The transition table, SLA statistics and CSV exports"},
        ],
    )
    return create_service_app(settings, parts, title="property", description=DESCRIPTION)
