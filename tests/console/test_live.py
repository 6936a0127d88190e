"""The live path in Chromium: a ticket a resident files through the API appears in the steward's open
queue without a reload, carried by notify's stream through the gateway. The console is opened with
`?poll=off`, so no polling fallback runs: only the stream can bring the ticket."""

from __future__ import annotations

from playwright.async_api import Request, expect

from tests.console.conftest import Console
from tests.console.test_console import WAIT_MS, log_in_as_staff
from tests.e2e.conftest import Community


async def test_a_new_ticket_reaches_the_stewards_open_queue_through_the_notify_stream(
    console: Console, community: Community
) -> None:
    building = await community.building()
    steward = await community.staff("steward", buildings=[building])
    # On duty all week, so the ticket is routed to the steward (and notify tells them) rather than queued.
    all_week = [{"weekday": day, "start_minute": 0, "end_minute": 1440} for day in range(7)]
    await community.call("PUT", f"/api/property/staff/{steward.id}/roster", community.admin, {"shifts": all_week})
    resident = await community.resident("王秀英")
    queue_asked: list[str] = []

    def count_queue_requests(request: Request) -> None:
        if "/api/property/queue" in request.url:
            queue_asked.append(request.url)

    await log_in_as_staff(console, community, steward, "/console/?poll=off#/queue")
    page = console.page
    await expect(page.locator("#queue-empty")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("body")).to_have_attribute("data-live", "open", timeout=WAIT_MS)
    page.on("request", count_queue_requests)

    ticket = await community.call(
        "POST", "/api/property/tickets", resident.auth, {"category": "repair", "description": "楼道灯不亮"}, expected=(201,)
    )
    assert ticket["assignee_id"] == steward.id
    row = page.locator(f"tr[data-ticket='{ticket['id']}']")
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await expect(row).to_contain_text("派给我")
    # The stream brought one notification (the ticket filed to me), and the queue was asked again because of it.
    assert int(await page.locator("body").get_attribute("data-stream-events") or 0) >= 1
    assert queue_asked, "the queue was redrawn without asking the server"
    assert await page.evaluate("new URLSearchParams(location.search).get('poll')") == "off"
    await console.shot("live-queue")
