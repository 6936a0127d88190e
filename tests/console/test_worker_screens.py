"""The community worker's screens in Chromium, each over data made through the public API: member
verification (from the list of members awaiting it), care awaiting confirmation and in dispute with
the pool, parking's overstays and gate misreads, the city data-sharing register, and collective
decisions. Each screen shows what its role may read, takes its screenshot and passes axe-core with no
serious or critical violation."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import expect
from sqlalchemy import text, update

from services.timebank.models import CARE
from tests.console.conftest import Console
from tests.console.test_console import WAIT_MS, log_in_as_staff
from tests.e2e.conftest import Community, Person


def a_plate() -> str:
    return "浙K" + "".join(random.choices("0123456789", k=5))


async def test_a_worker_verifies_a_members_birth_date_and_records_a_relative(console: Console, community: Community) -> None:
    worker = await community.staff("community_worker")
    elder = await community.resident("陈阿婆")
    daughter = await community.resident("陈小梅")
    for person, enrol in ((elder, {"elder": True}), (daughter, {"volunteer": True})):
        await community.call("POST", "/api/timebank/members", person.auth, enrol, expected=(201,))
    await log_in_as_staff(console, community, worker)
    page = console.page
    await page.get_by_role("link", name="成员核验").click()
    # Both await verification, listed oldest first; the worker opens the elder from the list.
    awaiting = page.locator("#awaiting-member-rows tr")
    await expect(awaiting).to_have_count(2, timeout=WAIT_MS)
    await expect(awaiting.first).to_have_attribute("data-member", elder.id)
    await awaiting.first.get_by_role("link", name=elder.id).click()
    detail = page.locator("#member-detail")
    await expect(detail).to_have_attribute("data-member", elder.id, timeout=WAIT_MS)
    await expect(page.locator("#relatives-empty")).to_be_visible()

    verify = page.locator("#verify-form")
    await verify.get_by_label("出生日期").fill("1944-05-06")
    await verify.get_by_label("重点空巢独居老人").check()
    await verify.get_by_role("button", name="提交").click()
    await expect(detail).to_have_attribute("data-saved", "verification", timeout=WAIT_MS)
    await expect(page.locator("#member-fields")).to_contain_text("1944-05-06")
    # Verified, the elder leaves the list; the daughter still awaits.
    await expect(awaiting).to_have_count(1)
    await expect(awaiting.first).to_have_attribute("data-member", daughter.id)

    relative = page.locator("#relative-form")
    await relative.get_by_label("亲属成员编号").fill(daughter.id)
    await relative.get_by_label("关系").fill("子女")
    await relative.get_by_role("button", name="登记亲属").click()
    await expect(page.locator(f"#relative-rows tr[data-relative='{daughter.id}']")).to_contain_text("子女", timeout=WAIT_MS)
    await console.shot("members")
    assert await console.serious_accessibility_violations() == []

    member = await community.call("GET", f"/api/timebank/members/{elder.id}", worker.auth)
    assert (member["birth_date"], member["priority_elder"]) == ("1944-05-06", True)


async def logged_service(community: Community, elder: Person, volunteer: Person, minutes: int) -> str:
    """A care request served and checked out: its pending transfer awaits the elder's confirmation."""
    now = datetime.now(UTC).replace(microsecond=0)
    request = await community.call(
        "POST",
        "/api/timebank/care-requests",
        {**elder.auth, "Idempotency-Key": f"care-{uuid.uuid4()}"},
        {
            "service_type": "companionship",
            "starts_at": (now - timedelta(hours=2)).isoformat(),
            "place": "1幢101",
            "minutes_estimated": minutes,
        },
        expected=(201,),
    )
    rid = request["id"]
    await community.call("POST", f"/api/timebank/care-requests/{rid}/accept", volunteer.auth)
    # As if accepted earlier: a check-in is never before the acceptance.
    async with community.platform.services["timebank"].state.sessionmaker() as session, session.begin():
        await session.execute(
            update(CARE).where(CARE.c.id == uuid.UUID(rid)).values(accepted_at=now - timedelta(minutes=minutes))
        )
    at = (now - timedelta(minutes=minutes)).isoformat()
    await community.call("POST", f"/api/timebank/care-requests/{rid}/check-in", volunteer.auth, {"at": at})
    pending_id = str(uuid.uuid4())
    body = {"transfer_id": pending_id, "at": now.isoformat()}
    await community.call("POST", f"/api/timebank/care-requests/{rid}/check-out", volunteer.auth, body, expected=(201,))
    return pending_id


