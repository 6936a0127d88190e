"""The notify service's app: `uvicorn --factory services.notify.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.kit.app import ServiceParts, create_service_app
from services.notify.api import router
from services.notify.consumers import make_consumers
from services.notify.jobs import jobs
from services.notify.settings import Settings
from services.notify.stream import start_wakes, stop_wakes, stream_routes

DESCRIPTION = """Notifications: residents and staff are told, in the app and by SMS when it matters.

Domain events become notifications by one declared table (event type, recipients, template,
channels, urgency), once per event and recipient; each person has an inbox, a live stream and
their own settings (language, quiet hours, channels per category).
"""


async def install_sms_sender(app: FastAPI) -> None:
    """The SMS adapter the settings name (locally, a file); tests may replace it on app.state."""
    settings: Settings = app.state.settings
    app.state.sms_sender = settings.sms_sender()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    parts = ServiceParts(
        routers=[router, stream_routes],
        consumers=make_consumers(settings),
        jobs=jobs(settings),
        on_startup=[install_sms_sender, start_wakes],
        on_shutdown=[stop_wakes],
        tags_metadata=[{"name": "notify", "description": "My notifications, my live stream and my settings"}],
    )
    return create_service_app(settings, parts, title="notify", description=DESCRIPTION)
