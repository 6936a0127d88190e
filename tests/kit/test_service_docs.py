"""A service's own documentation pages: none (FastAPI's load Swagger UI and ReDoc from a CDN); the
gateway serves the merged document's pages from the project's assets (tests/gateway/test_pages.py)."""

from __future__ import annotations

import pytest

from tests.kit.test_query_params import SERVICES, _get, _service_app


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_serves_no_documentation_page_that_would_load_a_cdn(service: str) -> None:
    """The gateway serves /docs and /redoc from the project's assets; a service keeps only its document."""
    app = _service_app(service)
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = await _get(app, page)
        assert r.status_code == 404, (service, page)
        assert "cdn" not in r.text.lower()
    assert "openapi" in app.openapi()
