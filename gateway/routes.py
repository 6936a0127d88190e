"""Route templates of the services' paths, for metrics and access logs by route, never by raw path;
and the services' own routes that never go through the door."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

# A service's own metrics and documents: scraped and read on the service's port (the gateway serves
# the merged document), never through the door, whatever the caller's token.
SERVICE_OWN_ROUTES = frozenset({"metrics", "openapi.json", "docs", "redoc"})

# The city's versioned door: citysync's feed routes are public only as /city/v1/<route>, one path
# each, so a city client's integration survives a change of the services behind it.
CITY_PREFIX = "/city/v1"
CITY_DOOR = ("citysync", frozenset({"feeds"}))

# The most paths a route table remembers the template of (past it, it starts over).
KNOWN_PATHS = 4096
KNOWN_PATH_LENGTH = 256


def through_city_door(service: str, path: str) -> bool:
    """Whether the service's `path` ("/feeds/x" or "feeds/x") is one of the city door's routes."""
    door_service, first_segments = CITY_DOOR
    return service == door_service and path.lstrip("/").partition("/")[0] in first_segments


def public_path(service: str, path: str) -> str:
    """Where a service's route (`/feeds/{scene}`) is served through the gateway."""
    return f"{CITY_PREFIX}{path}" if through_city_door(service, path) else f"/api/{service}{path}"


@dataclass
class RouteTable:
    """Path templates from the services' OpenAPI documents, for metrics and logs by route."""

    by_service: dict[str, list[tuple[re.Pattern[str], str]]] = field(default_factory=dict)
    # Paths already matched, and their template: a table is replaced whole when the documents
    # change, so what it answered once it answers again (ids make many paths: the cache is bounded).
    known: dict[tuple[str, str], str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_paths(cls, paths: dict[str, list[str]]) -> RouteTable:
        table: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for service, templates in paths.items():
            entries = []
            # Literal segments first, so /tickets/mine wins over /tickets/{ticket_id}.
            for template in sorted(templates, key=lambda t: (t.count("{"), -len(t))):
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
                entries.append((re.compile(f"^{pattern}$"), public_path(service, template)))
            table[service] = entries
        return cls(table)

    def template(self, service: str, path: str) -> str:
        found = self.known.get((service, path))
        if found is None:
            found = self._match(service, path)
            if len(path) > KNOWN_PATH_LENGTH:
                return found  # a long path is matched each time rather than held
            if len(self.known) >= KNOWN_PATHS:
                self.known.clear()
            self.known[(service, path)] = found
        return found

    def _match(self, service: str, path: str) -> str:
        for pattern, template in self.by_service.get(service, ()):
            if pattern.match(path):
                return template
        return f"/api/{service}/unmatched"


def service_own_route(path: str) -> bool:
    """Whether `path` (as the caller encoded it) names a service's own metrics or documents, however spelt."""
    normal = posixpath.normpath("/" + unquote(path)).lstrip("/")
    return normal.partition("/")[0] in SERVICE_OWN_ROUTES
