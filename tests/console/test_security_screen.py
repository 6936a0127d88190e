"""The security screen (安防) in Chromium, over data made through the public API: a guard's home shows
the alarms awaiting an answer and the devices offline; on the screen the guard sees an offline device
first, today's visitor from a pass a resident made, an alarm a device raised (brought by the stream),
answers it (接警) and sees it answered with the response time and its urgent ticket (which opens,
read only); and pages through a door's access events. A resident who opens the screen is told the API refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect
from sqlalchemy import text

from services.security import devices
from tests.console.conftest import Console
from tests.console.test_console import WAIT_MS, log_in_as_staff, log_in_by_code
from tests.e2e.conftest import Community, Platform, start_platform, wait_until
from tests.gateway.conftest import gateway_template  # noqa: F401 (fixture)
from tests.support.stack import TestStack

# The guard's screens read security and property (buildings, the alarms' tickets); notify's stream
# brings the alarm; the gateway learns staff and residents from property.
SERVICES = ("property", "notify", "security")


@pytest.fixture(scope="module")
async def platform(
    stack: TestStack,
    gateway_template: str,  # noqa: F811 (the imported fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    async with start_platform(stack, gateway_template, tmp_path_factory, SERVICES) as started:
        yield started


async def security_rows(community: Community, sql: str, **params: Any) -> list[Any]:
    """Security's own table, for a wait on what no route shows (security learning a resident)."""
    async with community.platform.services["security"].state.sessionmaker() as session, session.begin():
        return list((await session.execute(text(sql), {"community": community.id, **params})).all())


async def device(community: Community, kind: str, name: str) -> tuple[str, dict[str, str]]:
    """A machine client of the gateway registered in security as a device of the community's building."""
    device_id, auth = await community.machine(f"{kind}-{uuid.uuid4().hex[:8]}", "gate_device")
    body = {"id": device_id, "building_id": community.building_id, "kind": kind, "name": name, "heartbeat_s": 10}
    await community.call("POST", "/api/security/devices", community.admin, body, expected=(201,))
    return device_id, auth


async def silent_for_an_hour(community: Community, device_id: str) -> None:
    """As if the device had last beaten an hour ago; then the offline sweep (the service's own job) runs."""
    svc = community.platform.services["security"]
    async with svc.state.sessionmaker() as session, session.begin():
        sql = "UPDATE devices SET last_seen_at = now() - interval '1 hour' WHERE id = :id AND community = :community"
        await session.execute(text(sql), {"id": device_id, "community": community.id})
    async with svc.state.sessionmaker() as session:
        await devices.sweep_offline(session, svc.state.settings.offline_after_missed_beats)


async def todays_pass(community: Community) -> str:
    """A resident invites a visitor (with a car) for the next two hours; returns the pass id."""
    host = await community.resident("周访客主人")

    async def known() -> bool:
        sql = "SELECT 1 FROM residents WHERE community = :community AND resident_id = :r"
        return bool(await security_rows(community, sql, r=host.id))

    await wait_until(known, what="security learning the resident from property")
    start = datetime.now(UTC) - timedelta(minutes=5)
    body = {
        "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(hours=2)).isoformat(),
        "max_entries": 2,
        "plate": "浙K12345",
    }
    issued = await community.call("POST", "/api/security/passes", host.auth, body, expected=(201,))
    return str(issued["id"])


