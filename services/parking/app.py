"""The parking service's FastAPI app (`uvicorn --factory services.parking.app:create_app`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.kit.app import ServiceParts, create_service_app
from services.kit.payments import provider_for
from services.parking.api import report_routes, settings_routes
from services.parking.bookings_api import booking_routes
from services.parking.consumers import consumers
from services.parking.gate_api import gate_routes
from services.parking.jobs import jobs
from services.parking.settings import Settings
from services.parking.spots_api import spot_routes, window_routes

TAGS = [
    {"name": "spots", "description": "Private and public spots (车位) and their verification"},
    {"name": "windows", "description": "Availability windows (共享时段), one-off or weekly"},
    {"name": "bookings", "description": "Search, book, pay, cancel"},
    {"name": "gate", "description": "Gate camera entries and exits by plate; misread corrections"},
    {"name": "reports", "description": "Earnings and occupancy"},
    {"name": "settings", "description": "Per-community parking policy"},
]

ROUTERS = [settings_routes, spot_routes, window_routes, booking_routes, gate_routes, report_routes]


async def attach_payments(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.payments = provider_for(settings.payment_provider)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        ServiceParts(routers=ROUTERS, jobs=jobs(settings), consumers=consumers, on_startup=[attach_payments], tags_metadata=TAGS),
        title="Shared parking (共享停车)",
        description="Residents lend their spots, neighbours and visitors book windows, gates match plates.",
    )
