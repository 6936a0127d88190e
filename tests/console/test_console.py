"""The staff console in Chromium: a steward works a resident's ticket through its states; a resident's
credentials open no staff screen; no page asks any host but the gateway; no serious accessibility fault."""

from __future__ import annotations

import csv
import io

from playwright.async_api import expect

from tests.console.conftest import Console
from tests.e2e.conftest import Community, StaffMember, wait_until

WAIT_MS = 20_000


async def log_in_as_staff(console: Console, community: Community, member: StaffMember) -> None:
    await console.open()
    form = console.page.locator("#form-password")
    await form.get_by_label("社区").fill(community.id)
    await form.get_by_label("用户名").fill(member.username)
    await form.get_by_label("密码").fill(member.password)
    await form.get_by_role("button", name="登录").click()
    await expect(console.page.locator("#home")).to_be_visible(timeout=WAIT_MS)


async def test_a_steward_sees_a_new_ticket_arrive_and_works_it_through_its_states(console: Console, community: Community) -> None:
    steward = await community.staff("steward")
    resident = await community.resident("王秀英")
    await log_in_as_staff(console, community, steward)
    page = console.page
    await expect(page.locator("#figures li").first).to_be_visible(timeout=WAIT_MS)
    await console.shot("home")

    await page.get_by_role("link", name="我的工单队列").click()
    await expect(page.locator("#queue-empty")).to_be_visible(timeout=WAIT_MS)
    ticket = await community.call(
        "POST", "/api/property/tickets", resident.auth, {"category": "repair", "description": "厨房水龙头漏水"}, expected=(201,)
    )
    # No reload: the open queue asks again on its own.
    row = page.locator(f"tr[data-ticket='{ticket['id']}']")
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await expect(row.locator("td").first).to_contain_text("剩余")
    await console.shot("queue")

    await row.get_by_role("link", name="厨房水龙头漏水").click()
    section = page.locator("#ticket")
    for action, status in (("accept", "accepted"), ("start", "in_progress"), ("complete", "completed")):
        await section.locator(f"button[data-action='{action}']").click()
        await expect(section).to_have_attribute("data-status", status, timeout=WAIT_MS)
        if action == "accept":
            # Exactly the steward's moves from accepted: start, quote, hand over; never the resident's or the admin's.
            buttons = section.locator("#ticket-actions button")
            assert sorted(await buttons.evaluate_all("bs => bs.map(b => b.dataset.action)")) == ["hand_over", "quote", "start"]
    await section.locator("button[data-action='follow_up']").click()
    await section.get_by_label("备注").fill("住户表示已修好")
    await section.get_by_role("button", name="提交").click()
    await expect(section.locator("#ticket-fields")).to_contain_text("住户表示已修好", timeout=WAIT_MS)
    await expect(section.locator("#ticket-steps li")).to_have_count(5, timeout=WAIT_MS)
    await console.shot("ticket")

    done = await community.call("GET", f"/api/property/tickets/{ticket['id']}", steward.auth)
    assert done["status"] == "completed" and done["follow_up_note"] == "住户表示已修好"
    assert await console.serious_accessibility_violations() == []

    # The queue's unit search asks the server; the month's tickets download as Excel-ready CSV.
    await page.get_by_role("link", name="我的工单队列").click()
    await expect(page.locator("#queue")).to_be_visible(timeout=WAIT_MS)
    async with page.expect_download(timeout=WAIT_MS) as info:
        await page.get_by_role("button", name="导出本月工单（CSV）").click()
    download = await info.value
    content = (await download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert [(r["id"], r["description"]) for r in rows] == [(ticket["id"], "厨房水龙头漏水")]


async def test_a_residents_credentials_open_no_staff_screen_and_the_console_says_the_api_refused(
    console: Console, community: Community
) -> None:
    resident = await community.resident("李建国")
    sent = community.platform.sender.sent
    before = len(sent[resident.phone])
    await console.open()
    page = console.page
    await page.get_by_role("button", name="手机验证码").click()
    form = page.locator("#form-otp")
    await form.get_by_label("社区").fill(community.id)
    await form.get_by_label("手机号").fill(resident.phone)
    await form.get_by_role("button", name="发送验证码").click()

    async def code_arrived() -> bool:
        return len(sent[resident.phone]) > before

    await wait_until(code_arrived, what="a new code for the resident")
    await form.get_by_label("验证码").fill(sent[resident.phone][-1])
    await form.get_by_role("button", name="登录").click()

    alert = page.locator("#alert")
    for screen in ("#/home", "#/queue"):
        await page.evaluate(f"location.hash = '{screen}'")
        await expect(alert).to_contain_text("403", timeout=WAIT_MS)
        await expect(alert).to_contain_text("无权使用此页面")
    await expect(page.locator("#queue-rows tr")).to_have_count(0)
    await console.shot("refused")
    assert await console.serious_accessibility_violations() == []


async def test_the_login_screen_switches_to_english_and_the_docs_load_only_from_the_gateway(console: Console) -> None:
    await console.open()
    page = console.page
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("#login-title")).to_have_text("Log in")
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await console.serious_accessibility_violations() == []
    await console.shot("login-en")
    await console.open("/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_be_visible(timeout=WAIT_MS)
    await console.shot("swagger")
    await console.open("/redoc")
    await expect(page.locator("redoc h1").first).to_be_visible(timeout=WAIT_MS)
    await console.shot("redoc")
