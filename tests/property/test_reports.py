"""A dashboard's figures and exports: SLA statistics by building, steward and category over a period,
CSV files Excel opens in Chinese, and the transition table as data."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from services.property.domain import LOCAL_TZ, OPEN_STATUSES, TRANSITIONS
from tests.property.conftest import World


def _today() -> str:
    return datetime.now(LOCAL_TZ).date().isoformat()


async def _worked(world: World) -> dict[str, str]:
    """wang (B1, wu) files two repairs, one done and rated 4; li (B2, zheng) files one cleaning."""
    wu, wang = world.as_steward("wu"), world.as_resident("wang")
    done = await world.submit("wang")
    for action in ("accept", "start", "complete"):
        await world.act(done["id"], action, wu)
    await world.act(done["id"], "confirm", wang)
    await world.act(done["id"], "rate", wang, {"overall": 4, "speed": 4})
    still_open = await world.submit("wang")
    cleaning = await world.submit("li", category="cleaning")
    return {"done": done["id"], "open": still_open["id"], "cleaning": cleaning["id"]}


async def test_sla_statistics_group_the_periods_tickets_by_steward_building_and_category(world: World) -> None:
    await _worked(world)
    admin, day = world.as_admin(), _today()
    r = await world.client.get("/reports/sla", params={"since": day, "until": day, "by": "steward"}, headers=admin)
    assert r.status_code == 200, r.text
    by_steward = {g["key"]: g for g in r.json()["groups"]}
    wu = by_steward[world.stewards["wu"]]
    assert (wu["label"], wu["tickets"], wu["completed"], wu["on_time"], wu["on_time_rate"]) == ("wu", 2, 1, 1, 1.0)
    assert (wu["open"], wu["average_rating"], wu["response_breached"], wu["resolution_breached"]) == (1, 4.0, 0, 0)
    zheng = by_steward[world.stewards["zheng"]]
    assert (zheng["tickets"], zheng["completed"], zheng["on_time_rate"], zheng["open"]) == (1, 0, None, 1)

    r = await world.client.get("/reports/sla", params={"since": day, "until": day, "by": "building"}, headers=admin)
    assert {g["key"]: g["tickets"] for g in r.json()["groups"]} == {world.buildings["B1"]: 2, world.buildings["B2"]: 1}
    assert {g["label"] for g in r.json()["groups"]} == {"B1幢", "B2幢"}
    r = await world.client.get("/reports/sla", params={"since": day, "until": day, "by": "category"}, headers=admin)
    assert {g["key"]: g["tickets"] for g in r.json()["groups"]} == {"repair": 2, "cleaning": 1}

    yesterday = (datetime.now(LOCAL_TZ).date() - timedelta(days=1)).isoformat()
    r = await world.client.get("/reports/sla", params={"since": yesterday, "until": yesterday}, headers=admin)
    assert r.json()["groups"] == []


async def test_sla_statistics_refuse_a_bad_period_a_bad_grouping_and_residents(world: World) -> None:
    admin, day = world.as_admin(), _today()
    for params, field in [
        ({"since": day, "until": day, "by": "resident"}, "by"),
        ({"since": day, "until": day, "group": "steward"}, "group"),
        ({"since": day}, "until"),
    ]:
        r = await world.client.get("/reports/sla", params=params, headers=admin)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]
    r = await world.client.get("/reports/sla", params={"since": "2026-01-02", "until": "2026-01-01"}, headers=admin)
    assert r.status_code == 422
    r = await world.client.get("/reports/sla", params={"since": "2025-01-01", "until": "2026-01-05"}, headers=admin)
    assert r.status_code == 422
    r = await world.client.get("/reports/sla", params={"since": day, "until": day}, headers=world.as_resident("wang"))
    assert r.status_code == 403


async def test_the_ticket_export_is_utf8_csv_with_a_bom_filtered_like_the_list(world: World) -> None:
    ids = await _worked(world)
    r = await world.client.post(
        "/tickets", json={"category": "repair", "description": '=HYPERLINK("x") 灯坏了'}, headers=world.as_resident("li")
    )
    assert r.status_code == 201, r.text
    formula = r.json()["id"]
    day = _today()
    r = await world.client.get("/reports/tickets.csv", params={"since": day, "until": day}, headers=world.as_admin())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["id"] for row in rows] == [ids["done"], ids["open"], ids["cleaning"], formula]
    first = rows[0]
    assert (first["building"], first["unit"], first["assignee"], first["status"]) == ("B1幢", "101", "wu", "confirmed")
    assert first["description"] == "水管漏水"
    assert first["created_at"].endswith("+08:00")
    # A cell that starts like a formula is kept as text when Excel opens it.
    assert rows[3]["description"] == '\'=HYPERLINK("x") 灯坏了'

    narrowed = {"since": day, "until": day, "unit": "201", "category": "cleaning"}
    r = await world.client.get("/reports/tickets.csv", params=narrowed, headers=world.as_admin())
    assert [row["id"] for row in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))] == [ids["cleaning"]]
    r = await world.client.get("/reports/tickets.csv", params={"since": day, "until": day}, headers=world.as_resident("wang"))
    assert r.status_code == 403


async def test_the_sla_export_is_the_statistics_as_csv(world: World) -> None:
    await _worked(world)
    day = _today()
    params = {"since": day, "until": day, "by": "steward"}
    stats = (await world.client.get("/reports/sla", params=params, headers=world.as_admin())).json()
    r = await world.client.get("/reports/sla.csv", params=params, headers=world.as_admin())
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(row["key"], row["label"], int(row["tickets"])) for row in rows] == [
        (g["key"], g["label"], g["tickets"]) for g in stats["groups"]
    ]


async def test_the_transition_table_is_served_as_the_service_holds_it(world: World) -> None:
    r = await world.client.get("/transitions", headers=world.as_steward("wu"))
    assert r.status_code == 200, r.text
    table = r.json()
    assert set(table["open_statuses"]) == {s.value for s in OPEN_STATUSES}
    served = {(status, action, role) for role, by in table["actions"].items() for status, acts in by.items() for action in acts}
    assert served == {(s.value, a.value, role.value) for (s, a, role) in TRANSITIONS}
    assert "accept" in table["actions"]["steward"]["assigned"]
    assert (await world.client.get("/transitions")).status_code == 401
