"""The console in a real browser: Debian's Chromium driven by Playwright, against the gateway and all
six services started as in tests/e2e (real servers on loopback ports, one Kafka namespace).

Every page may talk to the gateway only: a request for any other host is counted and refused, and
each test ends by requiring that count to be zero. Screenshots go to the test's own tmp_path.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from services.citysync.app import create_app as create_citysync
from services.citysync.settings import Settings as CitysyncSettings
from services.governance.app import create_app as create_governance
from services.governance.settings import Settings as GovernanceSettings
from services.notify.app import create_app as create_notify
from services.notify.settings import Settings as NotifySettings
from services.parking.app import create_app as create_parking
from services.parking.settings import Settings as ParkingSettings
from services.property.app import create_app as create_property
from services.property.settings import Settings as PropertySettings
from services.timebank.app import create_app as create_timebank
from services.timebank.settings import Settings as TimebankSettings
from tests.e2e.conftest import Community, Platform, served_community
from tests.gateway.conftest import gateway_template, running_gateway  # noqa: F401 (fixture)
from tests.gateway.upstream import serve
from tests.support.harness import RunningService, run_service
from tests.support.stack import TestStack, new_namespace

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)


@pytest.fixture(scope="module")
async def platform(
    stack: TestStack,
    gateway_template: str,  # noqa: F811 (the imported fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    """The gateway in front of every service, as in tests/e2e: the console's screens read all six, and
    notify's stream carries the live updates. Awards above 50 points wait for a second worker."""
    namespace = new_namespace()
    specs: list[tuple[str, Callable[[Any], Any], type[Any], dict[str, Any]]] = [
        ("timebank", create_timebank, TimebankSettings, {}),
        ("parking", create_parking, ParkingSettings, {"expire_holds_every_s": 3600.0}),
        ("property", create_property, PropertySettings, {"sla_check_interval_s": 3600}),
        ("governance", create_governance, GovernanceSettings, {"award_approval_threshold": 50}),
        ("citysync", create_citysync, CitysyncSettings, {"stats_every_s": 3600.0}),
        ("notify", create_notify, NotifySettings, {"sms_outbox_path": str(tmp_path_factory.mktemp("notify") / "sms.log")}),
    ]
    async with AsyncExitStack() as exits:
        services: dict[str, RunningService] = {}
        urls: dict[str, str] = {}
        for name, factory, settings_cls, overrides in specs:
            services[name] = await exits.enter_async_context(
                run_service(stack, name, factory, settings_cls, namespace=namespace, **overrides)
            )
            urls[name] = await exits.enter_async_context(serve(services[name].app, lifespan=False))
        gateway = await exits.enter_async_context(
            running_gateway(
                stack,
                gateway_template,
                namespace=namespace,
                upstreams=urls,
                rate_limit_user="100000/minute",
                rate_limit_ip="100000/minute",
                rate_limit_login="100000/minute",
                otp_sends_per_ip="100000/day",
            )
        )
        gateway_url = await exits.enter_async_context(serve(gateway.app, lifespan=False))
        client = await exits.enter_async_context(httpx.AsyncClient(base_url=gateway_url, timeout=30))
        everyone = [*services.values(), gateway]
        await asyncio.gather(*(asyncio.wait_for(c.ready.wait(), 60) for s in everyone for c in s.state.consumers))
        yield Platform(stack=stack, services=services, gateway=gateway, namespace=namespace, client=client)


@pytest.fixture
async def community(platform: Platform) -> Community:
    return await served_community(platform)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    """One browser tab on the console, with the requests it tried to send elsewhere."""

    page: Page
    base_url: str
    shots: Path
    elsewhere: list[str] = field(default_factory=list)

    async def open(self, path: str = "/console/") -> None:
        await self.page.goto(self.base_url + path)

    async def shot(self, name: str, *, full_page: bool = True) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    async def serious_accessibility_violations(self) -> list[str]:
        """axe-core's serious and critical findings on the page as it stands."""
        # Evaluated through the DevTools protocol: the page's policy refuses inline scripts, rightly.
        await self.page.evaluate(AXE.read_text())
        found: list[str] = await self.page.evaluate(
            """async () => {
                const result = await axe.run(document);
                return result.violations
                    .filter((v) => v.impact === "serious" || v.impact === "critical")
                    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
            }"""
        )
        return found


@pytest.fixture
async def console(browser: Browser, platform: Platform, tmp_path: Path) -> AsyncIterator[Console]:
    base_url = str(platform.client.base_url).rstrip("/")
    own = urlsplit(base_url).netloc
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    tab = Console(page=await context.new_page(), base_url=base_url, shots=tmp_path)

    async def only_the_gateway(route: Route) -> Any:
        url = route.request.url
        if urlsplit(url).scheme in {"data", "blob"} or urlsplit(url).netloc == own:
            await route.continue_()
        else:
            tab.elsewhere.append(url)
            await route.abort()

    await context.route("**/*", only_the_gateway)
    try:
        yield tab
        assert tab.elsewhere == [], f"the console asked other hosts: {tab.elsewhere}"
    finally:
        await context.close()
