"""The events security applies from other services (property's residents and buildings)."""

from __future__ import annotations

from services.security.directory import property_consumer

consumers = [property_consumer]
