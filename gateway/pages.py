"""The gateway's pages: the API documentation (Swagger UI at `/docs`, ReDoc at `/redoc`) and the
staff console at `/console/`, every byte served from this repository.

No page loads anything from another host: a government intranet without internet access gets
them whole. Swagger UI and ReDoc come from the npm packages pinned in package-lock.json (`npm ci`
puts them in node_modules, as `make run` and `make test` do); only the files the pages name are
served, not the packages' demo pages. The console is plain HTML, CSS and JavaScript with no build
step, a client of the public API like any other.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from services.kit.problems import NotFound

STATIC = Path(__file__).resolve().parent / "static"
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"

# FastAPI's own documentation pages load their scripts from a CDN.
FRAMEWORK_PAGES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
PAGES = {"/docs": STATIC / "docs" / "swagger.html", "/redoc": STATIC / "docs" / "redoc.html"}
DOC_ASSETS = {
    "swagger-ui/swagger-ui.css": NODE_MODULES / "swagger-ui-dist" / "swagger-ui.css",
    "swagger-ui/swagger-ui-bundle.js": NODE_MODULES / "swagger-ui-dist" / "swagger-ui-bundle.js",
    "swagger-init.js": STATIC / "docs" / "swagger-init.js",
    "redoc/redoc.standalone.js": NODE_MODULES / "redoc" / "bundles" / "redoc.standalone.js",
}
# The browser itself refuses any other host, so a library's stray link (ReDoc's badge loads its
# logo from its maker's CDN) never leaves the intranet. ReDoc styles inline and parses in a worker.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; font-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'"
)
CONSOLE_POLICY = "default-src 'self'; img-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'"


class ConsoleFiles(StaticFiles):
    """The console's files, each answered with the console's content security policy."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONSOLE_POLICY
        return response


async def documentation_page(request: Request) -> Response:
    return FileResponse(
        PAGES[request.url.path],
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": PAGE_POLICY},
    )


async def documentation_asset(name: str) -> Response:
    path = DOC_ASSETS.get(name)
    if path is None or not path.is_file():
        raise NotFound(("没有这个文档资源", "No such documentation asset"))
    return FileResponse(path)


async def console_root() -> Response:
    # Relative, so the Location never repeats a Host header the caller chose.
    return RedirectResponse("console/", status_code=308)


def install_pages(app: FastAPI) -> None:
    """Replaces FastAPI's documentation pages with the project's own and mounts the console."""
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in FRAMEWORK_PAGES]
    for path in PAGES:
        app.add_api_route(path, documentation_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/assets/{name:path}", documentation_asset, methods=["GET"], include_in_schema=False)
    app.add_api_route("/console", console_root, methods=["GET"], include_in_schema=False)
    # Compressed, as the first load's budget is counted in bytes over the wire (the scripts shrink to a
    # quarter); only the console's own files, so the API's streams are never held back by a compressor.
    console = GZipMiddleware(ConsoleFiles(directory=STATIC / "console", html=True), minimum_size=1024)
    app.mount("/console", console, name="console")
