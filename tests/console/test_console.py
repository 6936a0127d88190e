"""The staff console in Chromium: a steward works a resident's ticket through its states; a resident's
credentials open no staff screen; no page asks any host but the gateway; no serious accessibility fault."""

from __future__ import annotations

import csv
import io

from playwright.async_api import expect

from tests.console.conftest import Console
from tests.e2e.conftest import Community, Person, StaffMember, wait_until

WAIT_MS = 20_000


async def log_in_as_staff(console: Console, community: Community, member: StaffMember, path: str = "/console/") -> None:
    """Opens the console at `path` (a reload logs out: tokens live in memory) and logs in with the staff form."""
    await console.open(path)
    form = console.page.locator("#form-password")
    await form.get_by_label("社区").fill(community.id)
    await form.get_by_label("用户名").fill(member.username)
    await form.get_by_label("密码").fill(member.password)
    await form.get_by_role("button", name="登录").click()
    await expect(console.page.locator("#login")).to_be_hidden(timeout=WAIT_MS)


async def log_in_by_code(console: Console, community: Community, resident: Person, path: str = "/console/") -> None:
    """Opens the console at `path` and logs in with a code sent to the resident's phone (the newest one)."""
    sent = community.platform.sender.sent
    before = len(sent[resident.phone])
    await console.open(path)
    await console.page.get_by_role("button", name="手机验证码").click()
    form = console.page.locator("#form-otp")
    await form.get_by_label("社区").fill(community.id)
    await form.get_by_label("手机号").fill(resident.phone)
    await form.get_by_role("button", name="发送验证码").click()

    async def code_arrived() -> bool:
        return len(sent[resident.phone]) > before

    await wait_until(code_arrived, what="a new code for the resident")
    await form.get_by_label("验证码").fill(sent[resident.phone][-1])
    await form.get_by_role("button", name="登录").click()


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
    await log_in_by_code(console, community, resident)
    page = console.page

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
    await console.shot("swagger", full_page=False)  # the whole API reference is pages long: its first screen says enough
    await console.open("/redoc")
    await expect(page.locator("redoc h1").first).to_be_visible(timeout=WAIT_MS)
    await console.shot("redoc", full_page=False)  # the whole API reference is pages long: its first screen says enough


async def test_a_workers_award_above_the_limit_is_refused_to_its_author_and_approved_by_a_second_worker(
    console: Console, community: Community
) -> None:
    first = await community.staff("community_worker")
    second = await community.staff("community_worker")
    await community.call("POST", "/api/governance/budget/fundings", first.auth, {"points": 1000}, expected=(200,))
    await log_in_as_staff(console, community, first)
    page = console.page
    # A worker's home has the time bank's, the points', parking's and the SLA figures, and none of the tickets' own.
    figures = page.locator("#figures li")
    await expect(figures.locator("xpath=self::*[@data-figure='fig.pendingAwards']")).to_have_count(1, timeout=WAIT_MS)
    shown = set(await figures.evaluate_all("lis => lis.map(li => li.dataset.figure)"))
    assert {"fig.weekOnTime", "fig.hoursServed", "fig.awaiting", "fig.disputed", "fig.pointsMonth", "fig.parkingNow"} <= shown
    assert not {"fig.mine", "fig.overdue"} & shown
    await console.shot("worker-home")

    await page.get_by_role("link", name="积分奖惩").click()
    form = page.locator("#award-form")
    await form.get_by_label("居民编号").fill("r-1001")
    await form.get_by_label("积分（扣分为负数）").fill("80")  # above the approval limit of 50
    await form.get_by_label("事由").fill("组织楼道清扫")
    await form.get_by_role("button", name="提交").click()
    await expect(page.locator("#alert")).to_contain_text("等待另一位社工审批", timeout=WAIT_MS)
    row = page.locator("#award-rows tr").filter(has_text="组织楼道清扫")
    await expect(row).to_contain_text("我", timeout=WAIT_MS)
    award_id = await row.get_attribute("data-award")
    assert award_id

    # Its author may not approve it: the API refuses and the console says so; nothing moved.
    await row.locator("button[data-decide='approve']").click()
    await expect(page.locator("#alert")).to_contain_text("403", timeout=WAIT_MS)
    await expect(page.locator("#alert")).to_contain_text("不能审批自己提交的奖惩")
    await console.shot("award-refused")
    pending = await community.call("GET", "/api/governance/awards?status=pending", second.auth)
    assert [a["id"] for a in pending["items"]] == [award_id]
    assert await console.serious_accessibility_violations() == []

    await page.locator("#logout").click()
    await log_in_as_staff(console, community, second)
    await page.get_by_role("link", name="积分奖惩").click()
    row = page.locator(f"#award-rows tr[data-award='{award_id}']")
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await console.shot("points")
    await row.locator("button[data-decide='approve']").click()
    await expect(page.locator("#points")).to_have_attribute("data-decided", f"{award_id}:applied", timeout=WAIT_MS)
    await expect(page.locator("#awards-empty")).to_be_visible(timeout=WAIT_MS)
    decided = await community.call("GET", "/api/governance/awards?status=applied", second.auth)
    assert [(a["id"], a["created_by"], a["decided_by"]) for a in decided["items"]] == [(award_id, first.id, second.id)]
    budget = await community.call("GET", "/api/governance/budget", second.auth)
    assert (budget["funded"], budget["granted"], budget["remaining"]) == (1000, 80, 920)