async def test_a_worker_sees_care_awaiting_confirmation_and_in_dispute_and_confirms_one_for_the_elder(
    console: Console, community: Community
) -> None:
    worker = await community.staff("community_worker")
    elder = await community.resident("赵大爷")
    volunteer = await community.resident("孙志愿")
    await community.call("POST", "/api/timebank/members", elder.auth, {"elder": True}, expected=(201,))
    await community.call("POST", "/api/timebank/members", volunteer.auth, {"volunteer": True}, expected=(201,))
    verified = {"birth_date": "1940-01-02", "priority_elder": True}
    await community.call("POST", f"/api/timebank/members/{elder.id}/verification", worker.auth, verified)
    funding = {"id": str(uuid.uuid4()), "minutes": 600, "reason": "街道拨付"}
    await community.call("POST", "/api/timebank/transfers/funding", worker.auth, funding, expected=(201,))
    to_confirm = await logged_service(community, elder, volunteer, 90)
    disputed = await logged_service(community, elder, volunteer, 60)
    dispute = {"id": str(uuid.uuid4()), "reason": "志愿者未到场"}
    await community.call("POST", f"/api/timebank/transfers/{disputed}/dispute", elder.auth, dispute, expected=(200, 201))

    await log_in_as_staff(console, community, worker)
    page = console.page
    home = page.locator("#figures")
    await expect(home.locator("li[data-figure='fig.awaiting'] strong")).to_have_text("1", timeout=WAIT_MS)
    await expect(home.locator("li[data-figure='fig.disputed'] strong")).to_have_text("1")
    await console.shot("worker-home-figures")
    await home.locator("li[data-figure='fig.awaiting'] a").click()
    disputed_row = page.locator(f"#disputed-rows tr[data-transfer='{disputed}']")
    await expect(disputed_row).to_contain_text("已作废", timeout=WAIT_MS)
    await expect(disputed_row).to_contain_text("志愿者未到场")  # the elder's reason, not only the outcome
    row = page.locator(f"#awaiting-rows tr[data-transfer='{to_confirm}']")
    await expect(row).to_contain_text("1.5 h")
    await expect(page.locator("#pool-fields")).to_contain_text("1 · 1.5 h")
    await console.shot("care")
    assert await console.serious_accessibility_violations() == []

    await row.get_by_role("button", name="确认").click()
    await expect(page.locator("#care")).to_have_attribute("data-settled", f"{to_confirm}:confirm", timeout=WAIT_MS)
    await expect(page.locator("#awaiting-empty")).to_be_visible(timeout=WAIT_MS)
    pool = await community.call("GET", "/api/timebank/pool", worker.auth)
    assert (pool["open_pending_count"], pool["pool"]["balance"]["available_minutes"]) == (0, 600 - 90)


async def test_a_steward_sees_an_overstay_and_corrects_a_gate_misread_which_lets_the_car_in(
    console: Console, community: Community
) -> None:
    owner = await community.resident("周车主")
    steward = await community.staff("steward")
    gate_id, gate = await community.machine(f"gate-{uuid.uuid4().hex[:6]}", "gate_device")
    await community.call("POST", "/api/parking/gate-devices", steward.auth, {"id": gate_id, "name": "东门道闸"}, expected=(201,))
    spot = await community.call(
        "POST", "/api/parking/spots", steward.auth, {"kind": "public", "code": "P-001", "location": "东门"}, expected=(201,)
    )
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    window = {
        "kind": "one_off",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=1)).isoformat(),
        "price_fen_per_30min": 300,
    }
    await community.call("POST", f"/api/parking/spots/{spot['id']}/windows", steward.auth, window, expected=(201,))

    async def booked(plate: str, hours: int) -> dict[str, Any]:
        span = {
            "starts_at": (start + timedelta(hours=hours)).isoformat(),
            "ends_at": (start + timedelta(hours=hours + 1)).isoformat(),
        }
        made = await community.call(
            "POST", "/api/parking/bookings", owner.auth, {"spot_id": spot["id"], "plate": plate, **span}, expected=(201,)
        )
        paid: dict[str, Any] = await community.call("POST", f"/api/parking/bookings/{made['id']}/payment", owner.auth, {})
        return paid

    # One car entered and its hour is over (moved three hours back, as if it had been booked then).
    late = await booked(a_plate(), 0)
    late_plate = late["plate"]
    assert (await community.call("POST", "/api/parking/gate/entries", gate, {"plate": late_plate}))["decision"] == "open"
    async with community.platform.services["parking"].state.sessionmaker() as session, session.begin():
        back = ", ".join(f"{column} = {column} - interval '3 hours'" for column in ("starts_at", "ends_at", "block_ends_at"))
        await session.execute(text(f"UPDATE bookings SET {back} WHERE id = :id"), {"id": uuid.UUID(late["id"])})
    # Another car is booked for the hour that freed, but the camera misreads its plate: refused.
    expected_plate = a_plate()
    coming = await booked(expected_plate, 0)
    misread = await community.call("POST", "/api/parking/gate/entries", gate, {"plate": a_plate()})
    assert misread["decision"] == "refused"

    await log_in_as_staff(console, community, steward)
    page = console.page
    await expect(page.locator("#figures li[data-figure='fig.parkingNow'] strong")).to_have_text("1/1", timeout=WAIT_MS)
    await page.get_by_role("link", name="停车", exact=True).click()
    await expect(page.locator(f"#overstay-rows tr[data-booking='{late['id']}']")).to_contain_text(late_plate, timeout=WAIT_MS)
    row = page.locator(f"#misread-rows tr[data-event='{misread['event_id']}']")
    await expect(row).to_be_visible()
    await console.shot("parking")
    assert await console.serious_accessibility_violations() == []

    await row.get_by_label("更正车牌").fill(expected_plate)
    await row.get_by_role("button", name="更正").click()
    await expect(page.locator("#parking")).to_have_attribute("data-corrected", misread["event_id"], timeout=WAIT_MS)
    await expect(row).to_have_count(0, timeout=WAIT_MS)
    entered = await community.call("GET", f"/api/parking/bookings/{coming['id']}", steward.auth)
    assert entered["status"] == "active"


