"""citysync's FastAPI app (`uvicorn --factory services.citysync.app:create_app`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.citysync.api import router
from services.citysync.consumers import feed_consumer
from services.citysync.feeds import Keys
from services.citysync.jobs import jobs
from services.citysync.settings import Settings
from services.kit.app import ServiceParts, create_service_app

TAGS = [
    {"name": "feeds", "description": "De-identified, ordered feeds per scene, pulled by city_sync consumers"},
    {"name": "register", "description": "The data-sharing register (数据共享登记): consumers, grants, pulls"},
]


def keys_from(settings: Settings) -> Keys:
    return Keys(
        platform=settings.platform_hash_key.get_secret_value().encode(), topic=settings.topic_hash_key.get_secret_value().encode()
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    keys = keys_from(settings)
    return create_service_app(
        settings,
        ServiceParts(routers=[router], consumers=[feed_consumer(keys)], jobs=jobs(settings, keys), tags_metadata=TAGS),
        title="City data sync (城市数据共享)",
        description="A de-identified, replayable feed of every scene for the provincial and municipal public data platforms.",
    )
