"""The documentation pages and the console come from the gateway itself: no page names another host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.support.harness import RunningService


class References(HTMLParser):
    """Every `src`, `href` and `spec-url` a page names."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in {"src", "href", "spec-url"} and value]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/console/"])
async def test_a_page_names_only_the_gateways_own_assets_and_each_one_is_served(gateway: RunningService, page: str) -> None:
    r = await gateway.client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    found = references(r.text)
    assert found, "a page with no script or stylesheet tells nothing"
    assert [ref for ref in found if re.match(r"^([a-z]+:)?//", ref)] == []
    # And the browser is told to refuse any other host, whatever a library's script asks for.
    assert r.headers["content-security-policy"].startswith("default-src 'self';")
    for ref in found:
        asset = await gateway.client.get(ref if ref.startswith("/") else page.rstrip("/") + "/" + ref)
        assert asset.status_code == 200, ref


async def test_the_swagger_page_turns_off_the_public_validator(gateway: RunningService) -> None:
    r = await gateway.client.get("/docs/assets/swagger-init.js")
    assert "validatorUrl: null" in r.text


async def test_only_the_named_assets_are_served_not_the_packages_demo_pages(gateway: RunningService) -> None:
    for name in ("swagger-ui/index.html", "swagger-ui/swagger-initializer.js", "../package.json"):
        assert (await gateway.client.get(f"/docs/assets/{name}")).status_code == 404


async def test_the_console_without_a_slash_redirects_relatively(gateway: RunningService) -> None:
    r = await gateway.client.get("/console")
    assert r.status_code == 308 and r.headers["location"] == "console/"


CONSOLE = Path(__file__).resolve().parents[2] / "gateway" / "static" / "console"


def test_every_console_module_is_preloaded_so_the_browser_asks_for_them_at_once() -> None:
    """A module the page does not name is found only after its importer is fetched and parsed: one
    round trip more per level of imports on the first load."""
    imported = {name for script in CONSOLE.glob("*.js") for name in re.findall(r'from "\./([\w-]+\.js)"', script.read_text())}
    preloaded = {ref for ref in references((CONSOLE / "index.html").read_text()) if ref.endswith(".js") and ref != "app.js"}
    assert imported and imported == preloaded


async def test_the_consoles_files_travel_compressed(gateway: RunningService) -> None:
    r = await gateway.client.get("/console/app.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.headers["content-security-policy"].startswith("default-src 'self';")
    assert int(r.headers["content-length"]) < len(r.content)  # httpx has inflated what travelled