async def test_a_worker_reads_the_data_sharing_register_and_the_decisions_and_a_steward_is_refused_the_register(
    console: Console, community: Community
) -> None:
    worker = await community.staff("community_worker")
    steward = await community.staff("steward")
    subject, city = await community.machine(f"city-{uuid.uuid4().hex[:6]}", "city_sync")
    await community.call(
        "POST", "/api/citysync/consumers", worker.auth, {"id": subject, "name": "丽水市公共数据平台"}, expected=(201,)
    )
    for scene in ("timebank", "property"):
        await community.call("POST", f"/api/citysync/consumers/{subject}/grants", worker.auth, {"scene": scene}, expected=(201,))
    await community.call("GET", "/city/v1/feeds/property", city)
    await community.call("DELETE", f"/api/citysync/consumers/{subject}/grants/timebank", worker.auth, expected=(200, 204))
    opens = datetime.now(UTC) + timedelta(days=1)
    poll = {
        "kind": "household_poll",
        "question": "社区食堂选哪一家供餐？",
        "options": ["阿婆家常菜", "邻里食堂"],
        "opens_at": opens.isoformat(),
        "closes_at": (opens + timedelta(days=7)).isoformat(),
    }
    decision = await community.call("POST", "/api/governance/decisions", worker.auth, poll, expected=(201,))

    await log_in_as_staff(console, community, worker)
    page = console.page
    await page.get_by_role("link", name="数据共享登记").click()
    consumer = page.locator(f"#consumer-rows tr[data-consumer='{subject}']")
    await expect(consumer).to_contain_text("丽水市公共数据平台", timeout=WAIT_MS)
    await expect(consumer.locator("li[data-scene='timebank']")).to_contain_text("撤销于")
    await expect(consumer.locator("li[data-scene='property']")).to_contain_text("授权于")
    await expect(page.locator("#pull-rows tr")).to_have_count(1)
    await expect(page.locator("#pull-rows tr")).to_contain_text("property")
    await console.shot("register")
    assert await console.serious_accessibility_violations() == []

    await page.get_by_role("link", name="议事决策").click()
    row = page.locator(f"#decision-rows tr[data-decision='{decision['id']}']")
    await expect(row).to_contain_text("社区食堂选哪一家供餐？", timeout=WAIT_MS)
    await expect(row).to_contain_text("住户意见征询")

    # The worker drafts a poll through the form (times in Beijing time, whatever the browser's zone)
    # and opens it; the closing job, not the console, closes it at its closing time.
    starts = datetime.now(ZoneInfo("Asia/Shanghai")).replace(second=0, microsecond=0) + timedelta(hours=1)
    form = page.locator("#decision-form")
    await form.get_by_label("议题").fill("楼道灯改为感应灯？")
    await form.get_by_label("选项").fill("改，不改")
    await form.get_by_label("开始时间").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    await form.get_by_label("截止时间").fill((starts + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"))
    await form.get_by_role("button", name="起草").click()
    section = page.locator("#decisions")
    await expect(section).to_have_attribute("data-drafted", re.compile(".+"), timeout=WAIT_MS)
    drafted_id = await section.get_attribute("data-drafted")
    drafted = page.locator(f"#decision-rows tr[data-decision='{drafted_id}']")
    await expect(drafted).to_have_attribute("data-status", "draft")
    await console.shot("decisions")
    assert await console.serious_accessibility_violations() == []
    await drafted.get_by_role("button", name="开启表决").click()
    await expect(section).to_have_attribute("data-opened", str(drafted_id), timeout=WAIT_MS)
    await expect(drafted).to_have_attribute("data-status", "open", timeout=WAIT_MS)
    await expect(drafted.get_by_role("button")).to_have_count(0)
    made = await community.call("GET", f"/api/governance/decisions/{drafted_id}", worker.auth)
    assert (made["status"], made["options"]) == ("open", ["改", "不改"])
    assert datetime.fromisoformat(made["opens_at"]) == starts

    # A steward is not shown the register's link, and the register itself is the API's to refuse.
    await page.locator("#logout").click()
    await log_in_as_staff(console, community, steward)
    await expect(page.get_by_role("link", name="数据共享登记")).to_be_hidden()
    await expect(page.get_by_role("link", name="停车", exact=True)).to_be_visible()
    await page.evaluate("location.hash = '#/register'")
    await expect(page.locator("#alert")).to_contain_text("403", timeout=WAIT_MS)
    await expect(page.locator("#consumer-rows tr")).to_have_count(0)