async def test_a_guard_answers_an_alarm_sees_an_offline_device_todays_visitor_and_a_doors_events(
    console: Console, community: Community
) -> None:
    await community.building("B1")
    guard = await community.staff("security_guard")
    _, smoke = await device(community, "smoke", "1幢楼梯间烟感")
    door_id, door = await device(community, "door", "1幢东门")
    camera_id, _ = await device(community, "camera", "1幢大堂摄像头")
    await silent_for_an_hour(community, camera_id)
    pass_id = await todays_pass(community)
    # Sixty entries at the door in the last hour: more than one page of the search (fifty a page).
    now = datetime.now(UTC).replace(microsecond=0)
    entries = [
        {
            "event_id": f"e-{n}",
            "direction": "in",
            "credential_kind": "card",
            "credential_id": "card-7f3a",
            "occurred_at": (now - timedelta(minutes=n)).isoformat(),
        }
        for n in range(1, 61)
    ]
    stored = await community.call("POST", "/api/security/access-events", door, {"events": entries})
    assert stored["stored"] == 60

    await log_in_as_staff(console, community, guard)
    page = console.page
    # The guard's home: the watch's figures, each a link to the screen; no screen the guard may not use.
    home = page.locator("#figures")
    await expect(home.locator("li[data-figure='fig.offlineDevices'] strong")).to_have_text("1", timeout=WAIT_MS)
    await expect(home.locator("li[data-figure='fig.openAlarms'] strong")).to_have_text("0")
    assert set(await page.locator("#nav a:visible").all_inner_texts()) == {"首页", "安防"}
    assert await home.locator("li").count() == 2
    await console.shot("guard-home")
    await home.locator("li[data-figure='fig.offlineDevices'] a").click()

    # The offline device first, since when; the online ones after it.
    device_rows = page.locator("#device-rows tr")
    await expect(device_rows).to_have_count(3, timeout=WAIT_MS)
    await expect(device_rows.first).to_have_attribute("data-device", camera_id)
    await expect(device_rows.first).to_contain_text("离线")
    await expect(page.locator(f"#device-rows tr[data-device='{door_id}']")).to_contain_text("在线")
    # Today's visitor, in the resident's building, with the car, never who.
    visitor = page.locator(f"#visitor-rows tr[data-pass='{pass_id}']")
    await expect(visitor).to_contain_text("B1")
    await expect(visitor).to_contain_text("0 / 2")
    await expect(visitor).to_contain_text("有车")
    await expect(page.locator("#open-alarms-empty")).to_be_visible()

    # The smoke sensor raises an alarm: the stream brings it to the open screen.
    alarm = await community.call("POST", "/api/security/alarms", smoke, {"incident_id": "stair-smoke-1", "kind": "smoke"})
    waiting = page.locator(f"#open-alarm-rows tr[data-alarm='{alarm['id']}']")
    await expect(waiting).to_contain_text("烟感报警", timeout=WAIT_MS)

    async def ticket_opened() -> bool:
        listed = await community.call("GET", "/api/property/tickets", guard.auth)
        return any(t["incident_id"] == f"alarm:{alarm['id']}" for t in listed["items"])

    await wait_until(ticket_opened, what="property opening the alarm's urgent ticket")
    await console.shot("security-alarm")
    assert await console.serious_accessibility_violations() == []

    await waiting.get_by_role("button", name="接警").click()
    await expect(page.locator("#security")).to_have_attribute("data-acknowledged", alarm["id"], timeout=WAIT_MS)
    answered = page.locator(f"#answered-alarm-rows tr[data-alarm='{alarm['id']}']")
    await expect(answered).to_contain_text(guard.id[:8], timeout=WAIT_MS)
    await expect(answered).to_contain_text("秒")
    await expect(answered.get_by_role("link", name="查看工单")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#open-alarms-empty")).to_be_visible()
    answer = await community.call("GET", "/api/security/alarms", guard.auth)
    [stored_alarm] = [a for a in answer["items"] if a["id"] == alarm["id"]]
    assert stored_alarm["acknowledged_by"] == guard.id

    # One door's events in the last two hours (Beijing time): fifty, then the ten more behind next_cursor.
    search = page.locator("#door-form")
    await search.get_by_label("门禁或道闸").select_option(door_id)
    beijing = now.astimezone(ZoneInfo("Asia/Shanghai"))
    await search.get_by_label("开始时间（北京时间）").fill((beijing - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    await search.get_by_label("结束时间（北京时间）").fill(beijing.strftime("%Y-%m-%dT%H:%M"))
    await search.get_by_role("button", name="查询").click()
    events = page.locator("#door-rows tr")
    await expect(events).to_have_count(50, timeout=WAIT_MS)
    await page.locator("#door-more").click()
    await expect(events).to_have_count(60, timeout=WAIT_MS)
    await expect(page.locator("#door-more")).to_be_hidden()
    await console.shot("security")
    assert await console.serious_accessibility_violations() == []

    # The alarm's urgent ticket opens for the guard to read, with no action the guard may take.
    await answered.get_by_role("link", name="查看工单").click()
    await expect(page.locator("#ticket-fields")).to_contain_text("紧急", timeout=WAIT_MS)
    await expect(page.locator("#ticket-actions")).to_contain_text("没有可执行的操作")
    await expect(page.locator("#alert")).to_be_hidden()


async def test_a_resident_opening_the_security_screen_is_told_the_api_refused(console: Console, community: Community) -> None:
    resident = await community.resident("吴居民")
    await log_in_by_code(console, community, resident, "/console/#/security")
    page = console.page
    alert = page.locator("#alert")
    await expect(alert).to_contain_text("403", timeout=WAIT_MS)
    await expect(alert).to_contain_text("无权使用此页面")
    await expect(page.locator("#security")).to_be_visible()
    await expect(page.locator("#device-rows tr")).to_have_count(0)
    await expect(page.locator("#nav a[href='#/security']")).to_be_hidden()
